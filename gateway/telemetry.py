"""What the pipeline and its relay report, and to whom: a small interface, so the pipeline
does not know the operations module (gateway/ops/operations.py implements it and attaches
itself; the dependency goes one way)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from gateway.state.base import OutboxRow

# (record, source side, message type, outcome, reason, idempotency key)
Processed = tuple[Any, str, str, str, str, str]


class Telemetry(Protocol):
    def processed(self, records: Sequence[Processed]) -> None:
        """A committed batch's records and what was decided for each."""
        ...

    def lag(self, topic: str, partition: int, behind: int) -> None:
        """How far a partition's consumer is behind its high-water mark."""
        ...

    def published(self, rows: Sequence[OutboxRow]) -> None:
        """Outbox rows handed to the broker."""
        ...

    async def cycles_answered(self, ids: set[str]) -> None:
        """Cycles whose instructions the RTGS answered in a committed batch."""
        ...
