"""The gateway's MQTT link: publishes events (QoS 1) and takes operators' commands.

Commands arrive on <prefix>/control/<client id>. The broker authenticates clients and its ACL
lets each write only its own control topic (Mosquitto: `pattern write <prefix>/control/%c`), so
the topic names the sender; the gateway obeys only the client ids in `mqtt.control_clients`,
and refuses and logs the rest. Every command is answered on <prefix>/control/<client id>/result.
Connection loss: reconnect with exponential backoff (0.5 s to 30 s); events wait in the buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

from gateway.config import MqttSection
from gateway.ops.events import Event, Events

log = logging.getLogger(__name__)

# A command's handler: (command fields) -> result fields. Raises CommandError to refuse.
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class CommandError(ValueError):
    pass


class MqttLink:
    def __init__(
        self,
        config: MqttSection,
        events: Events,
        handler: Handler,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.events = events
        self.handler = handler
        self.on_refused = on_refused
        self.connected = False

    def topic(self, relative: str) -> str:
        return f"{self.config.prefix}/{relative}"

    async def run(self) -> None:
        """Until cancelled: connect, publish, listen; reconnect after any loss."""
        backoff = 0.5
        cfg = self.config
        will = aiomqtt.Will(
            self.topic("health"), b'{"status":"gone"}', qos=1, retain=True
        )  # what subscribers see if the gateway vanishes without a word
        while True:
            try:
                async with aiomqtt.Client(
                    cfg.host,
                    cfg.port,
                    identifier=cfg.client_id,
                    username=cfg.username or None,
                    password=cfg.password or None,
                    will=will,
                    timeout=10,
                ) as client:
                    await client.subscribe(self.topic("control/+"), qos=1)
                    self.connected = True
                    backoff = 0.5
                    log.info("MQTT connected to %s:%d", cfg.host, cfg.port)
                    publisher = asyncio.create_task(self._publish(client))
                    try:
                        async for message in client.messages:
                            await self._command(client, message)
                    finally:
                        publisher.cancel()
                        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                            await publisher
            except aiomqtt.MqttError as exc:
                if self.connected:
                    log.warning("MQTT connection lost: %s", exc)
                self.connected = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _publish(self, client: aiomqtt.Client) -> None:
        while True:
            event = await self.events.next()
            try:
                await client.publish(
                    self.topic(event.topic), event.body(), qos=1, retain=event.retain
                )
            except aiomqtt.MqttError:
                self.events.requeue(event)
                raise

    async def flush(self, seconds: float) -> None:
        """Give buffered events a chance to go out (at stop)."""
        deadline = asyncio.get_running_loop().time() + seconds
        while len(self.events) and self.connected:
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.05)

    async def _command(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        sender = str(message.topic).rsplit("/", 1)[-1]
        reply = self.topic(f"control/{sender}/result")
        if sender not in self.config.control_clients:
            if self.on_refused is not None:
                self.on_refused()
            log.warning("refused a command from client %r: not in mqtt.control_clients", sender)
            await self._answer(client, reply, {"accepted": False, "error": "not authorised"})
            return
        try:
            raw = message.payload
            command = json.loads(raw if isinstance(raw, bytes | str) else b"")
            if not isinstance(command, dict) or not isinstance(command.get("command"), str):
                raise CommandError('expected a JSON object with a "command"')
            log.info("command %s from %s", command["command"], sender)
            result = await self.handler(command)
            answer = {"accepted": True, "command": command["command"], **result}
        except (CommandError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            answer = {"accepted": False, "error": str(exc)}
        await self._answer(client, reply, answer)

    async def _answer(self, client: aiomqtt.Client, topic: str, answer: dict[str, Any]) -> None:
        event = Event(topic, answer)
        try:
            await client.publish(topic, event.body(), qos=1)
        except aiomqtt.MqttError:
            log.warning("could not answer on %s", topic)
