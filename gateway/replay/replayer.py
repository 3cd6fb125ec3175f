"""`connect-gateway replay`: publish a capture back, in order, at a chosen speed.

Each captured partition's records go, in their order, to the same partition number of the
target topic (modulo its partition count), so per-partition order is kept. Keys are kept with
`preserve_keys`, else sent null. Headers are kept. Timing: records are sent at their captured
intervals divided by `speed` (1.0: as captured); `speed=None` sends as fast as the broker takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from gateway.replay.format import Captured, read_capture


@dataclass
class ReplayResult:
    records: int
    seconds: float
    by_topic: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def parse_topic_map(pairs: list[str]) -> dict[str, str]:
    """["a=b", ...] -> {"a": "b"}; a topic not named keeps its name."""
    out = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source or not target:
            raise ValueError(f"--to-topic-map wants SOURCE=TARGET, got {pair!r}")
        out[source] = target
    return out


def parse_speed(text: str) -> float | None:
    """'max' -> None; '1x', '10x', '0.5x' -> the factor."""
    if text == "max":
        return None
    try:
        factor = float(text.removesuffix("x"))
    except ValueError:
        raise ValueError(f"--speed wants max or a factor like 1x, 10x, got {text!r}") from None
    if factor <= 0:
        raise ValueError("--speed must be positive")
    return factor


async def replay(
    bootstrap: str,
    records: list[Captured],
    topic_map: dict[str, str] | None = None,
    speed: float | None = None,
    preserve_keys: bool = True,
    progress: Any = None,
    options: dict[str, Any] | None = None,
    stop: asyncio.Event | None = None,
) -> ReplayResult:
    """Publish `records`; `stop` set (Ctrl-C): no more are sent, those sent are acknowledged,
    and the result counts them."""
    topic_map = topic_map or {}
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_request_size=8 << 20,
        **(options or {}),
    )
    result = ReplayResult(0, 0.0)
    try:
        await producer.start()  # inside: a start that fails is stopped too
        counts: dict[str, int] = {}
        for topic in {topic_map.get(r.topic, r.topic) for r in records}:
            parts = await producer.partitions_for(topic)
            counts[topic] = len(parts)
        # Captured order: by time, then by position within each partition.
        ordered = sorted(records, key=lambda r: (r.timestamp, r.topic, r.partition, r.offset))
        start = time.perf_counter()
        first = ordered[0].timestamp if ordered else 0
        pending = []
        sent = 0
        for r in ordered:
            if stop is not None and stop.is_set():
                break
            if speed is not None:
                due = start + (r.timestamp - first) / 1000 / speed
                delay = due - time.perf_counter()
                if delay > 0 and stop is None:
                    await asyncio.sleep(delay)
                elif delay > 0 and stop is not None:
                    with contextlib.suppress(TimeoutError):  # a stop ends the wait at once
                        await asyncio.wait_for(stop.wait(), delay)
                    if stop.is_set():
                        break
            topic = topic_map.get(r.topic, r.topic)
            pending.append(
                await producer.send(
                    topic,
                    r.value,
                    key=r.key if preserve_keys else None,
                    partition=r.partition % counts[topic],
                    headers=list(r.headers),
                )
            )
            result.by_topic[topic] += 1
            sent += 1
            if progress is not None:
                progress.update(1)
        await asyncio.gather(*pending)
        result.records = sent
        result.seconds = time.perf_counter() - start
    finally:
        await producer.stop()
    return result


def load(path: Path) -> list[Captured]:
    return list(read_capture(path))
