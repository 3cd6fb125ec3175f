"""Replay throughput at --speed max, against a bare aiokafka producer of the same records.

    python -m bench.replay [--count 20000] [--rounds 3] [--json FILE]

Both publish the same records (the regression capture's 23 records, repeated to `count`, with
their keys and headers), with the same producer settings (acks=all, linger 5 ms), to fresh
topics on the same broker (the embedded one, or KAFKA_BOOTSTRAP_SERVERS), interleaved in one
run. Reading the capture file is not timed. Goal (issue 6): ratio >= 0.8.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench.common import kafka, line, spread, write_json
from gateway.replay.format import Captured, read_capture
from gateway.replay.replayer import replay
from gateway.topics import ensure_topics

CAPTURE = Path(__file__).resolve().parents[1] / "tests" / "captures" / "flows.jsonl"


def records(count: int, topic: str) -> list[Captured]:
    base = list(read_capture(CAPTURE))
    return [
        dataclasses.replace(
            base[n % len(base)], topic=topic, partition=n % 3, offset=n, timestamp=1795300000000 + n
        )
        for n in range(count)
    ]


async def bare(bootstrap: str, items: list[Captured], topic: str) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=8 << 20
    )
    await producer.start()
    try:
        start = time.perf_counter()
        futures = [
            await producer.send(
                topic, r.value, key=r.key, partition=r.partition, headers=list(r.headers)
            )
            for r in items
        ]
        await asyncio.gather(*futures)
        return len(items) / (time.perf_counter() - start)
    finally:
        await producer.stop()


async def bench(args: argparse.Namespace) -> dict[str, float]:
    async with kafka() as bootstrap:
        base, rep = [], []
        for _ in range(args.rounds):
            a, b = f"bench-bare-{uuid.uuid4().hex[:8]}", f"bench-replay-{uuid.uuid4().hex[:8]}"
            await ensure_topics(bootstrap, [a, b])
            items = records(args.count, "captured")
            base.append(await bare(bootstrap, items, a))
            result = await replay(bootstrap, items, {"captured": b}, speed=None)
            rep.append(result.rate)
    ratios = [r / b for r, b in zip(rep, base, strict=True)]
    print(f"replay of {args.count:,} captured records, {args.rounds} rounds, --speed max")
    print(line("replay", rep, "rec/s"))
    print(line("bare aiokafka producer", base, "rec/s"))
    print(line("ratio replay/bare", ratios, "", fmt=".2f", goal="  goal >= 0.8"))
    return spread("replay_per_s", rep) | spread("bare_per_s", base) | spread("ratio", ratios)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    result = asyncio.run(bench(args))
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
