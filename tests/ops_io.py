"""What an operator's tools see: a dashboard subscribed to the gateway's MQTT events, a console
that sends commands, and the Prometheus metrics parsed with Prometheus's own parser."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiomqtt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import Mosquitto


class Listener:
    """A dashboard: everything under a prefix, as it arrives."""

    def __init__(self, mqtt: Mosquitto, prefix: str, client_id: str) -> None:
        self.mqtt, self.prefix, self.client_id = mqtt, prefix, client_id
        self.got: list[tuple[str, dict[str, Any], bool]] = []
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def __aenter__(self) -> Listener:
        self._task = asyncio.create_task(self._listen())
        await asyncio.wait_for(self._subscribed.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task

    async def _listen(self) -> None:
        async with aiomqtt.Client(
            self.mqtt.host, self.mqtt.port, identifier=self.client_id
        ) as client:
            await client.subscribe(f"{self.prefix}/#", qos=1)
            self._subscribed.set()
            async for m in client.messages:
                raw = m.payload if isinstance(m.payload, bytes) else b"{}"
                self.got.append((str(m.topic), json.loads(raw), bool(m.retain)))

    async def wait_for(self, topic: str, wait: float = 20, **fields: Any) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + wait
        while asyncio.get_running_loop().time() < deadline:
            for t, payload, _ in self.got:
                if t == topic and all(payload.get(k) == v for k, v in fields.items()):
                    return payload
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {topic} {fields} in {self.got}")


async def command(mqtt: Mosquitto, client_id: str, topic: str, body: dict[str, Any]) -> None:
    async with aiomqtt.Client(mqtt.host, mqtt.port, identifier=client_id) as client:
        await client.publish(topic, json.dumps(body).encode(), qos=1)


def scrape(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample_ in family.samples:
            out[(sample_.name, tuple(sorted(sample_.labels.items())))] = sample_.value
    return out
