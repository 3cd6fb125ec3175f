"""Multilateral offsetting: which held payments can be released together.

Held payments wait in their payer's queue, first in, first out, for room under the payer's net
debit cap (gateway/settlement/ledger.py). Two or more payers whose held payments to each other
would, released together, leave each of them within its cap are gridlocked: no queue's head
fits alone. RTGS liquidity-saving mechanisms release such sets together; this is the one the
ledger runs (docs/domain.md, "Liquidity saving").

What it releases: among the sets made of a prefix of each payer's queue (a queue's order is
kept; its head is never skipped), the largest one whose release together leaves every payer in
it within its cap. That set is unique: feasible prefix sets are closed under union (taking more
of the others' queues only credits a payer more), so the union of all feasible ones is
feasible. The classic algorithm finds it: start from every held payment and, while a payer
breaches its cap, take back its last payment. A payer breaching with all its payments taken
back never blocks another: any feasible set leaves out each payment this takes back, so the
result is the largest (tests/test_offsetting.py checks it against every combination of
prefixes).

Pure: positions and queues in, prefix lengths out; the ledger applies them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A held payment as offsetting sees it: its moves in the capped currency (participant,
    minor units; the payer's debit negative), and the cap it was held against."""

    id: int
    moves: tuple[tuple[str, int], ...]
    cap: int


def largest_release(
    positions: Mapping[str, int], queues: Mapping[str, Sequence[Candidate]]
) -> dict[str, int]:
    """payer -> how many of its queue's payments to release together (0 for none)."""
    take = {payer: len(queue) for payer, queue in queues.items()}
    after = dict(positions)
    for queue in queues.values():
        for c in queue:
            for who, units in c.moves:
                after[who] = after.get(who, 0) + units

    def breaches(payer: str) -> bool:
        # Against the cap its last payment still taken was held with.
        n = take[payer]
        return n > 0 and after.get(payer, 0) < -queues[payer][n - 1].cap

    todo = deque(sorted(p for p in queues if breaches(p)))
    while todo:
        payer = todo.popleft()
        while breaches(payer):
            take[payer] -= 1
            for who, units in queues[payer][take[payer]].moves:
                after[who] = after.get(who, 0) - units
                # Taking back a payment debits whoever it credited: they may breach now.
                if units > 0 and who != payer and who in queues and breaches(who):
                    todo.append(who)
    assert not any(breaches(p) for p in queues), "offsetting left a payer over its cap"
    return take


def released_in_order(
    queues: Mapping[str, Sequence[Candidate]], take: Mapping[str, int]
) -> list[Candidate]:
    """The payments to release, in the order they were held (each queue's order kept)."""
    return sorted((c for p, q in queues.items() for c in q[: take.get(p, 0)]), key=lambda c: c.id)
