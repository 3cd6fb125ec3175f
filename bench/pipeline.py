"""The gateway end to end on Kafka, against a bare aiokafka passthrough on the same broker.

    python -m bench.pipeline [--rounds 3] [--count 5000] [--rate 1000] [--seconds 5]
                             [--workers 2] [--json FILE]

Per round, on one broker (the embedded one, or KAFKA_BOOTSTRAP_SERVERS), each on a fresh pair
of topics holding the same `count` pacs.008 messages (keyed by idempotency key, 3 partitions):
- passthrough: a bare aiokafka consumer group member that produces every record it reads to
  another topic and commits offsets per batch: the least any consume->produce service does;
- gateway: one in-process gateway instance (SQLite state, WAL, synchronous=FULL): read,
  validate, claim, translate, outbox, relay, commit; `--workers` reading/translating processes.
Throughput is records / seconds from the first record fetched to the last output acknowledged
(the group join before it is not counted, for either). Ratio = gateway / passthrough.
Latency: afterwards the gateway is offered `rate` msg/s for `seconds` (open loop: the sender
does not wait for the gateway); latency = output record timestamp - input record timestamp.
Goals (issue 4): ratio >= 0.4 and >= 5,000 msg/s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import kafka, line, spread, write_json
from bench.translate import messages
from gateway.config import Config, KafkaSection, StateSection
from gateway.iso20022.keys import extract_keys
from gateway.iso20022.reader import read_message
from gateway.pipeline import Pipeline
from gateway.state.sqlite import SqliteStore
from gateway.topics import ensure_topics
from tests.harness import gateway_config
from tests.kafka_io import publish, read_topic


class TimedPipeline(Pipeline):
    """The pipeline, noting when it started reading its first batch."""

    first: float | None = None

    async def _prepare(self, records: Any) -> Any:
        if self.first is None:
            self.first = time.perf_counter()
        return await super()._prepare(records)


def keyed(payloads: list[bytes]) -> list[tuple[bytes, bytes]]:
    return [(extract_keys(read_message(p)).message.encode(), p) for p in payloads]


async def passthrough(bootstrap: str, items: list[tuple[bytes, bytes]]) -> float:
    source, sink = f"pt-{uuid.uuid4().hex[:8]}", f"pt-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [source, sink])
    await publish(bootstrap, source, items)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=source,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
        fetch_max_wait_ms=KafkaSection().fetch_max_wait_ms,  # as the gateway's consumer
    )
    await producer.start()
    await consumer.start()
    done, first = 0, None
    try:
        while done < len(items):
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            records = [r for recs in batch.values() for r in recs]
            if not records:
                continue
            first = first or time.perf_counter()
            futures = [
                await producer.send(sink, r.value, key=r.key, headers=r.headers) for r in records
            ]
            await asyncio.gather(*futures)
            await consumer.commit()
            done += len(records)
        assert first is not None
        return len(items) / (time.perf_counter() - first)
    finally:
        await consumer.stop()
        await producer.stop()


async def gateway_run(
    bootstrap: str, items: list[tuple[bytes, bytes]], workdir: Path, workers: int
) -> tuple[float, Config, TimedPipeline, SqliteStore, asyncio.Event, asyncio.Task[None]]:
    config = gateway_config(
        f"bench{uuid.uuid4().hex[:8]}",
        StateSection(sqlite_path=str(workdir / f"{uuid.uuid4().hex}.sqlite3")),
        batch_max_records=KafkaSection().batch_max_records,  # the service's default
    )
    config = dataclasses.replace(
        config, gateway=dataclasses.replace(config.gateway, workers=workers)
    )
    await ensure_topics(bootstrap, config.topics())
    await publish(bootstrap, config.onshore.inbound_topic, items)
    store = SqliteStore(Path(config.state.sqlite_path))
    await store.open()
    pipeline = TimedPipeline(config, store, bootstrap)
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    while pipeline.first is None or pipeline.processed < len(items):
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    # The relay publishes beside the batches: done when the outbox is empty.
    while True:
        if not (await store.counts())["unsent"]:
            break
        await asyncio.sleep(0.005)
    assert pipeline.first is not None
    rate = len(items) / (time.perf_counter() - pipeline.first)
    return rate, config, pipeline, store, stop, task


async def offer(bootstrap: str, topic: str, rate: int, seconds: float) -> None:
    """The open-loop load generator: `rate` msg/s for `seconds`, never waiting for the
    gateway; each record's timestamp is the moment it was sent. Runs in its own process
    (`python -m bench.pipeline --offer ...`), so it neither slows nor is slowed by the gateway."""
    items = keyed(messages(int(rate * seconds), distinct=False, seed=99))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
    await producer.start()
    start = time.perf_counter()
    try:
        futures = []
        for i, (key, value) in enumerate(items):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            stamp = int(time.time() * 1000)
            futures.append(await producer.send(topic, value, key=key, timestamp_ms=stamp))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def latency(
    bootstrap: str, config: Config, rate: int, seconds: float, already: int
) -> list[float]:
    """Per-message latency in ms under an offered load: output record timestamp (set by the
    gateway's relay when it publishes) - input record timestamp (set by the generator). The
    topics hold `already` records from the throughput phase."""
    topic = config.onshore.inbound_topic
    load = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.pipeline",
        "--offer",
        bootstrap,
        topic,
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
    )
    if await load.wait() != 0:
        raise SystemExit("the load generator failed")
    count = int(rate * seconds)
    offered = {k for k, _ in keyed(messages(count, distinct=False, seed=99))}
    sent = {
        r.key: r.timestamp
        for r in await read_topic(bootstrap, topic, already + count, wait=60, settle=0)
        if r.key in offered
    }
    out = await read_topic(
        bootstrap, config.offshore.outbound_topic, already + count, wait=120, settle=0
    )
    return sorted(float(r.timestamp - sent[r.key]) for r in out if r.key in sent)


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def bench(args: argparse.Namespace) -> dict[str, float]:
    async with kafka() as bootstrap:
        with tempfile.TemporaryDirectory() as tmp:
            gw, pt = [], []
            lat: list[float] = []
            for r in range(args.rounds):
                items = keyed(messages(args.count, distinct=False, seed=r))
                pt.append(await passthrough(bootstrap, items))
                rate, config, _, store, stop, task = await gateway_run(
                    bootstrap, items, Path(tmp), args.workers
                )
                gw.append(rate)
                if r == args.rounds - 1 and args.seconds > 0:
                    lat = await latency(bootstrap, config, args.rate, args.seconds, len(items))
                stop.set()
                await task
                await store.close()
    ratios = [g / p for g, p in zip(gw, pt, strict=True)]
    result = spread("gateway_per_s", gw) | spread("passthrough_per_s", pt) | spread("ratio", ratios)
    print(
        f"pacs.008 onshore -> offshore, {args.rounds} rounds x {args.count} messages, "
        f"gateway.workers = {args.workers}"
    )
    print(line("gateway", gw, "msg/s", goal="  goal >= 5,000/s"))
    print(line("bare aiokafka passthrough", pt, "msg/s"))
    print(line("ratio gateway/passthrough", ratios, "", fmt=".2f", goal="  goal >= 0.4"))
    if lat:
        result |= {
            "offered_per_s": float(args.rate),
            "latency_p50_ms": statistics.median(lat),
            "latency_p99_ms": percentile(lat, 99),
            "latency_max_ms": lat[-1],
            "latency_samples": float(len(lat)),
        }
        print(
            f"  latency at {args.rate:,}/s offered   p50 {statistics.median(lat):.1f} ms, "
            f"p99 {percentile(lat, 99):.1f} ms, max {lat[-1]:.1f} ms ({len(lat)} messages)"
        )
    write_json(args.json, result)
    return result


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--count", type=int, default=5000, help="messages per round")
    ap.add_argument("--rate", type=int, default=1000, help="offered msg/s for latency")
    ap.add_argument("--seconds", type=float, default=5.0, help="latency phase length (0: skip)")
    ap.add_argument(
        "--workers", type=int, default=2, help="gateway.workers (0: a thread, no processes)"
    )
    ap.add_argument("--json", type=Path)
    ap.add_argument("--offer", nargs=2, metavar=("BOOTSTRAP", "TOPIC"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.offer:
        asyncio.run(offer(args.offer[0], args.offer[1], args.rate, args.seconds))
        return {}
    return asyncio.run(bench(args))


if __name__ == "__main__":
    main()
