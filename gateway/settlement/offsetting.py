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
    get = after.get
    for queue in queues.values():
        for c in queue:
            for who, units in c.moves:
                after[who] = get(who, 0) + units
    # A payer breaches while it has payments taken and is below the cap its last taken one
    # was held with. Run on every record of a batch: kept to plain loops over the queues.
    todo = deque(sorted(p for p, q in queues.items() if get(p, 0) < -q[-1].cap))
    while todo:
        payer = todo.popleft()
        queue = queues[payer]
        n = take[payer]
        while n and get(payer, 0) < -queue[n - 1].cap:
            n -= 1
            for who, units in queue[n].moves:
                after[who] = get(who, 0) - units
                # Taking back a payment debits whoever it credited: they may breach now.
                if units > 0 and who != payer and take.get(who):
                    other = queues[who]
                    if get(who, 0) < -other[take[who] - 1].cap:
                        todo.append(who)
        take[payer] = n
    assert all(not n or after.get(p, 0) >= -queues[p][n - 1].cap for p, n in take.items()), (
        "offsetting left a payer over its cap"
    )
    return take


def released_in_order(
    queues: Mapping[str, Sequence[Candidate]], take: Mapping[str, int]
) -> list[Candidate]:
    """The payments to release, in the order they were held (each queue's order kept)."""
    return sorted((c for p, q in queues.items() for c in q[: take.get(p, 0)]), key=lambda c: c.id)


def net_change(released: Sequence[Candidate]) -> int:
    """What releasing these together moves positions by, all told (the sum of the falls):
    gross released minus this is the liquidity the release saved."""
    moved: dict[str, int] = {}
    for c in released:
        for who, units in c.moves:
            moved[who] = moved.get(who, 0) + units
    return sum(-units for units in moved.values() if units < 0)
