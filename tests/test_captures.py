"""Captures replayed through real gateways, with the package's own pytest plugin
(`connect_gateway`), as partner teams use it.

tests/captures/flows.jsonl holds inbound traffic for every flow and reject path (instructions
both ways, answers, an answer ahead of its original, copies, a resend, a reused id,
cancellation requests and their resolutions (forwarded, AG01, PDCR, NOOR, an unknown
request's resolution), messages only the gateway may send, the wrong dialect, hostile XML, binary noise);
flows.golden.jsonl what the gateway publishes for it. `pytest --update-golden` rewrites it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from gateway.replay.format import read_capture
from gateway.replay.pytest_plugin import GatewayUnderTest, normalise
from tests.conftest import ROOT, SAMPLES

pytestmark = pytest.mark.kafka

CAPTURES = ROOT / "tests" / "captures"


def test_every_flow_and_reject_path_replays_to_its_golden_outputs(
    connect_gateway: GatewayUnderTest,
) -> None:
    outputs = connect_gateway.run_capture(CAPTURES / "flows.jsonl")
    kinds = {dict(r.headers).get("reject-reason", b"ok").decode() for r in outputs}
    # The reject paths are there (PDCR and NOOR: cancellation requests answered camt.029).
    assert {"ok", "AG01", "DU01", "FF01", "NARR", "PDCR", "NOOR"} <= kinds
    connect_gateway.assert_golden(outputs, CAPTURES / "flows.golden.jsonl")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_a_capture_from_a_running_gateway_replays_into_a_fresh_one_with_the_same_outputs(
    connect_gateway: GatewayUnderTest, connect_gateway_bootstrap: str, tmp_path: Path
) -> None:
    first = connect_gateway
    first.replay(CAPTURES / "flows.jsonl")
    expected = first.outputs()
    # What partners sent the first gateway, captured live with the CLI.
    inbound = [first.config.side(s).inbound_topic for s in ("onshore", "offshore")]
    captured = tmp_path / "taken.jsonl"
    done = cli(
        "capture",
        "--bootstrap",
        connect_gateway_bootstrap,
        "--topics",
        *inbound,
        "--out",
        str(captured),
        "--from-beginning",
        "--idle",
        "2",
    )
    assert done.returncode == 0, done.stderr
    sent = len(list(read_capture(CAPTURES / "flows.jsonl")))
    assert f"captured {sent} records to {captured}" in done.stderr
    assert not captured.with_name("taken.jsonl.part").exists()
    records = list(read_capture(captured))
    assert any(r.value and r.value.startswith(b"\x00\x01") for r in records)  # binary kept
    schema = json.loads(
        (ROOT / "docs" / "capture-format.md").read_text().split("```json\n")[2].split("```")[0]
    )
    for line in captured.read_text().splitlines():  # the documented format, line by line
        jsonschema.validate(json.loads(line), schema)

    fresh = GatewayUnderTest(connect_gateway_bootstrap, tmp_path / "fresh")
    (tmp_path / "fresh").mkdir()
    fresh.start()
    try:
        mapping = [
            f"{t}={fresh.config.side(s).inbound_topic}"
            for t, s in zip(inbound, ("onshore", "offshore"), strict=True)
        ]
        done = cli(
            "replay",
            str(captured),
            "--bootstrap",
            connect_gateway_bootstrap,
            "--to-topic-map",
            *mapping,  # keys kept by default
            "--speed",
            "max",
        )
        assert done.returncode == 0, done.stderr
        assert f"replayed {sent} records" in done.stderr
        again = fresh.outputs(inputs=sent)
    finally:
        fresh.stop()
    assert normalise(again) == normalise(expected)


def test_capture_and_replay_refuse_bad_arguments_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"version": 99, "topic": "x"}\n')
    done = cli("replay", str(bad), "--bootstrap", "127.0.0.1:1")
    assert done.returncode == 2 and "format version 99" in done.stderr
    done = cli(
        "replay", str(CAPTURES / "flows.jsonl"), "--bootstrap", "127.0.0.1:1", "--speed", "fast"
    )
    assert done.returncode == 2 and "--speed wants max or a factor" in done.stderr
    done = cli("replay", str(CAPTURES / "flows.jsonl"), "--to-topic-map", "nonsense")
    assert done.returncode == 2 and "SOURCE=TARGET" in done.stderr
    done = cli(
        "capture",
        "--topics",
        "t",
        "--out",
        str(tmp_path / "o.jsonl"),
        "--since",
        "yesterday",
        "--bootstrap",
        "127.0.0.1:1",
    )
    assert done.returncode == 2 and "--since wants an ISO 8601 time" in done.stderr
    record = json.loads((CAPTURES / "flows.jsonl").read_text().splitlines()[0])
    assert record["version"] == 1 and record["value"].startswith("<?xml")
    assert (SAMPLES / "offshore" / "pacs.002.001.10.xml").read_text() == record["value"]


def test_read_prints_a_topics_records_with_keys_and_headers(
    connect_gateway_bootstrap: str,
) -> None:
    import asyncio
    import uuid

    from aiokafka import AIOKafkaProducer

    from gateway.topics import ensure_topics

    topic = f"read-{uuid.uuid4().hex[:8]}"
    payment = (SAMPLES / "onshore" / "pacs.008.001.08.xml").read_bytes()

    async def put() -> None:
        await ensure_topics(connect_gateway_bootstrap, [topic], partitions=1)
        producer = AIOKafkaProducer(bootstrap_servers=connect_gateway_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                topic, payment, key=b"msg:HPCB", headers=[("message-type", b"pacs.008.001.08")]
            )
        finally:
            await producer.stop()

    asyncio.run(put())
    done = cli(
        "read", topic, "--from-beginning", "--max", "1", "--bootstrap", connect_gateway_bootstrap
    )
    assert done.returncode == 0, done.stderr
    first, *rest = done.stdout.splitlines()
    assert first == f"{topic}[0]@0 key=msg:HPCB message-type=pacs.008.001.08"
    assert "\n".join(rest).strip() == payment.decode().strip()
    assert "read 1 records" in done.stderr


def test_read_and_capture_from_now_print_only_what_arrives_after_they_start(
    connect_gateway_bootstrap: str, tmp_path: Path
) -> None:
    """ "From now" is by timestamp: the records already on the topic (a batch of three, which
    the embedded broker's reported end falls inside) are not printed or captured; the one
    sent after the command started is."""
    import asyncio
    import uuid

    from aiokafka import AIOKafkaProducer

    from gateway.topics import ensure_topics

    topic = f"now-{uuid.uuid4().hex[:8]}"

    async def put(values: list[bytes]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=connect_gateway_bootstrap, linger_ms=50)
        await producer.start()
        try:
            sent = [await producer.send(topic, v) for v in values]  # one batch
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    async def scenario() -> tuple[bytes, bytes, bytes]:
        await ensure_topics(connect_gateway_bootstrap, [topic], partitions=1)
        await put([b"old-1", b"old-2", b"old-3"])
        await asyncio.sleep(1.1)  # the old records' timestamps are before the commands start
        commands = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway.cli",
                *args,
                "--bootstrap",
                connect_gateway_bootstrap,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for args in (
                ("read", topic, "--max", "1"),
                ("capture", "--topics", topic, "--max", "1", "--out", str(tmp_path / "c.jsonl")),
            )
        ]
        # Each says where it reads from once it does: only then is the new record sent, so
        # it comes after both started however slowly they start on a busy machine.
        said: list[bytes] = []
        for c in commands:
            assert c.stderr is not None
            while not (line := await asyncio.wait_for(c.stderr.readline(), 60)).count(b" from "):
                assert line, b"".join(said)  # ended before it began to read
                said.append(line)
            said.append(line)
        await put([b"new"])
        read, capture = [await asyncio.wait_for(c.communicate(), 60) for c in commands]
        return read[0], b"".join(said) + read[1], capture[1]

    printed, said, _ = asyncio.run(scenario())
    assert b"old-" not in printed and b"new" in printed, printed
    assert "read 1 records" in said.decode(), said
    lines = (tmp_path / "c.jsonl").read_text().splitlines()
    assert len(lines) == 1 and "old-" not in lines[0], lines


def test_common_mistakes_are_one_line_and_a_stopped_replay_counts_what_it_sent(
    connect_gateway_bootstrap: str, tmp_path: Path
) -> None:
    """A topic that does not exist (read, capture), an --out folder that does not exist, and
    Ctrl-C during a replay: one line each, never a traceback (they were ValueError,
    FileNotFoundError and KeyboardInterrupt tracebacks)."""
    import signal
    import uuid

    from gateway.replay.format import Captured

    missing = f"no-such-{uuid.uuid4().hex[:8]}"
    boot = ("--bootstrap", connect_gateway_bootstrap)
    for done in (
        cli("read", missing, "--idle", "1", *boot),
        cli("capture", "--topics", missing, "--out", str(tmp_path / "o.jsonl"), *boot),
    ):
        assert done.returncode == 1, done.stderr
        assert f"topic {missing} does not exist" in done.stderr and "Traceback" not in done.stderr
    done = cli("capture", "--topics", "t", "--out", str(tmp_path / "nope" / "o.jsonl"), *boot)
    assert done.returncode == 2 and "the folder" in done.stderr and "does not exist" in done.stderr

    payment = (SAMPLES / "onshore" / "pacs.008.001.08.xml").read_bytes()
    capture = tmp_path / "slow.jsonl"
    topic = f"replay-{uuid.uuid4().hex[:8]}"
    capture.write_text(
        "".join(Captured(topic, 0, n, n * 1000, b"k", payment).to_json() + "\n" for n in range(60))
    )
    replaying = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "replay", str(capture), "--speed", "1", *boot],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # One record a second, 60 of them: interrupted once it has started (its progress bar
    # shows a record sent), long before the end.
    assert replaying.stderr is not None
    seen = ""
    while "replayed:" not in seen:  # the progress bar: its signal handlers are in place
        chunk = os.read(replaying.stderr.fileno(), 4096).decode()
        assert chunk, f"the replay ended before it started: {seen}"
        seen += chunk
    replaying.send_signal(signal.SIGINT)
    _, err = replaying.communicate(timeout=60)
    err = seen + err
    assert replaying.returncode == 0, err
    assert "Traceback" not in err and "stopped before the other" in err, err[-500:]


def test_the_plugin_costs_nothing_until_a_test_asks_for_the_gateway() -> None:
    """pytest loads every installed plugin in every run of the environment: loading this one
    imports none of the gateway (it used to import all of it, a third of a second), and it
    registers its marker."""
    probe = (
        "import sys, pytest, gateway.replay.pytest_plugin as p\n"
        "heavy = [m for m in ('lxml.etree', 'aiokafka', 'gateway.translation', "
        "'gateway.replay.golden') if m in sys.modules]\n"
        "print(heavy)\n"
        "assert p.GatewayUnderTest.__name__ == 'GatewayUnderTest'  # still importable from here\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
    markers = subprocess.run(
        [sys.executable, "-m", "pytest", "--markers"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert "@pytest.mark.connect_gateway:" in markers.stdout
