"""`connect-gateway publish`: put message files on a side's inbound topic, as a partner would.

Each record's key is the message's idempotency key when the message can be read, else the
payload's SHA-256 reference (hostile samples are published as they are: the gateway, not the
publisher, decides what is acceptable). Headers name the message type and the keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from gateway.idempotency import extract_keys
from gateway.iso20022 import errors
from gateway.iso20022.reader import payload_ref, read_message


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def record_for(data: bytes) -> Record:
    try:
        msg = read_message(data)
        keys = extract_keys(msg)
    except errors.MessageError:
        return Record(payload_ref(data).encode(), data, [("message-type", b"unknown")])
    headers = [("message-type", msg.msg_def.encode()), ("idempotency-key", keys.message.encode())]
    if keys.correlation:
        headers.append(("correlation-id", keys.correlation.encode()))
    return Record(keys.message.encode(), data, headers)


async def publish(
    bootstrap: str,
    topic: str,
    payloads: Sequence[bytes],
    options: dict[str, Any] | None = None,
) -> list[tuple[int, int]]:
    """Publish in order, waiting for each acknowledgement; returns (partition, offset) pairs."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        client_id="connect-gateway-publish",
        max_request_size=64 << 20,  # hostile samples may be oversize: the gateway decides
        **(options or {}),
    )
    try:
        await producer.start()  # inside: a start that fails is stopped too
        placed = []
        for data in payloads:
            rec = record_for(data)
            meta = await producer.send_and_wait(topic, rec.value, key=rec.key, headers=rec.headers)
            placed.append((meta.partition, meta.offset))
        return placed
    finally:
        await producer.stop()
