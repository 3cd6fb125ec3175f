"""Crash safety and group membership, with `connect-gateway run` as real processes.

1. One instance killed with SIGKILL at random points while messages flow, restarted, repeated.
2. Three instances in one consumer group sharing PostgreSQL state: one killed, one added,
   while messages flow.
After either, with a final clean run: every input has exactly one effect in the state store
(one claim per key, one obligation), at least one published output with its stable key and
byte-identical repeats, no output without an input, nothing in the DLQ or among the rejects.
Messages: CRASH_TEST_MESSAGES (default 10,000, the issue's figure). The SQLite run of 1. reads
ahead in two worker processes (so kills also land while a batch is read early); the others
read in a thread.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from bench.translate import messages
from gateway.config import Config, StateSection, load
from gateway.idempotency import IdempotencyKeys, extract_keys
from gateway.iso20022.reader import read_message
from gateway.state import store_for
from gateway.topics import ensure_topics
from tests.kafka_io import publish, read_topic
from tests.servers import process_alive

pytestmark = pytest.mark.kafka
COUNT = int(os.environ.get("CRASH_TEST_MESSAGES", "10000"))


def write_config(tmp_path: Path, state: StateSection, workers: int = 0) -> tuple[Path, Config]:
    prefix = f"crash{uuid.uuid4().hex[:8]}"
    path = tmp_path / "gateway.toml"
    path.write_text(f"""
[gateway]
workers = {workers}
[onshore]
inbound_topic = "{prefix}.onshore.inbound"
outbound_topic = "{prefix}.onshore.outbound"
[offshore]
inbound_topic = "{prefix}.offshore.inbound"
outbound_topic = "{prefix}.offshore.outbound"
[kafka]
group_id = "{prefix}"
dlq_topic = "{prefix}.dlq"
retry_topic_prefix = "{prefix}.retry"
batch_max_records = 200
session_timeout_ms = 6000
heartbeat_interval_ms = 1000
[state]
backend = "{state.backend}"
sqlite_path = "{state.sqlite_path}"
postgres_dsn = "{state.postgres_dsn}"
[ops]
http_port = 0  # several instances on one host
log_format = "text"
[settlement]
cut_offs = []  # close on command only: no cycle may close mid-test on the wall clock
reports_topic = "{prefix}.reports"
""")
    return path, load(path, environ={})


def start_gateway(config: Path, bootstrap: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "--config", str(config), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux /proc), e.g. a gateway's worker pool."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


async def counts(state: StateSection) -> dict[str, int]:
    store = store_for(state)
    await store.open()
    try:
        return await store.counts()
    finally:
        await store.close()


def inputs(count: int) -> tuple[list[bytes], list[IdempotencyKeys]]:
    payloads = messages(count, distinct=False, seed=42)
    return payloads, [extract_keys(read_message(p)) for p in payloads]


def keyed(payloads: list[bytes], keys: list[IdempotencyKeys]) -> list[tuple[bytes, bytes]]:
    return [(k.message.encode(), p) for p, k in zip(payloads, keys, strict=True)]


async def assert_exactly_once(
    bootstrap: str, config: Config, state: StateSection, keys: list[IdempotencyKeys]
) -> int:
    """The invariants, once every input has an output; the number of outputs read."""
    outputs = await read_topic(
        bootstrap,
        config.offshore.outbound_topic,
        len(keys),
        wait=300,
        settle=3,
        distinct_keys=True,
    )
    input_keys = {k.message.encode() for k in keys}
    assert {r.key for r in outputs} == input_keys  # all published; none without an input
    by_key: dict[bytes, set[bytes]] = {}
    for r in outputs:
        by_key.setdefault(r.key, set()).add(r.value)
    assert all(len(v) == 1 for v in by_key.values())  # repeats, if any, are byte-identical

    store = store_for(state)
    await store.open()
    try:
        obligations = await store.obligations()
        final = await store.counts()
    finally:
        await store.close()
    assert len(obligations) == len(keys)
    assert {o.reference for o, _ in obligations} == {k.correlation for k in keys}
    assert {s for _, s in obligations} == {"open"}
    # One claim per message and one per UETR; nothing left unsent.
    assert final == {"claims": 2 * len(keys), "unsent": 0, "obligations": len(keys)}
    for topic in (config.kafka.dlq_topic, config.onshore.outbound_topic):
        assert await read_topic(bootstrap, topic, 0, settle=2) == []
    return len(outputs)


def stop_cleanly(proc: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM, exit 0 within a generous bound; an instance that does not exit is killed
    (never left running past its test) and the test fails."""
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise AssertionError("no exit 120 s after SIGTERM\n" + log.read_text()[-3000:]) from None
    assert code == 0, log.read_text()[-3000:]


async def test_sigkill_at_random_points_loses_nothing_and_applies_nothing_twice(
    kafka_bootstrap: str, state: StateSection, tmp_path: Path
) -> None:
    workers = 2 if state.backend == "sqlite" else 0
    config_file, config = write_config(tmp_path, state, workers)
    await ensure_topics(kafka_bootstrap, config.topics())
    payloads, keys = inputs(COUNT)
    await publish(kafka_bootstrap, config.onshore.inbound_topic, keyed(payloads, keys))

    log = tmp_path / "gateway.log"
    rng = random.Random(7)
    progress: list[int] = []
    helpers: set[int] = set()  # the killed runs' worker processes
    for _ in range(4):
        before = (await counts(state))["claims"]
        proc = start_gateway(config_file, kafka_bootstrap, log)
        # Kill only once this run is visibly processing: a kill during start-up proves nothing.
        deadline = time.monotonic() + 60
        while (await counts(state))["claims"] == before and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            await asyncio.sleep(0.05)
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        helpers |= descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        progress.append((await counts(state))["claims"])
    # The kills interrupted work in flight: progress was made and work was left to do.
    assert 0 < progress[0] and progress[-1] < 2 * COUNT, progress
    if workers:
        assert helpers, "the worker processes were not found"
        for _ in range(50):  # they check on their service every second
            lingering = [p for p in helpers if process_alive(p)]
            if not lingering:
                break
            await asyncio.sleep(0.2)
        assert not lingering, "worker processes outlived their service"

    final = start_gateway(config_file, kafka_bootstrap, log)
    try:
        outputs = await assert_exactly_once(kafka_bootstrap, config, state, keys)
    finally:
        stop_cleanly(final, log)
    print(f"{COUNT} messages, {len(progress)} SIGKILLs, {outputs} outputs")


async def test_three_instances_share_the_work_through_a_kill_and_an_addition(
    kafka_bootstrap: str, postgres_dsn: str, tmp_path: Path
) -> None:
    state = StateSection(backend="postgres", postgres_dsn=postgres_dsn)
    config_file, config = write_config(tmp_path, state)
    # Six partitions on the busy topic, so three members each get a share.
    await ensure_topics(kafka_bootstrap, config.topics(), partitions=6)
    payloads, keys = inputs(COUNT)
    logs = [tmp_path / f"gateway-{i}.log" for i in range(4)]
    procs = [start_gateway(config_file, kafka_bootstrap, logs[i]) for i in range(3)]
    try:
        # All three in the group before traffic starts.
        deadline = time.monotonic() + 60
        while not all("consuming " in log.read_text() for log in logs[:3]):
            assert time.monotonic() < deadline, "the instances did not join"
            await asyncio.sleep(0.2)

        async def trickle() -> None:  # a steady stream for ~12 s, so changes land mid-stream
            chunk = max(1, COUNT // 24)
            items = keyed(payloads, keys)
            for i in range(0, COUNT, chunk):
                await publish(kafka_bootstrap, config.onshore.inbound_topic, items[i : i + chunk])
                await asyncio.sleep(0.5)

        feeder = asyncio.create_task(trickle())
        await asyncio.sleep(4)
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait(10)
        await asyncio.sleep(3)
        procs.append(start_gateway(config_file, kafka_bootstrap, logs[3]))
        await feeder
        outputs = await assert_exactly_once(kafka_bootstrap, config, state, keys)
    finally:
        # Every instance is stopped even when one fails to stop cleanly.
        failures = []
        for proc, log in zip(procs[1:], logs[1:], strict=True):
            try:
                stop_cleanly(proc, log)
            except AssertionError as exc:
                failures.append(exc)
        if failures:
            raise failures[0]
    # Every member that lived to the end processed a share of the records.
    shares = [
        int(m.group(1))
        for log in logs[1:]
        if (m := re.search(r"stopped after (\d+)", log.read_text()))
    ]
    assert len(shares) == 3 and all(n > 0 for n in shares), shares
    print(f"{COUNT} messages, shares of the survivors {shares}, {outputs} outputs")
