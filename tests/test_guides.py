"""docs/operator-guide.md runs as written: every command, in order, from a folder where
deploy/ is this checkout's, with the containers' environment pointing at throw-away files (a
directory enrolling a partner's certificate, the gateway's key, a message the partner signed).
The partner guide is run from the installed wheel (tests/test_wheel.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from gateway.embedded_broker import free_port
from tests.conftest import ROOT, SAMPLES
from tests.guides import follow
from tests.signing import directory_with, identity, signed


def test_the_operator_guide_runs_as_written(tmp_path: Path) -> None:
    partner, gateway = identity("HPCBCNSHXXX"), identity("SHHKCNSHGWY")
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")
    (tmp_path / "directory").mkdir()
    directory = directory_with(tmp_path / "directory", {"HPCBCNSHXXX": [partner]})
    (tmp_path / "signing").mkdir()
    (tmp_path / "signing" / "key.pem").write_bytes(gateway.key_pem)
    (tmp_path / "signing" / "certificate.pem").write_bytes(gateway.cert_pem)
    payment = (SAMPLES / "onshore" / "pacs.008.001.08.xml").read_bytes()
    (tmp_path / "signed.xml").write_bytes(signed(payment, partner))
    assert shutil.which("promtool"), "scripts/setup.sh --with-test-servers installs promtool"
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KAFKA_BOOTSTRAP_SERVERS")
    }
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        # What the containers get (deploy/Dockerfile, compose), onto this test's files.
        "CONNECT_GATEWAY__TRANSLATION__DIRECTORY": str(directory),
        "CONNECT_GATEWAY__SECURITY__SIGNING_KEY_FILE": str(tmp_path / "signing" / "key.pem"),
        "CONNECT_GATEWAY__SECURITY__SIGNING_CERTIFICATE_FILE": str(
            tmp_path / "signing" / "certificate.pem"
        ),
        "CONNECT_GATEWAY__STATE__POSTGRES_DSN": "postgresql://gateway@postgres:5432/gateway",
        # Free ports and a local state for the rehearsal.
        "CONNECT_GATEWAY__KAFKA__EMBEDDED_PORT": str(free_port()),
        "CONNECT_GATEWAY__OPS__HTTP_PORT": str(free_port()),
        "CONNECT_GATEWAY__OPS__LOG_FORMAT": "text",
    }
    results = follow(ROOT / "docs" / "operator-guide.md", tmp_path, env)

    def result(command: str) -> subprocess.CompletedProcess[str]:
        return next(r for s, r in results if s.text.startswith(command))

    assert "configuration OK" in result("connect-gateway config check").stdout
    assert result("connect-gateway verify").stdout.startswith("signed by HPCBCNSHXXX")
    assert "kind: Deployment" in (tmp_path / "connect-gateway.yaml").read_text()
    assert "SUCCESS" in result("promtool test rules").stdout
    assert "CNY-000001" in result("connect-gateway cycle list").stdout
    assert "HPCBCNSHXXX" in result("connect-gateway cycle report").stdout
    assert '"subject"' in result("connect-gateway trace").stdout
    assert "a multilateral offset now would release" in result("connect-gateway liquidity").stdout


def test_the_readme_is_short_and_every_link_in_it_and_the_guides_resolves() -> None:
    """The README says what this is, the two commands and where to go next, in at most 1,200
    words; every relative link of it and of the guides names a file that exists."""
    import re

    readme = (ROOT / "README.md").read_text()
    assert len(readme.split()) <= 1200
    assert "bash scripts/run.sh" in readme and "bash scripts/test.sh" in readme
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    for page in (ROOT / "README.md", *(ROOT / "docs").glob("*-guide.md")):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: {target}"
