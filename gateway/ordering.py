"""One side's answers about one payment are decided in the order that side sent them.

An answer whose original the gateway does not know yet goes to the retry topics
(gateway/decisions.py). Meanwhile a later answer from the same side about the same payment
(the same correlation: a UETR, a TxId) could be decided at once, ahead of it: a camt.029 CNCL
would then void a payment whose pacs.004 return, sent before it, is still waiting, and the
return would find nothing to give back. The retry topics are several, and their partitions
are not the inbound partition, so Kafka alone does not keep that order.

So each answer sent to the retry topics leaves a marker in the store (`Waiting`), written in
the transaction that queues its retry row and removed in the one that finally decides it. A
later answer from the same side with the same correlation waits behind every marker older than
its own (it has none yet: behind all of them), on the retry topics too. Markers are numbered
as they are written: the oldest waits for nobody, so two answers never wait for each other.
An answer on its last attempt is decided whatever waits: waiting is bounded by the retry
delays, and a marker whose record was lost delays later answers only that long.

A marker is keyed by the waiting message's idempotency key: an exact copy of it shares its
place, and the record that claims that key (the message, or a copy of it) removes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.sides import Side


@dataclass(frozen=True)
class Waiting:
    """An answer on the retry topics that later answers about its payment wait behind."""

    key: str  # the message's idempotency key
    side: Side  # where it came from
    correlation: str  # the payment (UETR) or securities transaction (TxId) it is about
    id: int = 0  # its place: given by the store as markers are written


# Where a marker stands: those stored come first (by id), then those a batch adds (by order).
Place = tuple[int, int]


class Lines:
    """The markers of one batch's answers, as the batch is decided in order."""

    def __init__(self, stored: Iterable[Waiting]) -> None:
        self._lines: dict[tuple[str, str], dict[str, Place]] = {}
        for w in stored:
            self._lines.setdefault((w.side, w.correlation), {})[w.key] = (0, w.id)
        self._added = 0

    def ahead(self, w: Waiting) -> str | None:
        """The first waiting message `w` must wait behind (None: it may be decided)."""
        line = self._lines.get((w.side, w.correlation), {})
        mine = line.get(w.key)
        earlier = [(place, key) for key, place in line.items() if key != w.key]
        earlier = [(place, key) for place, key in earlier if mine is None or place < mine]
        return min(earlier)[1] if earlier else None

    def holds(self, w: Waiting) -> bool:
        """Whether `w` has a marker (stored, or added earlier in this batch)."""
        return w.key in self._lines.get((w.side, w.correlation), {})

    def join(self, w: Waiting) -> None:
        """`w` goes to the retry topics: later answers wait behind it (a copy keeps its place)."""
        line = self._lines.setdefault((w.side, w.correlation), {})
        if w.key not in line:
            line[w.key] = (1, self._added)
            self._added += 1

    def leave(self, w: Waiting) -> None:
        """`w` is decided: nothing waits behind it any more."""
        self._lines.get((w.side, w.correlation), {}).pop(w.key, None)
