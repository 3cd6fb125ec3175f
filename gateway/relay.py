"""The outbox relay: what the batches (and cycle closes) wrote to the outbox, published to
Kafka in order, then marked sent.

It runs beside the batches: woken by each committed batch, otherwise polling for rows written
elsewhere (a cycle's close, here or from `connect-gateway cycle close`). A consumer that gets
more than a few batches ahead of it waits (back-pressure). At least once: a failure anywhere
repeats a pass from the rows still unsent, with the same keys and bytes. Broker and database
faults are retried in place for kafka.transient_retry_seconds; past that the relay stops with
the fault, and the pipeline with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import AIOKafkaProducer

from gateway.config import KafkaSection
from gateway.retrying import retrying
from gateway.state.base import ClaimsStore, OutboxRow
from gateway.telemetry import Telemetry

T = TypeVar("T")
log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
MAX_BEHIND = 4  # committed batches the relay may not have published yet
# On stop: how long the relay may keep publishing what is left.
STOP_SECONDS = 15
STOP_MAX_ROWS = 20_000


class Relay:
    def __init__(
        self,
        kafka: KafkaSection,
        store: ClaimsStore,
        producer: AIOKafkaProducer,
        transient: Callable[[BaseException], bool],
        telemetry: Telemetry | None = None,
    ) -> None:
        self.kafka = kafka
        self.store = store
        self.producer = producer
        self.transient = transient
        self.telemetry = telemetry
        self._ready = asyncio.Event()
        self._relayed = asyncio.Condition()
        self._behind = 0  # batches committed that may not be published yet
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._final = False  # the pass at stop: one try, no fault waited out

    async def start(self) -> None:
        await self.relay()  # whatever a previous run left unsent
        self._task = asyncio.create_task(self._loop(), name="outbox-relay")

    def check(self) -> None:
        """Raise the fault that ended the relay, if it ended."""
        if self._task is not None and self._task.done():
            self._task.result()

    async def batch_committed(self) -> None:
        """A batch wrote rows: wake the relay, after waiting while it is too far behind."""
        async with self._relayed:
            await self._relayed.wait_for(lambda: self._behind < MAX_BEHIND or self._stopped)
            self._behind += 1
        self._ready.set()

    async def stop(self) -> None:
        """Stop the loop, then publish what the last batches left (bounded: with a shared
        store, other instances keep adding rows, theirs to publish; bounded in time too, and
        a fault is not waited out: with the broker or the database away, rows stay for the
        next start, and the stop ends)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._final = True
        try:
            await asyncio.wait_for(self.relay(max_rows=STOP_MAX_ROWS), STOP_SECONDS)
        except Exception as exc:
            if not (isinstance(exc, TimeoutError) or self.transient(exc)):
                raise
            log.warning(
                "stopping with outbox rows unsent (%s); they are published at the next start",
                type(exc).__name__,
            )

    async def relay(self, chunk: int = 1000, max_rows: int | None = None) -> int:
        """Publish unsent rows in order, then mark them sent, until a pass finds fewer than
        `chunk` (caught up; with a shared store, other instances may be relaying the rest) or
        `max_rows` are sent."""
        sent = 0
        while True:
            done = await self._retrying(lambda: self.store.relay(chunk, self._publish))
            sent += done
            if done < chunk or (max_rows is not None and sent >= max_rows):
                return sent

    async def _loop(self) -> None:
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), POLL_SECONDS)
                self._ready.clear()
                covered = self._behind
                await self.relay()  # until the outbox is empty
                async with self._relayed:
                    self._behind -= covered
                    self._relayed.notify_all()
        finally:
            # Whatever ended it, no batch may wait for it any more.
            self._stopped = True
            async with self._relayed:
                self._relayed.notify_all()

    async def _publish(self, rows: list[OutboxRow]) -> None:
        producer = self.producer

        async def send_all() -> None:
            futures = [
                await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
                for r in rows
            ]
            await asyncio.gather(*futures)

        if self.telemetry is not None:
            self.telemetry.published(rows)
        if self.kafka.transactional_id:
            # All of a pass or none of it, for consumers reading read_committed. Correctness
            # does not need it (stable keys and BizMsgIdr make repeats harmless).
            async with producer.transaction():
                await send_all()
        else:
            await send_all()

    async def _retrying(self, make: Callable[[], Awaitable[T]]) -> T:
        return await retrying(
            make,
            lambda exc: not self._final and self.transient(exc),
            self.kafka.transient_retry_seconds,
        )
