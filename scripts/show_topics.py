"""Print what the gateway published: one line per record, each value saved as a file.

    python scripts/show_topics.py BOOTSTRAP OUT_DIR TOPIC...

Reads each topic from the start with a plain consumer (no group), as a downstream system would.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition


async def records_of(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Everything on `topic` now, from the start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        for _ in range(50):
            found = consumer.partitions_for_topic(topic)
            if found:
                break
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        partitions = [TopicPartition(topic, p) for p in sorted(found or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        start = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        expected = sum(end[tp] - start[tp] for tp in partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while len(records) < expected:
            for recs in (await consumer.getmany(timeout_ms=1000)).values():
                records += recs
        return records
    finally:
        await consumer.stop()


async def show(bootstrap: str, out: Path, topics: list[str]) -> None:
    for topic in topics:
        records = await records_of(bootstrap, topic)
        print(f"-- {topic}: {len(records)} record(s)")
        folder = out / topic
        folder.mkdir(parents=True, exist_ok=True)
        for r in sorted(records, key=lambda r: r.timestamp):
            h = {k: v.decode(errors="replace") for k, v in r.headers}
            why = h.get("reject-reason") or h.get("error-kind") or ""
            # Cycle reports are JSON and say which report they are; the rest is ISO 20022.
            kind = h.get("message-type") or h.get("report") or "unknown"
            suffix = "json" if "report" in h else "xml"
            name = f"p{r.partition}-{r.offset}-{kind}.{suffix}"
            (folder / name).write_bytes(r.value or b"")
            key = (r.key or b"").decode(errors="replace")[:60]
            print(f"   {kind:<16} attempt {h.get('attempt', '1')}  {why:<16} key {key}")


if __name__ == "__main__":
    asyncio.run(show(sys.argv[1], Path(sys.argv[2]), sys.argv[3:]))
