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
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.translate import messages
from gateway.config import load
from gateway.iso20022.keys import extract_keys
from gateway.iso20022.reader import read_message
from gateway.service import topics_of
from gateway.topics import ensure_topics

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


def claimed(state: Path) -> int:
    if not state.exists():
        return 0
    try:
        with sqlite3.connect(state, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM claims").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


async def read_all(
    bootstrap: str, topic: str, until: int, wait: float
) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"check-{uuid.uuid4()}",
        max_partition_fetch_bytes=8 << 20,
    )
    await consumer.start()
    out: list[tuple[bytes, bytes]] = []
    keys: set[bytes] = set()
    deadline = time.monotonic() + wait
    idle = 0
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            got = [r for records in batch.values() for r in records]
            out += [(r.key, r.value) for r in got]
            keys |= {r.key for r in got}
            idle = 0 if got else idle + 1
            if len(keys) >= until and idle >= 4:
                break
    finally:
        await consumer.stop()
    return out


async def test_sigkill_at_random_points_loses_nothing_and_applies_nothing_twice(
    kafka_bootstrap: str, tmp_path: Path
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
[state]
sqlite_path = "{tmp_path / "state.sqlite3"}"
""")
    config = load(config_file, environ={})
    await ensure_topics(kafka_bootstrap, topics_of(config))

    payloads = messages(COUNT, distinct=False, seed=42)
    keys = [extract_keys(read_message(p)) for p in payloads]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        sent = [
            await producer.send(config.onshore.inbound_topic, p, key=k.message.encode())
            for p, k in zip(payloads, keys, strict=True)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()

    log = tmp_path / "gateway.log"
    state = tmp_path / "state.sqlite3"
    rng = random.Random(7)
    progress: list[int] = []
    for _ in range(4):
        before = claimed(state)
        proc = start_gateway(config_file, kafka_bootstrap, log)
        # Kill only once this run is visibly processing: a kill during start-up proves nothing.
        deadline = time.monotonic() + 60
        while claimed(state) == before and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            await asyncio.sleep(0.05)
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        progress.append(claimed(state))
    # The kills interrupted work in flight: progress was made and work was left to do.
    assert 0 < progress[0] and progress[-1] < COUNT, progress
    kills = len(progress)

    final = start_gateway(config_file, kafka_bootstrap, log)
    try:
        outputs = await read_all(kafka_bootstrap, config.offshore.outbound_topic, COUNT, wait=300)
    finally:
        final.send_signal(signal.SIGTERM)
        assert final.wait(60) == 0, log.read_text()[-3000:]

    input_keys = {k.message.encode() for k in keys}
    output_keys = {key for key, _ in outputs}
    assert output_keys == input_keys  # every input published; no output without an input
    by_key: dict[bytes, set[bytes]] = {}
    for key, value in outputs:
        by_key.setdefault(key, set()).add(value)
    assert all(len(v) == 1 for v in by_key.values())  # repeats, if any, are byte-identical

    db = sqlite3.connect(tmp_path / "state.sqlite3")
    uetrs = {k.correlation for k in keys}
    rows = db.execute("SELECT reference, status FROM obligations").fetchall()
    assert len(rows) == COUNT and {r for r, _ in rows} == uetrs
    assert {s for _, s in rows} == {"open"}
    message_claims = db.execute("SELECT count(*) FROM claims WHERE key LIKE 'msg:%'").fetchone()[0]
    assert message_claims == COUNT
    assert db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0] == 0
    db.close()

    for topic in (config.kafka.dlq_topic, config.onshore.outbound_topic):
        assert await read_all(kafka_bootstrap, topic, 0, wait=3) == []
    print(
        f"{COUNT} messages, {kills} SIGKILLs, {len(outputs)} outputs "
        f"({len(outputs) - COUNT} republished after crashes)"
    )
