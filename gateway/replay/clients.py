"""Plain Kafka clients: what a partner or a downstream system would run (tests, the pytest
plugin).

Readers assign partitions directly (no consumer group), so reading a topic costs no group join
and never disturbs the gateway's own group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


async def publish(bootstrap: str, topic: str, items: Iterable[tuple[bytes | None, bytes]]) -> None:
    """(key, value) pairs, in order, acknowledged by all replicas."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_request_size=8 << 20
    )
    try:
        await producer.start()  # inside: a start that fails is stopped too
        futures = [await producer.send(topic, value, key=key) for key, value in items]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str,
    topic: str,
    count: int,
    wait: float = 45.0,
    settle: float = 1.5,
    distinct_keys: bool = False,
) -> list[Any]:
    """Records from the start of `topic`: at least `count` (records, or distinct keys), then
    `settle` seconds more to catch any extra. Gives up after `wait` seconds with what it has."""
    consumer = assigned_reader(bootstrap)
    await consumer.start()
    got: list[Any] = []
    keys: set[bytes] = set()
    loop = asyncio.get_running_loop()
    try:
        try:
            partitions = await partitions_of(consumer, [topic])
        except ValueError as exc:
            raise AssertionError(str(exc)) from None  # read_topic serves tests: a failure
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = loop.time() + wait
        while (len(keys) if distinct_keys else len(got)) < count and loop.time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                got += records
                keys.update(r.key for r in records)
        end = loop.time() + settle
        while loop.time() < end:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                got += records
    finally:
        await consumer.stop()
    return got


def assigned_reader(bootstrap: str, **options: Any) -> AIOKafkaConsumer:
    """A consumer in no group, for partitions it assigns itself (`options`: connection
    settings such as TLS and SASL)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_wait_ms=50,  # the embedded broker holds each fetch this long
        **options,
    )


class TopicMissing(ValueError):
    """A topic named on the command line that the cluster does not have."""


async def partitions_of(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    """Every partition of `topics`, waiting up to 5 s each for a topic just created."""
    found: list[TopicPartition] = []
    for topic in topics:
        for _ in range(50):
            parts = consumer.partitions_for_topic(topic)
            if parts:
                found += [TopicPartition(topic, p) for p in sorted(parts)]
                break
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        else:
            raise TopicMissing(
                f"topic {topic} does not exist on {consumer._client._bootstrap_servers}"
            )
    return found
