"""Events for operators, and the bounded buffer they wait in.

MQTT is a notification channel: Kafka and the state store stay the system of record. Emitting
never blocks the pipeline and never fails it: while MQTT is unreachable events wait here, up to
`mqtt.buffer_limit`; past that the oldest are dropped and counted. Payloads carry ids and
codes only, never names, accounts or remittance text (docs/events.md).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.clock import now_utc8

EVENTS_VERSION = 1


@dataclass(frozen=True)
class Event:
    topic: str  # below the configured prefix: message/<side>, cycle/<currency>, health, ...
    payload: dict[str, Any]
    retain: bool = False  # the latest state of something (a cycle, the health)

    def body(self) -> bytes:
        return json.dumps(self.payload, sort_keys=True, separators=(",", ":")).encode()


class Events:
    def __init__(
        self,
        limit: int,
        clock: Callable[[], datetime] = now_utc8,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self.limit = limit
        self.clock = clock
        self.dropped = 0
        self._queue: deque[Event] = deque()
        self._waiting = asyncio.Event()
        self._on_drop = on_drop

    def emit(self, topic: str, retain: bool = False, **fields: Any) -> None:
        payload = {"version": EVENTS_VERSION, "at": self.clock().isoformat(), **fields}
        self._put(Event(topic, payload, retain))

    def _put(self, event: Event) -> None:
        self._queue.append(event)
        while len(self._queue) > self.limit:
            self._queue.popleft()
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop()
        self._waiting.set()

    def requeue(self, event: Event) -> None:
        """An event the broker did not acknowledge goes back to the front."""
        self._queue.appendleft(event)
        self._waiting.set()

    async def next(self) -> Event:
        while not self._queue:
            self._waiting.clear()
            await self._waiting.wait()
        return self._queue.popleft()

    def __len__(self) -> int:
        return len(self._queue)
