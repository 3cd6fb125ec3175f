"""Multilateral offsetting against a brute-force reference: on small instances, every
combination of queue prefixes is tried; the feasible ones (every payer in the set within its
cap after releasing them together) are closed under union, and offsetting releases their
union: feasible, each queue's order kept, never a queue's head skipped, and the largest."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.settlement.offsetting import Candidate, largest_release, released_in_order

PEOPLE = ["A", "B", "C", "D"]


@st.composite
def instances(draw: st.DrawFn) -> tuple[dict[str, int], dict[str, list[Candidate]]]:
    people = PEOPLE[: draw(st.integers(2, 4))]
    positions = {p: draw(st.integers(-12, 12)) for p in people}
    queues: dict[str, list[Candidate]] = {}
    ids = itertools.count(1)
    for payer in people:
        cap = draw(st.integers(0, 15))
        queue = []
        for _ in range(draw(st.integers(0, 3))):
            payee = draw(st.sampled_from([p for p in people if p != payer]))
            units = draw(st.integers(1, 12))
            queue.append(Candidate(next(ids), ((payer, -units), (payee, units)), cap))
        if queue:
            queues[payer] = queue
    # Interleave the ids as arrival order across payers: each queue keeps its own order.
    order = draw(st.permutations([c.id for q in queues.values() for c in q]))
    rank = {old: new for new, old in enumerate(order)}
    for payer, queue in queues.items():
        ids_here = sorted(rank[c.id] for c in queue)
        queues[payer] = [Candidate(i, c.moves, c.cap) for i, c in zip(ids_here, queue, strict=True)]
    return positions, queues


def feasible(
    positions: dict[str, int], queues: dict[str, list[Candidate]], take: dict[str, int]
) -> bool:
    after = dict(positions)
    for payer, queue in queues.items():
        for c in queue[: take[payer]]:
            for who, units in c.moves:
                after[who] = after.get(who, 0) + units
    return all(
        after[payer] >= -queues[payer][take[payer] - 1].cap for payer in queues if take[payer]
    )


@settings(max_examples=400, deadline=None)
@given(instances())
def test_offsetting_releases_the_union_of_every_feasible_prefix_set(
    instance: tuple[dict[str, int], dict[str, list[Candidate]]],
) -> None:
    positions, queues = instance
    payers = sorted(queues)
    every = [
        dict(zip(payers, combo, strict=True))
        for combo in itertools.product(*(range(len(queues[p]) + 1) for p in payers))
    ]
    good = [take for take in every if feasible(positions, queues, take)]
    union = {p: max(take[p] for take in good) for p in payers}  # "nothing" is always feasible
    assert union in good  # closed under union: the largest feasible set is unique

    found = largest_release(positions, queues)
    assert found == union
    released = released_in_order(queues, found)
    # In arrival order, and each queue's order kept with its head first.
    assert [c.id for c in released] == sorted(c.id for c in released)
    for queue in queues.values():
        mine = [c for c in released if c in queue]
        assert mine == queue[: len(mine)]


def test_two_payments_that_only_fit_together_are_both_released() -> None:
    a = Candidate(1, (("A", -100), ("B", 100)), cap=50)
    b = Candidate(2, (("B", -100), ("A", 100)), cap=50)
    assert largest_release({}, {"A": [a], "B": [b]}) == {"A": 1, "B": 1}


def test_a_ring_of_four_is_released_whole() -> None:
    ring = ["A", "B", "C", "D"]
    queues = {
        p: [Candidate(i, ((p, -80), (ring[(i + 1) % 4], 80)), cap=10)] for i, p in enumerate(ring)
    }
    assert largest_release({}, queues) == dict.fromkeys(ring, 1)
    # One link too big for its payer breaks the ring: nothing is released.
    queues["D"] = [Candidate(3, (("D", -95), ("A", 95)), cap=10)]
    assert largest_release({}, queues) == dict.fromkeys(ring, 0)


def test_a_head_that_cannot_fit_blocks_the_payments_behind_it() -> None:
    big = Candidate(1, (("A", -1000), ("B", 1000)), cap=50)
    small = Candidate(2, (("A", -10), ("B", 10)), cap=50)
    back = Candidate(3, (("B", -100), ("A", 100)), cap=50)
    assert largest_release({}, {"A": [big, small], "B": [back]}) == {"A": 0, "B": 0}
