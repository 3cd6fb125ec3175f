"""Crash safety: `connect-gateway run` killed with SIGKILL at random points while messages flow.

After the kills and a final clean run: every input has exactly one effect in the state store
(one claim, one obligation), at least one published output with its stable key, no output
without an input, and nothing in the DLQ or among the rejects.
Messages: CRASH_TEST_MESSAGES (default 10,000, the issue's figure).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from bench.translate import messages
from gateway.config import StateSection, load
from gateway.iso20022.keys import extract_keys
from gateway.iso20022.reader import read_message
from gateway.state import store_for
from gateway.topics import ensure_topics
from tests.kafka_io import publish, read_topic

pytestmark = pytest.mark.kafka
COUNT = int(os.environ.get("CRASH_TEST_MESSAGES", "10000"))


def start_gateway(config: Path, bootstrap: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "--config", str(config), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


async def counts(state: StateSection) -> dict[str, int]:
    store = store_for(state)
    await store.open()
    try:
        return await store.counts()
    finally:
        await store.close()


async def test_sigkill_at_random_points_loses_nothing_and_applies_nothing_twice(
    kafka_bootstrap: str, state: StateSection, tmp_path: Path
) -> None:
    prefix = f"crash{uuid.uuid4().hex[:8]}"
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(f"""
[onshore]
inbound_topic = "{prefix}.onshore.inbound"
outbound_topic = "{prefix}.onshore.outbound"
[offshore]
inbound_topic = "{prefix}.offshore.inbound"
outbound_topic = "{prefix}.offshore.outbound"
[kafka]
group_id = "{prefix}"
dlq_topic = "{prefix}.dlq"
batch_max_records = 200
session_timeout_ms = 6000
heartbeat_interval_ms = 1000
[state]
backend = "{state.backend}"
sqlite_path = "{state.sqlite_path}"
postgres_dsn = "{state.postgres_dsn}"
""")
    config = load(config_file, environ={})
    await ensure_topics(kafka_bootstrap, config.topics())

    payloads = messages(COUNT, distinct=False, seed=42)
    keys = [extract_keys(read_message(p)) for p in payloads]
    await publish(
        kafka_bootstrap,
        config.onshore.inbound_topic,
        [(k.message.encode(), p) for p, k in zip(payloads, keys, strict=True)],
    )

    log = tmp_path / "gateway.log"
    rng = random.Random(7)
    progress: list[int] = []
    for _ in range(4):
        before = (await counts(state))["claims"]
        proc = start_gateway(config_file, kafka_bootstrap, log)
        # Kill only once this run is visibly processing: a kill during start-up proves nothing.
        deadline = time.monotonic() + 60
        while (await counts(state))["claims"] == before and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            await asyncio.sleep(0.05)
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        progress.append((await counts(state))["claims"])
    # The kills interrupted work in flight: progress was made and work was left to do.
    assert 0 < progress[0] and progress[-1] < COUNT, progress
    kills = len(progress)

    final = start_gateway(config_file, kafka_bootstrap, log)
    try:
        outputs = await read_topic(
            kafka_bootstrap,
            config.offshore.outbound_topic,
            COUNT,
            wait=300,
            settle=3,
            distinct_keys=True,
        )
    finally:
        final.send_signal(signal.SIGTERM)
        assert final.wait(60) == 0, log.read_text()[-3000:]

    input_keys = {k.message.encode() for k in keys}
    output_keys = {r.key for r in outputs}
    assert output_keys == input_keys  # every input published; no output without an input
    by_key: dict[bytes, set[bytes]] = {}
    for r in outputs:
        by_key.setdefault(r.key, set()).add(r.value)
    assert all(len(v) == 1 for v in by_key.values())  # repeats, if any, are byte-identical

    store = store_for(state)
    await store.open()
    try:
        obligations = await store.obligations()
        final_counts = await store.counts()
    finally:
        await store.close()
    uetrs = {k.correlation for k in keys}
    assert len(obligations) == COUNT and {o.reference for o, _ in obligations} == uetrs
    assert {s for _, s in obligations} == {"open"}
    # A claim per message and one per UETR; nothing left unsent.
    assert final_counts == {"claims": 2 * COUNT, "unsent": 0, "obligations": COUNT}

    for topic in (config.kafka.dlq_topic, config.onshore.outbound_topic):
        assert await read_topic(kafka_bootstrap, topic, 0, settle=2) == []
    print(
        f"{COUNT} messages, {kills} SIGKILLs, {len(outputs)} outputs "
        f"({len(outputs) - COUNT} republished after crashes)"
    )
