"""The command line, run as a user runs it: a real process, real files, a real broker."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from gateway.idempotency import extract_keys
from gateway.iso20022.reader import read_message
from tests.conftest import ROOT, SAMPLES


def cli(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        input=stdin,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_translate_accepts_a_good_message_from_a_file() -> None:
    done = cli("translate", "--from", "onshore", str(SAMPLES / "onshore" / "pacs.008.001.08.xml"))
    assert done.returncode == 0, done.stderr
    out = read_message(done.stdout)
    assert out.header_text("To/FIId/FinInstnId/BICFI") == "HKICHKHHXXX"
    # What changed on the way is said, one note a line: Chinese text made Latin for offshore.
    notes = done.stderr.decode().splitlines()
    assert notes and all(n.startswith("note: ") for n in notes)
    assert any(n.startswith("note: debtor.name: transliterated to Latin (at ") for n in notes)


def test_translate_rejects_from_stdin_with_exit_3_and_one_line() -> None:
    bad = (SAMPLES / "offshore" / "pacs.008.001.08.xml").read_bytes()
    done = cli("translate", "--from", "onshore", "-", stdin=bad)  # offshore message, wrong side
    assert done.returncode == 3
    assert b"admi.002.001.01" in done.stdout
    assert done.stderr.decode().count("\n") == 1 and "HKNCC" in done.stderr.decode()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert cli("translate", "--from", "mars", "x.xml").returncode == 2
    assert cli("translate", str(SAMPLES / "onshore" / "pacs.008.001.08.xml")).returncode == 2
    missing = cli("translate", "--from", "onshore", str(tmp_path / "nope.xml"))
    assert missing.returncode == 2 and b"cannot read" in missing.stderr
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text('[gateway]\nbic = "not a bic"\n')
    done = cli("--config", str(bad_config), "translate", "--from", "onshore", "-", stdin=b"<x/>")
    assert done.returncode == 2 and b"gateway.bic must be a BIC" in done.stderr


async def test_publish_puts_samples_on_the_inbound_topic_with_their_keys(
    kafka_bootstrap: str, topic: str
) -> None:
    files = sorted((SAMPLES / "onshore").glob("*.xml"))
    hostile = Path(__file__).with_name("data-not-xml.bin")
    hostile.write_bytes(b"\x00 not xml")
    try:
        done = await asyncio.to_thread(
            cli,
            "publish",
            "--side",
            "onshore",
            "--bootstrap",
            kafka_bootstrap,
            "--topic",
            topic,
            *map(str, files),
            str(hostile),
        )
    finally:
        hostile.unlink()
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().count(f"-> {topic}[") == len(files) + 1

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"g-{topic}",
    )
    await consumer.start()
    got = []
    try:
        async with asyncio.timeout(30):
            while len(got) < len(files) + 1:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got += records
    finally:
        await consumer.stop()
    by_value = {r.value: r for r in got}
    for f in files:
        record = by_value[f.read_bytes()]
        keys = extract_keys(read_message(f.read_bytes()))
        assert record.key == keys.message.encode()
        assert dict(record.headers)["message-type"] == f.stem.encode()
    unknown = by_value[b"\x00 not xml"]
    assert unknown.key.startswith(b"SHA256:")
    assert dict(unknown.headers)["message-type"] == b"unknown"


def test_publish_without_a_broker_is_a_usage_error() -> None:
    # No cluster configured and no embedded broker port to default to.
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["CONNECT_GATEWAY__KAFKA__EMBEDDED_PORT"] = "0"
    done = cli(
        "publish", "--side", "onshore", str(SAMPLES / "onshore" / "pacs.008.001.08.xml"), env=env
    )
    assert done.returncode == 2 and b"no broker" in done.stderr


def test_broker_command_serves_kafka_until_terminated() -> None:
    from gateway.embedded_broker import free_port, stop_pid, wait_for_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port("127.0.0.1", port, 20, None, what="connect-gateway broker")
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert f"127.0.0.1:{port}" in line
    finally:
        stop_pid(proc)
    assert proc.returncode == 0


def test_translate_a_status_report_given_its_original() -> None:
    status = str(SAMPLES / "offshore" / "pacs.002.001.10.xml")
    alone = cli("translate", "--from", "offshore", status)
    assert alone.returncode == 3 and b"uncorrelated" in alone.stderr
    done = cli(
        "translate",
        "--from",
        "offshore",
        "--original",
        str(SAMPLES / "onshore" / "pacs.008.001.08.xml"),
        status,
    )
    assert done.returncode == 0, done.stderr
    out = read_message(done.stdout)
    assert out.header_text("To/FIId/FinInstnId/BICFI") == "HPCBCNSHXXX"  # the original sender
    assert out.doc_text("FIToFIPmtStsRpt/TxInfAndSts/OrgnlGrpInf/OrgnlMsgId") == "ON-MSG-P8-0001"


def test_translate_a_cancellation_request_given_its_payment() -> None:
    """The payment came from the requester's own side: an original comes from its sender's
    side, as on Kafka (it used to be assumed to come from the other side: exit 2)."""
    request = str(SAMPLES / "onshore" / "camt.056.001.08.xml")
    done = cli(
        "translate",
        "--from",
        "onshore",
        "--original",
        str(SAMPLES / "onshore" / "pacs.008.001.08.xml"),
        request,
    )
    assert done.returncode == 0, done.stderr
    out = read_message(done.stdout)
    assert out.msg_def == "camt.056.001.08"
    # The other side knows the payment by the ids the gateway gave it.
    sent_as = out.doc_text("FIToFIPmtCxlReq/Undrlyg/TxInf/OrgnlGrpInf/OrgnlMsgId") or ""
    assert sent_as.startswith("GWM")  # not ON-MSG-P8-0001, the id its instructing party gave
    unknown = cli(
        "translate",
        "--from",
        "onshore",
        "--original",
        str(SAMPLES / "onshore" / "pacs.029.001.01.xml"),  # from the gateway itself
        request,
    )
    assert unknown.returncode == 2 and b"cannot tell which side" in unknown.stderr


def test_cycle_close_list_and_report_on_the_configured_store(tmp_path: Path) -> None:
    from decimal import Decimal

    from gateway.canonical import Money, Obligation
    from gateway.config import StateSection
    from gateway.state import store_for
    from gateway.state.base import Effects

    db = tmp_path / "state.sqlite3"
    config = tmp_path / "gateway.toml"
    config.write_text(f'[state]\nsqlite_path = "{db}"\n[settlement]\ncut_offs = []\n')

    async def book() -> None:
        store = store_for(StateSection(sqlite_path=str(db)))
        await store.open()
        flows = [("HPCBCNSHXXX", "VHBKHKHHXXX", "100.00"), ("VHBKHKHHXXX", "JADBCNBJXXX", "30.5")]
        await store.commit_batch(
            [
                Effects(
                    [(f"m{n}", "fp")],
                    obligations=[Obligation(a, b, Money(Decimal(x), "CNY"), f"u{n}")],
                )
                for n, (a, b, x) in enumerate(flows)
            ]
        )
        await store.close()

    asyncio.run(book())
    env = {**os.environ, "CONNECT_GATEWAY_CONFIG": str(config)}
    unsaid = cli("cycle", "close", env=env)  # never a silent default currency
    assert unsaid.returncode == 2 and b"--currency" in unsaid.stderr
    assert cli("cycle", "close", "--currency", "C1", env=env).returncode == 2
    nothing = cli("cycle", "close", "--currency", "hkd", env=env)
    assert nothing.returncode == 2 and b"no HKD cycle" in nothing.stderr
    early = cli("cycle", "report", "CNY-000001", env=env)
    assert early.returncode == 2 and b"not closed yet" in early.stderr

    closed = cli("cycle", "close", "--currency", "CNY", env=env)
    assert b"unrecognized arguments: --bogus" in cli("--bogus").stderr
    assert closed.returncode == 0, closed.stderr
    assert closed.stdout.decode().startswith("CNY-000001 instructed cut-off ")
    listing = cli("cycle", "list", env=env).stdout.decode().splitlines()
    assert [line.split("\t")[:2] for line in listing] == [
        ["CNY-000001", "instructed"],
        ["CNY-000002", "open"],
    ]
    # The option after the command, a currency in lower case: the same cycles.
    after = cli("cycle", "list", "--currency", "cny", "--config", str(config))
    assert after.stdout.decode().splitlines() == listing, after.stderr
    # Elsewhere, with no store there: said, and no empty store created.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = elsewhere / "gateway.toml"
    other.write_text(f'[state]\nsqlite_path = "{elsewhere / "missing.sqlite3"}"\n')
    missing = cli("cycle", "list", "--config", str(other))
    assert missing.returncode == 2 and b"no state store at" in missing.stderr
    assert missing.stderr.count(b"\n") == 1 and list(elsewhere.iterdir()) == [other]
    report = cli("cycle", "report", "CNY-000001", env=env).stdout.decode().splitlines()
    assert report == [
        "cycle,currency,participant,received_count,received,paid_count,paid,position",
        "CNY-000001,CNY,HPCBCNSHXXX,0,0.00,1,100.00,-100.00",
        "CNY-000001,CNY,JADBCNBJXXX,1,30.50,0,0.00,30.50",
        "CNY-000001,CNY,VHBKHKHHXXX,1,100.00,1,30.50,69.50",
    ]


def test_a_second_run_on_the_same_ports_or_state_file_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    from tests.servers import stopped

    """A second `run` beside a running one gets one line and exit 1: never the first one's
    broker announced as its own, never a traceback. So does a port held by another program.
    The first instance is unaffected and stops with exit 0."""
    from gateway.embedded_broker import free_port

    def config(name: str, broker: int, http: int, state: Path) -> Path:
        path = tmp_path / name
        path.write_text(
            f"[kafka]\nembedded_port = {broker}\n"
            f'[state]\nsqlite_path = "{state}"\n'
            f"[ops]\nhttp_port = {http}\n"
            "[settlement]\ncut_offs = []\n"
        )
        return path

    state = tmp_path / "state.sqlite3"
    first_config = config("first.toml", free_port(), free_port(), state)
    log = tmp_path / "first.log"
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    with open(log, "wb") as out:
        first = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "--config", str(first_config), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        for _ in range(450):  # a hang guard of ~90 s, not a speed goal
            if b"gateway ready" in log.read_bytes():
                break
            assert first.poll() is None, log.read_text()
            time.sleep(0.2)
        else:
            raise AssertionError("the first instance never became ready\n" + log.read_text())

        def refused(config_file: Path) -> str:
            done = cli("--config", str(config_file), "run", env=env)
            err = done.stderr.decode()
            assert done.returncode == 1, (done.stdout, err)
            assert err.count("\n") == 1 and "Traceback" not in err, err
            assert b"embedded Kafka-compatible broker" not in done.stdout, done.stdout
            return err

        assert "in use" in refused(first_config)  # the very same configuration
        other_ports = config("second.toml", free_port(), free_port(), state)
        assert f"state file {state} is in use" in refused(other_ports)
        with socket.socket() as squatter:  # not Kafka at all
            squatter.bind(("127.0.0.1", 0))
            squatter.listen()
            taken = squatter.getsockname()[1]
            elsewhere = config("third.toml", taken, free_port(), tmp_path / "other.sqlite3")
            assert f"127.0.0.1:{taken} (kafka.embedded_port) is in use" in refused(elsewhere)
        assert first.poll() is None  # the running instance never noticed
    finally:
        first.send_signal(signal.SIGTERM)
        code = stopped(first, log, 120)
    assert code == 0, log.read_text()[-3000:]


def test_no_broker_and_missing_files_are_one_line_each(tmp_path: Path) -> None:
    """publish, capture and replay against no broker, and a configuration naming files that
    are not there (config check says so as run would): one line on stderr, no traceback, no
    'Unclosed' client, a non-zero exit."""
    from gateway.embedded_broker import free_port

    nobody = f"127.0.0.1:{free_port()}"
    sample = str(SAMPLES / "onshore" / "pacs.008.001.08.xml")
    capture_file = str(tmp_path / "c.jsonl")
    captured = str(Path(__file__).parent / "captures" / "flows.jsonl")
    for args in (
        ("publish", "--side", "onshore", "--bootstrap", nobody, sample),
        ("capture", "--topics", "x", "--out", capture_file, "--max", "1", "--bootstrap", nobody),
        ("replay", captured, "--bootstrap", nobody),
    ):
        done = cli(*args)
        lines = [
            line
            for line in done.stderr.decode().replace("\r", "\n").splitlines()
            if line.strip() and not line.startswith(("replayed", "captured"))  # progress bars
        ]
        assert done.returncode == 1, (args, done.stderr)
        assert lines == [lines[0]] and lines[0].startswith(
            f"connect-gateway: cannot use the Kafka broker at {nobody}"
        ), (args, lines)
    for section, key, value in (
        ("translation", "directory", tmp_path / "missing.toml"),
        ("translation", "calendars", tmp_path / "no-calendars"),
        ("gateway", "schemas_dir", tmp_path / "no-schemas"),
    ):
        config = tmp_path / f"{key}.toml"
        config.write_text(f'[{section}]\n{key} = "{value}"\n')
        for args in (
            ("config", "check", str(config)),
            ("--config", str(config), "translate", "--from", "onshore", sample),
        ):
            done = cli(*args)
            err = done.stderr.decode()
            assert done.returncode == 2 and err.count("\n") == 1, (args, err)
            assert f"{section}.{key}: no such" in err, err


def test_every_option_and_argument_has_help() -> None:
    import argparse

    from gateway.cli import parser as build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, where: str) -> None:
        for action in parser._actions:  # argparse has no public listing of its actions
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{where} {name}")
            elif action.help is None and not isinstance(
                action, argparse._HelpAction | argparse._VersionAction
            ):
                missing.append(f"{where}: {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "connect-gateway")
    assert missing == []


def test_config_check_is_a_pre_flight_of_the_reference_data(tmp_path: Path) -> None:
    """What run would fail on, config check fails on first: a certificate the directory lists
    and that is not there, a bad LEI; and it warns when partners must sign and the gateway
    itself cannot."""
    import re

    text = (ROOT / "data" / "participants.toml").read_text()
    missing = re.sub(
        r'^bic = "HPCBCNSHXXX"$',
        'bic = "HPCBCNSHXXX"\ncertificates = ["certs/missing.pem"]',
        text,
        count=1,
        flags=re.M,
    )
    bad_lei = re.sub(
        r'^lei = "[0-9A-Z]{20}"$', 'lei = "5493001KJTIIGC8Y1R13"', text, count=1, flags=re.M
    )
    for name, directory, words in (
        ("missing", missing, b"missing.pem"),
        ("lei", bad_lei, b"ISO 17442"),
    ):
        (tmp_path / f"{name}.toml").write_text(directory)
        (tmp_path / f"{name}-gateway.toml").write_text(
            f'[translation]\ndirectory = "{tmp_path / f"{name}.toml"}"\n'
        )
        done = cli("config", "check", str(tmp_path / f"{name}-gateway.toml"))
        assert done.returncode == 2 and words in done.stderr, done.stderr
        assert done.stderr.count(b"\n") == 1 and b"Traceback" not in done.stderr
    # Signatures required: the gateway must have its own key, and every sender a certificate.
    from tests.signing import identity

    gateway = identity("SHHKCNSHGWY")
    (tmp_path / "gw.key").write_bytes(gateway.key_pem)
    (tmp_path / "gw.pem").write_bytes(gateway.cert_pem)
    keyed = f'signing_key_file = "{tmp_path / "gw.key"}"\n'
    keyed += f'signing_certificate_file = "{tmp_path / "gw.pem"}"\n'
    for name, text, words in (
        ("keyless", "", b"needs the gateway's own key"),
        ("unenrolled", keyed, b"no certificate is enrolled for HPCBCNSHXXX, JADBCNBJXXX"),
    ):
        (tmp_path / f"{name}.toml").write_text(f"[security]\nrequire_signatures = true\n{text}")
        for command in (("config", "check", str(tmp_path / f"{name}.toml")), ("run",)):
            if command == ("run",):
                command = ("--config", str(tmp_path / f"{name}.toml"), "run")
            done = cli(*command)
            assert done.returncode == 2 and words in done.stderr, done.stderr
            assert done.stderr.count(b"\n") == 1 and b"Traceback" not in done.stderr


def test_config_check_prints_the_configuration_as_toml_with_secrets_hidden(
    tmp_path: Path,
) -> None:
    import os
    import tomllib

    config = tmp_path / "gateway.toml"
    config.write_text('[settlement]\ncut_offs = ["10:00", "16:30"]\n[mqtt]\nhost = "mq"\n')
    env = os.environ | {
        "CONNECT_GATEWAY__MQTT__USERNAME": "gateway",
        "CONNECT_GATEWAY__MQTT__PASSWORD": "s3cret-never-shown",
    }
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "config", "check", str(config)],
        capture_output=True,
        timeout=60,
        env=env,
        check=False,
    )
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr
    assert "s3cret-never-shown" not in out and "# password: set (a secret" in out
    shown = tomllib.loads(out)  # what it prints is a configuration file
    assert shown["settlement"]["cut_offs"] == ["10:00", "16:30"]
    assert shown["mqtt"]["host"] == "mq" and shown["mqtt"]["username"] == "gateway"
    assert "password" not in shown["mqtt"]
    assert shown["state"]["backend"] == "sqlite" and shown["kafka"]["topic_check_seconds"] == 30


def test_sign_then_verify_from_the_command_line(tmp_path: Path) -> None:
    from tests.signing import directory_with, identity

    hpcb, other = identity("HPCBCNSHXXX"), identity("HPCBCNSHXXX")
    directory = directory_with(tmp_path, {"HPCBCNSHXXX": [hpcb]})
    (tmp_path / "k.pem").write_bytes(hpcb.key_pem)
    (tmp_path / "c.pem").write_bytes(hpcb.cert_pem)
    (tmp_path / "k2.pem").write_bytes(other.key_pem)
    (tmp_path / "c2.pem").write_bytes(other.cert_pem)
    payment = str(SAMPLES / "onshore" / "pacs.008.001.08.xml")

    def cli_run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args], capture_output=True, timeout=60
        )

    made = cli_run(
        "sign", payment, "--key", str(tmp_path / "k.pem"), "--cert", str(tmp_path / "c.pem")
    )
    assert made.returncode == 0, made.stderr
    (tmp_path / "signed.xml").write_bytes(made.stdout)
    ok = cli_run("verify", str(tmp_path / "signed.xml"), "--directory", str(directory))
    assert ok.returncode == 0 and ok.stdout.startswith(b"signed by HPCBCNSHXXX"), ok.stderr
    unknown = cli_run(
        "sign", payment, "--key", str(tmp_path / "k2.pem"), "--cert", str(tmp_path / "c2.pem")
    )
    (tmp_path / "unknown.xml").write_bytes(unknown.stdout)
    refused = cli_run("verify", str(tmp_path / "unknown.xml"), "--directory", str(directory))
    assert refused.returncode == 3 and refused.stderr.startswith(b"refused (DS0E)")
    unsigned = cli_run("verify", payment, "--directory", str(directory))
    assert unsigned.returncode == 3 and unsigned.stderr.startswith(b"refused (DS21)")
    broken = cli_run(
        "sign", payment, "--key", str(tmp_path / "c.pem"), "--cert", str(tmp_path / "c.pem")
    )
    assert broken.returncode == 2 and broken.stderr.count(b"\n") == 1, broken.stderr


def test_sign_refuses_what_the_gateway_would_refuse(tmp_path: Path) -> None:
    """A key that is not its certificate's, a certificate not valid now, a message signed
    already: one line each, exit 2, nothing written (they used to sign, or to sign twice)."""
    from tests.signing import identity

    good, other = identity("HPCBCNSHXXX"), identity("HPCBCNSHXXX")
    expired = identity("HPCBCNSHXXX", valid_from_days=-30, valid_to_days=-1)
    for name, who in (("good", good), ("other", other), ("expired", expired)):
        (tmp_path / f"{name}.key").write_bytes(who.key_pem)
        (tmp_path / f"{name}.pem").write_bytes(who.cert_pem)
    payment = str(SAMPLES / "onshore" / "pacs.008.001.08.xml")

    def sign(path: str, key: str, cert: str) -> subprocess.CompletedProcess[bytes]:
        return cli(
            "sign",
            path,
            "--key",
            str(tmp_path / f"{key}.key"),
            "--cert",
            str(tmp_path / f"{cert}.pem"),
        )

    signed_once = sign(payment, "good", "good")
    assert signed_once.returncode == 0, signed_once.stderr
    (tmp_path / "signed.xml").write_bytes(signed_once.stdout)
    for done, words in (
        (sign(payment, "good", "other"), b"the signing key is not the certificate's"),
        (sign(payment, "expired", "expired"), b"the certificate is not valid now"),
        (sign(str(tmp_path / "signed.xml"), "good", "good"), b"it is signed already"),
    ):
        assert done.returncode == 2 and done.stdout == b"", done.stderr
        assert words in done.stderr and done.stderr.count(b"\n") == 1, done.stderr


def test_sign_replaces_a_signature_signs_expired_for_tests_and_reads_a_pass_phrase(
    tmp_path: Path,
) -> None:
    """--replace signs a signed message anew (one signature, the new key's); --allow-expired
    signs with an expired certificate, which the gateway then refuses DS0D; an encrypted key's
    pass phrase comes from a file or the environment, never a prompt (stdin is closed), and
    without it the refusal is one line."""
    from gateway.certificates import read_certificate
    from gateway.signatures import signed_with
    from tests.signing import directory_with, encrypted, identity

    first, second = identity("HPCBCNSHXXX"), identity("HPCBCNSHXXX")
    expired = identity("HPCBCNSHXXX", valid_from_days=-30, valid_to_days=-1)
    directory = directory_with(tmp_path, {"HPCBCNSHXXX": [first, second, expired]})
    for name, who in (("first", first), ("second", second), ("expired", expired)):
        (tmp_path / f"{name}.key").write_bytes(who.key_pem)
        (tmp_path / f"{name}.pem").write_bytes(who.cert_pem)
    (tmp_path / "locked.key").write_bytes(encrypted(second, b"correct horse"))
    (tmp_path / "phrase").write_text("correct horse\n")
    payment = str(SAMPLES / "onshore" / "pacs.008.001.08.xml")

    def sign(
        path: str, key: str, cert: str, *extra: str, **env: str
    ) -> subprocess.CompletedProcess[bytes]:
        return cli(
            "sign", path, "--key", str(tmp_path / f"{key}.key"),
            "--cert", str(tmp_path / f"{cert}.pem"), *extra,
            stdin=b"", env={**os.environ, **env},
        )  # fmt: skip

    once = sign(payment, "first", "first")
    (tmp_path / "once.xml").write_bytes(once.stdout)
    again = sign(str(tmp_path / "once.xml"), "second", "second", "--replace")
    assert again.returncode == 0, again.stderr
    from lxml import etree

    signatures = etree.fromstring(again.stdout).iter(
        "{http://www.w3.org/2000/09/xmldsig#}Signature"
    )
    assert len(list(signatures)) == 1
    assert signed_with(again.stdout, read_certificate(second.cert_pem))
    assert not signed_with(again.stdout, read_certificate(first.cert_pem))
    refused = sign(str(tmp_path / "once.xml"), "second", "second")
    assert refused.returncode == 2 and b"--replace" in refused.stderr

    old = sign(payment, "expired", "expired", "--allow-expired")
    assert old.returncode == 0, old.stderr
    (tmp_path / "old.xml").write_bytes(old.stdout)
    verdict = cli("verify", str(tmp_path / "old.xml"), "--directory", str(directory))
    assert verdict.returncode == 3 and verdict.stderr.startswith(b"refused (DS0D)")

    by_file = sign(payment, "locked", "second", "--passphrase-file", str(tmp_path / "phrase"))
    by_env = sign(payment, "locked", "second", "--passphrase-env", "PHRASE", PHRASE="correct horse")
    for done in (by_file, by_env):
        assert done.returncode == 0, done.stderr
        assert signed_with(done.stdout, read_certificate(second.cert_pem))
    for done, words in (
        (sign(payment, "locked", "second"), b"the key is encrypted: give its pass phrase"),
        (sign(payment, "locked", "second", "--passphrase-env", "UNSET_HERE"), b"UNSET_HERE"),
        (
            sign(payment, "locked", "second", "--passphrase-env", "P", P="wrong"),
            b"cannot load the key",
        ),
    ):
        assert done.returncode == 2 and done.stdout == b"", done.stderr
        assert words in done.stderr and done.stderr.count(b"\n") == 1, done.stderr


def test_translate_with_a_broken_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "participants.toml").write_text('version = "x"\n[[participant]]\nbic = "BAD"\n')
    (tmp_path / "gateway.toml").write_text(
        f'[translation]\ndirectory = "{tmp_path / "participants.toml"}"\n'
    )
    done = cli(
        "translate",
        "--config",
        str(tmp_path / "gateway.toml"),
        "--from",
        "onshore",
        str(SAMPLES / "onshore" / "pacs.008.001.08.xml"),
    )
    assert done.returncode == 2 and b"Traceback" not in done.stderr, done.stderr
    assert (
        done.stderr.startswith(b"connect-gateway: reference data: ")
        and b"is not a BIC" in done.stderr
    )


def test_translate_with_signatures_reads_what_was_signed_and_who_may_send_it(
    tmp_path: Path,
) -> None:
    """The attacks as the offline command meets them, signatures required: a respelled
    amount and UETR are read as signed (and the output carries no comment); a payment signed
    by HPCB in JADB's name (its CNAPS member id alone) is refused DS19, exit 3."""
    from tests.signing import directory_with, identity, signed
    from tests.test_authorisation_e2e import _member_only

    hpcb, gateway = identity("HPCBCNSHXXX"), identity("SHHKCNSHGWY")
    directory = directory_with(tmp_path, {"HPCBCNSHXXX": [hpcb]})
    (tmp_path / "gw.key").write_bytes(gateway.key_pem)
    (tmp_path / "gw.pem").write_bytes(gateway.cert_pem)
    env = {
        **os.environ,
        "CONNECT_GATEWAY__SECURITY__REQUIRE_SIGNATURES": "true",
        "CONNECT_GATEWAY__SECURITY__SIGNING_KEY_FILE": str(tmp_path / "gw.key"),
        "CONNECT_GATEWAY__SECURITY__SIGNING_CERTIFICATE_FILE": str(tmp_path / "gw.pem"),
        "CONNECT_GATEWAY__TRANSLATION__DIRECTORY": str(directory),
    }
    payment = (SAMPLES / "onshore" / "pacs.008.001.08.xml").read_bytes()
    respelled = (
        signed(payment, hpcb)
        .replace(b">1250000.00<", b">1250<!---->000.00<")
        .replace(b"0b7c3f2e-6d1a", b"0b7c3f2e-<!-- -->6d1a")
    )
    done = cli("translate", "--from", "onshore", "-", stdin=respelled, env=env)
    assert done.returncode == 0, done.stderr
    out = read_message(done.stdout)
    tx = "FIToFICstmrCdtTrf/CdtTrfTxInf"
    assert out.doc_text(f"{tx}/IntrBkSttlmAmt") == "1250000.00"
    assert out.doc_text(f"{tx}/PmtId/UETR") == "0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01"
    assert b"<!--" not in done.stdout

    in_jadbs_name = signed(_member_only(payment, "InstgAgt", "CNAPS", "313100054321"), hpcb)
    refused = cli("translate", "--from", "onshore", "-", stdin=in_jadbs_name, env=env)
    assert refused.returncode == 3, refused.stderr
    assert "DS19" in refused.stderr.decode() and b"pacs.002.001.10" in refused.stdout


def test_the_gateways_own_key_may_be_encrypted_with_its_pass_phrase_a_secret(
    tmp_path: Path,
) -> None:
    """CONNECT_GATEWAY__SECURITY__SIGNING_KEY_PASSPHRASE opens an encrypted signing key;
    without it config check (and run, the same pre-flight) refuses in one line, and the pass
    phrase is never printed."""
    from tests.signing import encrypted, identity

    gateway = identity("SHHKCNSHGWY")
    (tmp_path / "gw.key").write_bytes(encrypted(gateway, b"s3cret-phrase"))
    (tmp_path / "gw.pem").write_bytes(gateway.cert_pem)
    (tmp_path / "g.toml").write_text(
        f'[security]\nsigning_key_file = "{tmp_path / "gw.key"}"\n'
        f'signing_certificate_file = "{tmp_path / "gw.pem"}"\n'
    )
    locked = cli("config", "check", str(tmp_path / "g.toml"))
    assert locked.returncode == 2 and b"the key is encrypted" in locked.stderr, locked.stderr
    assert locked.stderr.count(b"\n") == 1
    env = {**os.environ, "CONNECT_GATEWAY__SECURITY__SIGNING_KEY_PASSPHRASE": "s3cret-phrase"}
    opened = cli("config", "check", str(tmp_path / "g.toml"), env=env)
    assert opened.returncode == 0, opened.stderr
    assert b"s3cret-phrase" not in opened.stdout + opened.stderr
    assert b"# signing_key_passphrase: set" in opened.stdout


def test_a_restart_on_the_embedded_broker_says_what_the_state_remembers_and_each_duplicate(
    tmp_path: Path,
) -> None:
    """`connect-gateway run` on the embedded broker, twice on one SQLite state: the second
    start says the state remembers a message although the broker starts empty, and the
    sample published again is logged as a duplicate with its key (it used to vanish without
    a word)."""
    import time

    from gateway.embedded_broker import free_port, stop_pid

    broker, http = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env |= {
        "CONNECT_GATEWAY__KAFKA__EMBEDDED_PORT": str(broker),
        "CONNECT_GATEWAY__OPS__HTTP_PORT": str(http),
        "CONNECT_GATEWAY__STATE__SQLITE_PATH": str(tmp_path / "state.sqlite3"),
        "CONNECT_GATEWAY__OPS__LOG_FORMAT": "text",
    }
    sample = str(SAMPLES / "onshore" / "pacs.008.001.08.xml")

    def once(name: str) -> str:
        log = tmp_path / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run"], env=env, stdout=out, stderr=out
            )
        try:
            deadline = time.monotonic() + 90
            while "gateway ready" not in log.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            done = cli("publish", "--side", "onshore", sample, env=env)
            assert done.returncode == 0, done.stderr
            if name == "first":  # translated: its output is on the other side's topic
                out = cli("read", "offshore.outbound", "--from-beginning", "--max", "1", env=env)
                assert out.returncode == 0 and b"pacs.008" in out.stdout, out.stderr
            else:
                while "duplicate, not processed again" not in log.read_text():
                    assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
        finally:
            stop_pid(proc)
        return log.read_text()

    first = once("first")
    assert "holds 0 idempotency keys" in first and "remembers" not in first, first
    second = once("second")
    assert "remembers 2 idempotency keys from earlier runs" in second, second  # msg, UETR
    duplicates = [line for line in second.splitlines() if "duplicate, not processed again" in line]
    assert len(duplicates) == 1 and "key msg:" in duplicates[0], second
