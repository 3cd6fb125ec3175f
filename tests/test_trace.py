"""`connect-gateway trace`: one payment's story across both sides, in order, from the state
store, over a real broker on both stores. A status that overtook its payment waits on the retry
topics; the payment comes, is booked and forwarded; the status comes back and is answered; the
payment is returned; its cycle closes. The trace tells all of it, in that order, with topics,
keys and ids, as text and as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from gateway.config import StateSection
from gateway.timeline import timeline
from tests.harness import gateway_config, running_gateway, sample

pytestmark = pytest.mark.kafka

UETR = "0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01"  # the onshore sample payment's


def _config_file(tmp_path: Path, state: StateSection, dlq: str, retry: str) -> Path:
    if state.backend == "postgres":
        store = f'backend = "postgres"\npostgres_dsn = "{state.postgres_dsn}"\n'
    else:
        store = f'sqlite_path = "{state.sqlite_path}"\n'
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[state]\n{store}[kafka]\ndlq_topic = "{dlq}"\nretry_topic_prefix = "{retry}"\n'
    )
    return path


def _trace(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "trace", *args],
        capture_output=True,
        timeout=60,
        check=False,
    )


async def test_a_payments_whole_story_in_order(
    kafka_bootstrap: str, state: StateSection, tmp_path: Path
) -> None:
    # Retry delays long enough for the payment to be committed before the status has used
    # them all, on a busy machine too (the test waits on records, never on time).
    config = gateway_config(f"t{uuid.uuid4().hex[:10]}", state, retry_delays_ms=(3000, 30000))
    async with running_gateway(config, kafka_bootstrap) as gw:
        await gw.publish("offshore", sample("offshore", "pacs.002.001.10"))  # too early
        assert len(await gw.read(config.kafka.retry_topic(2), 1)) == 1
        await gw.publish("onshore", sample("onshore", "pacs.008.001.08"))
        assert len(await gw.read(config.offshore.outbound_topic, 1)) == 1
        assert len(await gw.read(config.onshore.outbound_topic, 1)) == 1  # the status
        await gw.publish("offshore", sample("offshore", "pacs.004.001.09"))
        assert len(await gw.read(config.onshore.outbound_topic, 2)) == 2
        assert gw.cycles is not None and await gw.cycles.close_now("CNY") == "CNY-000001"
        traced = await gw.store.trace(UETR)

    events = timeline(traced, config.kafka.dlq_topic, config.kafka.retry_topic_prefix)
    story = [(e.what, e.fields.get("type") or e.fields.get("reference") or "") for e in events]
    # The status may come back from the retry topics more than once before the payment is
    # committed (each time: received again, retried): how often depends on timing.
    tried = story.index(("received", "pacs.008.001.08"))
    assert story[:2] == [("received", "pacs.002.001.10"), ("retried", "pacs.002.001.10")]
    for n, (what, kind) in enumerate(story[2:tried]):
        assert kind == "pacs.002.001.10"
        assert what == ("retried" if n % 2 else f"received again (attempt {n // 2 + 2})")
    attempt = (tried - 2) // 2 + 2
    assert story[tried:] == [
        ("received", "pacs.008.001.08"),
        ("booked", UETR),
        ("sent", "pacs.008.001.08"),
        (f"received again (attempt {attempt})", "pacs.002.001.10"),
        ("sent", "pacs.002.001.10"),
        ("received", "pacs.004.001.09"),
        ("return booked", f"return:{UETR}"),
        ("sent", "pacs.004.001.09"),
        # The return nets the payment out: nothing moves, the cycle is settled as it stands.
        ("cycle settled", ""),
    ], story
    sent = [e for e in events if e.what == "sent"]
    assert [e.fields["topic"] for e in sent] == [
        config.offshore.outbound_topic,
        config.onshore.outbound_topic,
        config.onshore.outbound_topic,
    ]
    first = events[0].fields
    assert first["origin"].startswith(config.offshore.inbound_topic + ":")
    assert first["key"].startswith("msg:VHBKHKHHXXX:")
    assert all(e.fields["published"] != "not yet" for e in sent)  # the relay published them
    assert events[-1].fields["cycle"] == "CNY-000001"

    # The command prints the same story, as text and as JSON; an unknown UETR is said.
    path = _config_file(tmp_path, state, config.kafka.dlq_topic, config.kafka.retry_topic_prefix)
    as_json = _trace(UETR, "--format", "json", "--config", str(path))
    assert as_json.returncode == 0, as_json.stderr
    printed = json.loads(as_json.stdout)
    assert printed["subject"] == UETR
    assert [(e["what"], e["fields"]) for e in printed["events"]] == [
        (e.what, e.fields) for e in events
    ]
    as_text = _trace(UETR, "--config", str(path))
    lines = as_text.stdout.decode().splitlines()
    assert len(lines) == len(events) and "received" in lines[0] and "pacs.002" in lines[0]
    unknown = _trace(str(uuid.uuid4()), "--config", str(path))
    assert unknown.returncode == 2 and unknown.stderr.count(b"\n") == 1
    assert b"nothing is known of" in unknown.stderr
