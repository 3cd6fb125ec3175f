"""The gateway end to end on Kafka, against a bare aiokafka passthrough on the same broker.

    python -m bench.pipeline [--rounds 3] [--count 5000] [--batch-sizes 50,200,500,1000]
                             [--rates 500,1000,2000,5000] [--seconds 5] [--latency-rounds 3]
                             [--workers 2] [--json FILE]

Per round, on one broker (the embedded one, or KAFKA_BOOTSTRAP_SERVERS), each on a fresh pair
of topics holding the same `count` pacs.008 messages (keyed by idempotency key, 3 partitions):
- passthrough: a bare aiokafka consumer group member that produces every record it reads to
  another topic and commits offsets per batch: the least any consume->produce service does;
- gateway: one in-process gateway instance (SQLite state, WAL, synchronous=FULL): read,
  validate, claim, translate, outbox, relay, commit; `--workers` reading/translating processes.
Throughput is records / seconds from the first record fetched to the last output acknowledged
(the group join before it is not counted, for either). Ratio = gateway / passthrough.
`--batch-sizes`: the gateway's throughput again for each kafka.batch_max_records.
Latency: for each offered load, an idle gateway on fresh topics is offered that many msg/s
for `seconds` by a generator in its own process (open loop: it never waits for the gateway);
latency = output record timestamp (relay) - input record timestamp (generator); p50, p90,
p99 and max per round, medians over `--latency-rounds`.
Half capacity: one more load, half the gateway's median throughput measured in the same run
(`latency_half_*` in the results).
Goals (issue 26): ratio >= 0.35; p99 < 50 ms at half of one instance's capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import kafka, line, spread, write_json
from bench.translate import messages
from gateway.config import Config, KafkaSection, StateSection
from gateway.idempotency import extract_keys
from gateway.iso20022.reader import read_message
from gateway.pipeline import Pipeline
from gateway.replay.clients import publish, read_topic
from gateway.replay.local import local_config
from gateway.state.sqlite import SqliteStore
from gateway.topics import ensure_topics


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
    bootstrap: str,
    items: list[tuple[bytes, bytes]],
    workdir: Path,
    workers: int,
    batch: int | None = None,
) -> float:
    """A gateway on fresh topics holding `items`: records/s from its first fetch to its last
    output acknowledged. The gateway is stopped after."""
    config = _config(workdir, workers, batch)
    async with _gateway(bootstrap, config, items) as (pipeline, store, task):
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
        return len(items) / (time.perf_counter() - pipeline.first)


@contextlib.asynccontextmanager
async def _gateway(
    bootstrap: str, config: Config, items: Sequence[tuple[bytes, bytes]] = ()
) -> AsyncIterator[tuple[TimedPipeline, SqliteStore, asyncio.Task[None]]]:
    """One gateway (bare pipeline, SQLite) on the config's fresh topics, `items` published
    on its onshore inbound topic before it starts; stopped, and its store closed, after."""
    await ensure_topics(bootstrap, config.topics())
    if items:
        await publish(bootstrap, config.onshore.inbound_topic, items)
    store = SqliteStore(Path(config.state.sqlite_path))
    await store.open()
    pipeline = TimedPipeline(config, store, bootstrap)
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    try:
        yield pipeline, store, task
    finally:
        stop.set()
        await task
        await store.close()


def _config(workdir: Path, workers: int, batch: int | None) -> Config:
    config = local_config(
        f"bench{uuid.uuid4().hex[:8]}",
        StateSection(sqlite_path=str(workdir / f"{uuid.uuid4().hex}.sqlite3")),
        batch_max_records=batch or KafkaSection().batch_max_records,  # the service's default
        fetch_max_wait_ms=KafkaSection().fetch_max_wait_ms,
    )
    return dataclasses.replace(config, gateway=dataclasses.replace(config.gateway, workers=workers))


def offer(bootstrap: str, topic: str, rate: int, seconds: float) -> None:
    """The open-loop load generator: `rate` msg/s for `seconds`, never waiting for the
    gateway; each record's timestamp is the moment it was handed to the producer. Runs in its
    own process (`python -m bench.pipeline --offer ...`), so it neither slows nor is slowed by
    the gateway, with librdkafka's producer (confluent-kafka): it costs a fifth of the CPU an
    aiokafka producer does per record (~75 against ~390 us here), which on a 2-vCPU machine
    would otherwise be taken from the gateway it measures."""
    from confluent_kafka import Producer  # the bench extra; only this process needs it

    items = keyed(messages(int(rate * seconds), distinct=False, seed=rate))
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 0, "enable.idempotence": False}
    )
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    start = time.perf_counter()
    for i, (key, value) in enumerate(items):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        stamp = int(time.time() * 1000)
        producer.produce(topic, value, key=key, timestamp=stamp, on_delivery=delivered)
        producer.poll(0)
    if producer.flush(60) or failures:
        raise SystemExit(f"the load generator could not deliver: {failures[:3]}")


async def latency_round(
    bootstrap: str, workdir: Path, workers: int, rate: int, seconds: float
) -> dict[str, float]:
    """One idle gateway on fresh topics, offered `rate` msg/s for `seconds` by the generator in
    its own process. Latency of each message = output record timestamp (set by the gateway's
    relay when it publishes) - input record timestamp (set by the generator when it sends)."""
    config = _config(workdir, workers, None)
    async with _gateway(bootstrap, config) as (pipeline, _, task):
        # Offered only once the gateway holds its partitions: the group join is not latency.
        while pipeline.consumer is None or not pipeline.consumer.assignment():
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        topic = config.onshore.inbound_topic
        load = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "bench.pipeline", "--offer", bootstrap, topic),
            *("--rate", str(rate), "--seconds", str(seconds)),
        )
        if await load.wait() != 0:
            raise SystemExit("the load generator failed")
        count = int(rate * seconds)
        sent = {r.key: r.timestamp for r in await read_topic(bootstrap, topic, count, 60, 0)}
        out = await read_topic(bootstrap, config.offshore.outbound_topic, count, wait=300, settle=0)
    lat = sorted(float(r.timestamp - sent[r.key]) for r in out if r.key in sent)
    if len(lat) < count:
        raise SystemExit(f"only {len(lat)} of {count} offered messages came out")
    stamps = sorted(sent.values())
    span = (stamps[-1] - stamps[0]) / 1000
    return {
        "offered": count / span if span > 0 else float(rate),  # what the generator achieved
        "p50": percentile(lat, 50),
        "p90": percentile(lat, 90),
        "p99": percentile(lat, 99),
        "max": lat[-1],
        "samples": float(len(lat)),
    }


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


async def bench(args: argparse.Namespace) -> dict[str, float]:
    result: dict[str, float] = {"workers": float(args.workers)}
    async with kafka() as bootstrap:
        with tempfile.TemporaryDirectory() as tmp:
            gw, pt = [], []
            for r in range(args.rounds):
                items = keyed(messages(args.count, distinct=False, seed=r))
                pt.append(await passthrough(bootstrap, items))
                gw.append(await gateway_run(bootstrap, items, Path(tmp), args.workers))
            ratios = [g / p for g, p in zip(gw, pt, strict=True)]
            result |= spread("gateway_per_s", gw) | spread("passthrough_per_s", pt)
            result |= spread("ratio", ratios)
            print(
                f"pacs.008 onshore -> offshore, {args.rounds} rounds x {args.count} messages, "
                f"gateway.workers = {args.workers}, kafka.batch_max_records = "
                f"{KafkaSection().batch_max_records}"
            )
            print(line("gateway", gw, "msg/s"))
            print(line("bare aiokafka passthrough", pt, "msg/s"))
            print(line("ratio gateway/passthrough", ratios, "", fmt=".2f", goal="  goal >= 0.35"))

            sizes = _ints(args.batch_sizes)
            if sizes:
                print(f"throughput by kafka.batch_max_records ({args.rounds} rounds each):")
            for size in sizes:
                rates = []
                for r in range(args.rounds):
                    items = keyed(messages(args.count, distinct=False, seed=100 + r))
                    rates.append(
                        await gateway_run(bootstrap, items, Path(tmp), args.workers, batch=size)
                    )
                result |= spread(f"batch_{size}_per_s", rates)
                print(line(f"  batch {size}", rates, "msg/s"))

            # Half of one instance's capacity, as measured above.
            half = max(10, round(statistics.median(gw) / 2 / 10) * 10)
            result["half_capacity_per_s"] = float(half)
            offered = [*_ints(args.rates), half] if args.seconds > 0 else []
            if offered:
                print(
                    f"latency, open loop, {args.seconds:g} s per load, "
                    f"{args.latency_rounds} rounds each (medians of the rounds' percentiles):"
                )
            for index, rate in enumerate(offered):
                rounds = [
                    await latency_round(bootstrap, Path(tmp), args.workers, rate, args.seconds)
                    for _ in range(args.latency_rounds)
                ]
                label = "half" if index == len(offered) - 1 else str(rate)
                for name in ("offered", "p50", "p90", "p99", "max"):
                    values = [x[name] for x in rounds]
                    unit = "_per_s" if name == "offered" else "_ms"
                    result |= spread(f"latency_{label}_{name}{unit}", values)
                result[f"latency_{label}_samples"] = sum(x["samples"] for x in rounds)

                def med(name: str, rounds: list[dict[str, float]] = rounds) -> float:
                    return statistics.median(x[name] for x in rounds)

                p99s = [x["p99"] for x in rounds]
                goal = "  (half capacity) goal p99 < 50 ms" if label == "half" else ""
                print(
                    f"  {rate:>6,}/s offered ({med('offered'):,.0f} achieved)  "
                    f"p50 {med('p50'):,.0f} ms, p90 {med('p90'):,.0f} ms, "
                    f"p99 {statistics.median(p99s):,.0f} ms (min {min(p99s):,.0f}, "
                    f"max {max(p99s):,.0f}), max {med('max'):,.0f} ms{goal}"
                )
    write_json(args.json, result)
    return result


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--count", type=int, default=5000, help="messages per round")
    ap.add_argument(
        "--batch-sizes", default="", help="comma-separated kafka.batch_max_records to sweep"
    )
    ap.add_argument("--rates", default="1000", help="comma-separated offered msg/s for latency")
    ap.add_argument("--seconds", type=float, default=5.0, help="per offered load (0: no latency)")
    ap.add_argument("--latency-rounds", type=int, default=1)
    ap.add_argument("--rate", type=int, default=1000, help=argparse.SUPPRESS)  # --offer's rate
    ap.add_argument(
        "--workers", type=int, default=2, help="gateway.workers (0: a thread, no processes)"
    )
    ap.add_argument("--json", type=Path)
    ap.add_argument("--offer", nargs=2, metavar=("BOOTSTRAP", "TOPIC"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.offer:
        offer(args.offer[0], args.offer[1], args.rate, args.seconds)
        return {}
    return asyncio.run(bench(args))


if __name__ == "__main__":
    main()
