"""`connect-gateway capture`: record live traffic of some topics into a capture file (and
`follow`, the reading it shares with `connect-gateway read`).

Reads with a plain consumer that assigns the partitions itself (no consumer group: capturing
never disturbs the gateway's group), from the end (default), the beginning, or a time. Stops
on Ctrl-C (the record in hand is written, the file completed), after `max` records, or after
`idle` seconds with nothing new; the file then exists whole, or not at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from gateway.replay.clients import assigned_reader, partitions_of
from gateway.replay.format import Captured, CaptureWriter


@dataclass
class CaptureResult:
    records: int
    path: Path


async def capture(
    bootstrap: str,
    topics: list[str],
    out: Path,
    stop: asyncio.Event,
    from_beginning: bool = False,
    since: datetime | None = None,
    max_records: int | None = None,
    idle: float | None = None,
    progress: Any = None,  # a tqdm-like object with update(n)
    options: dict[str, Any] | None = None,
    started: Callable[[str], None] | None = None,
) -> CaptureResult:
    writer = CaptureWriter(out)

    async def write(records: list[Any]) -> None:
        await asyncio.to_thread(writer.write, [_captured(r) for r in records])
        if progress is not None:
            progress.update(len(records))

    try:
        await follow(
            bootstrap, topics, stop, write, from_beginning, since, max_records, idle, options,
            started,
        )  # fmt: skip
    finally:
        await asyncio.to_thread(writer.close)
    return CaptureResult(writer.count, out)


async def follow(
    bootstrap: str,
    topics: list[str],
    stop: asyncio.Event,
    sink: Callable[[list[Any]], Awaitable[None]],
    from_beginning: bool = False,
    since: datetime | None = None,
    max_records: int | None = None,
    idle: float | None = None,
    options: dict[str, Any] | None = None,
    started: Callable[[str], None] | None = None,
) -> int:
    """The records of `topics`, handed to `sink` batch by batch (topic and partition order),
    from now (default), the beginning or a time, until `stop`, `max_records` or `idle`
    seconds with nothing new. How many. (capture writes them to a file, read prints them.)
    `started` is told where reading starts (a time, or "the beginning") once it does."""
    consumer = assigned_reader(bootstrap, **(options or {}))
    count = 0
    try:
        await consumer.start()  # inside: a start that fails leaves nothing open
        partitions = await partitions_of(consumer, topics)
        consumer.assign(partitions)
        # "From now" is a time too (the default): records at or after it. What the broker
        # says is at or after it is checked, not trusted: the embedded one answers both the
        # time lookup and the end with the start of the last batch, which printed records
        # minutes old as new.
        moment = None if from_beginning else int((since or datetime.now(UTC)).timestamp() * 1000)
        if moment is None:
            await consumer.seek_to_beginning(*partitions)
        else:
            found = await consumer.offsets_for_times({tp: moment for tp in partitions})
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                at = found.get(tp)
                consumer.seek(tp, at.offset if at is not None else ends[tp])
        oldest = moment or 0
        if started is not None:  # told where it reads from, once it reads from there
            when = datetime.fromtimestamp(moment / 1000, UTC) if moment is not None else None
            started(when.isoformat(timespec="milliseconds") if when else "the beginning")
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            records = [
                r for tp in sorted(batch, key=_order) for r in batch[tp] if r.timestamp >= oldest
            ]
            if not records:
                if idle is not None and loop.time() - quiet_since >= idle:
                    break
                continue
            quiet_since = loop.time()
            if max_records is not None:
                records = records[: max_records - count]
            await sink(records)
            count += len(records)
            if max_records is not None and count >= max_records:
                break
    finally:
        await consumer.stop()
    return count


def _order(tp: TopicPartition) -> tuple[str, int]:
    return tp.topic, tp.partition


def _captured(r: Any) -> Captured:
    return Captured(
        r.topic,
        r.partition,
        r.offset,
        r.timestamp,
        r.key,
        r.value,
        tuple((k, bytes(v)) for k, v in (r.headers or ())),
    )
