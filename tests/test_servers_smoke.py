"""The test servers themselves: a Kafka round trip and an MQTT round trip over real sockets."""

from __future__ import annotations

import asyncio

import aiomqtt
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.servers import Mosquitto


async def test_kafka_produce_and_consume_in_a_group(kafka_bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(topic, f"value-{i}".encode(), key=f"k{i % 3}".encode())
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while len(seen) < 20:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    seen += [r.value for r in records]
        await consumer.commit()
    finally:
        await consumer.stop()
    assert sorted(seen) == sorted(f"value-{i}".encode() for i in range(20))


async def test_mqtt_publish_and_subscribe(mosquitto: Mosquitto) -> None:
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="smoke-sub") as sub:
        await sub.subscribe("gateway/test/#", qos=1)
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="smoke-pub") as pub:
            await pub.publish("gateway/test/status", b'{"state":"ok"}', qos=1)
        async with asyncio.timeout(10):
            async for message in sub.messages:
                assert str(message.topic) == "gateway/test/status"
                assert message.payload == b'{"state":"ok"}'
                break
