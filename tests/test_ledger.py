"""The settlement ledger's rules on random payment streams (hypothesis): caps never breached,
positions sum to zero, held payments released strictly in order and never forgotten, cycles
rolled at their recorded cut-off."""

from __future__ import annotations

import itertools
from collections import deque
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.canonical import Money, Obligation
from gateway.clock import UTC8
from gateway.settlement.ledger import Head, Ledger, QueuedPayment, Recorded, Rules

PARTICIPANTS = ["A", "B", "C", "D"]
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC8)

payment = st.tuples(
    st.sampled_from(PARTICIPANTS), st.sampled_from(PARTICIPANTS), st.integers(1, 5_000)
).filter(lambda p: p[0] != p[1])
caps = st.fixed_dictionaries({p: st.integers(0, 6_000) for p in PARTICIPANTS})


def obligation(n: int, payer: str, payee: str, units: int, currency: str = "CNY") -> Obligation:
    return Obligation(payer, payee, Money(Decimal(units).scaleb(-2), currency), f"ref-{n}")


def run(
    stream: list[tuple[str, str, int]], cap: dict[str, int], policy: str
) -> tuple[Ledger, list[str], list[tuple[int, str]]]:
    ledger = Ledger({}, {}, {}, Rules(T0, policy=policy))
    decisions = []
    ids = itertools.count(1)
    for n, (payer, payee, units) in enumerate(stream):
        o = obligation(n, payer, payee, units)
        decision = ledger.post([o], cap[payer])
        decisions.append(decision)
        if decision == "held":
            ledger.hold(QueuedPayment(next(ids), payer, "CNY", units, cap[payer], (o,)))
    booked = [(int(b.obligation.reference[4:]), b.obligation.payer) for b in ledger.booked]
    return ledger, decisions, booked


@given(st.lists(payment, max_size=120), caps)
@settings(max_examples=300)
def test_queue_policy_never_breaches_a_cap_and_releases_in_order(
    stream: list[tuple[str, str, int]], cap: dict[str, int]
) -> None:
    ledger, decisions, booked = run(stream, cap, "queue")
    cycle = ledger.heads["CNY"].cycle if ledger.heads else None
    # Replaying the bookings in the order they happened: no payer ever below its cap.
    position = dict.fromkeys(PARTICIPANTS, 0)
    for n, payer in booked:
        _, payee, units = stream[n]
        position[payer] -= units
        position[payee] += units
        assert position[payer] >= -cap[payer], (n, payer, position[payer])
    assert sum(position.values()) == 0
    if cycle is not None:
        assert {p: v for p, v in position.items() if v} == {
            p: v for (c, p), v in ledger.positions.items() if c == cycle and v
        }
    # Every payment is booked once or still queued; each payer's are booked in its order.
    queued = [item for q in ledger.queues.values() for item in q]
    assert len(booked) + len(queued) == len(stream)
    assert len({n for n, _ in booked}) == len(booked)
    for p in PARTICIPANTS:
        mine = [n for n, payer in booked if payer == p]
        assert mine == sorted(mine)
        waiting = [int(i.obligations[0].reference[4:]) for i in ledger.queues.get((p, "CNY"), ())]
        assert not mine or not waiting or max(mine) < min(waiting)
        # Nothing left waiting that fits now.
        if waiting:
            head = ledger.queues[(p, "CNY")][0]
            assert position[p] - head.units < -cap[p]
    assert "refused" not in decisions


@given(st.lists(payment, max_size=120), caps)
def test_reject_policy_refuses_what_would_breach_and_books_the_rest(
    stream: list[tuple[str, str, int]], cap: dict[str, int]
) -> None:
    ledger, decisions, booked = run(stream, cap, "reject")
    position = dict.fromkeys(PARTICIPANTS, 0)
    for n, (payer, payee, units) in enumerate(stream):
        if decisions[n] == "accepted":
            assert position[payer] - units >= -cap[payer]
            position[payer] -= units
            position[payee] += units
        else:
            assert decisions[n] == "refused"
            assert position[payer] - units < -cap[payer]
    assert [n for n, _ in booked] == [n for n, d in enumerate(decisions) if d == "accepted"]
    assert not ledger.queues


def test_uncapped_obligations_are_booked_whatever_the_position() -> None:
    ledger = Ledger({}, {}, {}, Rules(T0))
    assert ledger.post([obligation(1, "A", "B", 10**9)], None) == "accepted"
    assert ledger.post([obligation(2, "A", "B", 10**9, "HKD")], 0) == "accepted"  # not CNY
    assert ledger.positions[("CNY-000001", "A")] == -(10**9)


def test_a_batch_after_the_cut_off_books_into_the_next_cycle() -> None:
    cut = T0 + timedelta(hours=1)
    head = Head("CNY", "CNY-000004", 4, T0, cut)

    def schedule(after: datetime) -> datetime:
        return after + timedelta(hours=3)

    before = Ledger({"CNY": head}, {}, {}, Rules(cut - timedelta(microseconds=1), schedule))
    before.post([obligation(1, "A", "B", 100)], None)
    assert [b.cycle for b in before.booked] == ["CNY-000004"] and not before.rolled

    at = Ledger({"CNY": head}, {}, {}, Rules(cut, schedule))
    at.post([obligation(2, "A", "B", 100)], None)
    assert [b.cycle for b in at.booked] == ["CNY-000005"]
    (rolled,) = at.rolled
    assert rolled.frozen == "CNY-000004" and rolled.cut_off == cut
    assert rolled.opened.opened_at == cut and rolled.opened.due_at == cut + timedelta(hours=3)


def test_a_void_removes_an_open_obligation_and_reverses_a_frozen_one() -> None:
    head = Head("CNY", "CNY-000002", 2, T0, None)
    ledger = Ledger(
        {"CNY": head}, {("CNY-000002", "A"): -100, ("CNY-000002", "B"): 100}, {}, Rules(T0)
    )
    ledger.known = {
        "ref-1": Recorded(obligation(1, "A", "B", 100), 100, "CNY-000002", "open"),
        "ref-2": Recorded(obligation(2, "A", "B", 70), 70, "CNY-000001", "open"),
        "ref-3": Recorded(obligation(3, "A", "B", 5), 5, "CNY-000002", "void"),
    }
    for reference in ("ref-1", "ref-2", "ref-3", "ref-4"):  # ref-3 void already, ref-4 unknown
        ledger.void(reference)
    ledger.void("ref-1")  # a second rejection of the same payment: nothing more
    ledger.void("ref-2")
    assert ledger.voided == ["ref-1"] and ledger.reversed == ["ref-2"]
    (reversal,) = ledger.booked
    assert (reversal.obligation.payer, reversal.obligation.payee) == ("B", "A")
    assert reversal.obligation.reference == "ref-2:reversal" and reversal.cycle == "CNY-000002"
    assert ledger.positions[("CNY-000002", "A")] == 70


def test_a_void_makes_room_and_releases_the_payers_queue() -> None:
    head = Head("CNY", "CNY-000001", 1, None, None)
    ledger = Ledger(
        {"CNY": head},
        {("CNY-000001", "A"): -100, ("CNY-000001", "B"): 100},
        {("A", "CNY"): deque()},
        Rules(T0),
    )
    waiting = QueuedPayment(7, "A", "CNY", 50, 100, (obligation(9, "A", "C", 50),))
    ledger.queues[("A", "CNY")].append(waiting)
    ledger.known["ref-1"] = Recorded(obligation(1, "A", "B", 100), 100, "CNY-000001", "open")
    ledger.void("ref-1")
    assert ledger.released == [waiting]
    assert ledger.positions[("CNY-000001", "A")] == -50


def test_a_void_sees_what_its_batch_booked_and_cancels_a_held_payment() -> None:
    """Within one batch: a payment booked then rejected is voided once; a held payment
    rejected leaves its queue unbooked and lets the next one through."""
    ledger = Ledger({}, {}, {}, Rules(T0))
    assert ledger.post([obligation(1, "A", "B", 80)], cap=100) == "accepted"
    assert ledger.post([obligation(2, "A", "B", 50)], cap=100) == "held"
    ledger.hold(QueuedPayment(1, "A", "CNY", 50, 100, (obligation(2, "A", "B", 50),)))
    assert ledger.post([obligation(3, "A", "C", 10)], cap=100) == "held"  # behind it
    ledger.hold(QueuedPayment(2, "A", "CNY", 10, 100, (obligation(3, "A", "C", 10),)))
    ledger.void("ref-2")  # the held one
    assert ledger.cancelled == [1] and [q.id for q in ledger.released] == [2]
    ledger.void("ref-1")
    ledger.void("ref-1")
    assert ledger.voided == ["ref-1"]
    assert [b.obligation.reference for b in ledger.booked] == ["ref-1", "ref-3"]
    assert ledger.positions[("CNY-000001", "A")] == -10


def test_the_ledger_asserts_its_invariants() -> None:
    """What the store would write is checked first: an uneven move, a payment held in two
    places or in another's queue, or an obligation undone twice is a defect, never written."""
    import pytest

    def fresh() -> Ledger:
        ledger = Ledger({}, {}, {}, Rules(T0))
        ledger.post(
            [Obligation("HPCBCNSHXXX", "VHBKHKHHXXX", Money(Decimal("10"), "CNY"), "r1")], None
        )
        ledger.check()  # as the ledger leaves it: sound
        return ledger

    uneven = fresh()
    uneven.deltas[("CNY-000001", "HPCBCNSHXXX")] += 1
    held = QueuedPayment(7, "JADBCNBJXXX", "CNY", 100, 0, ())
    twice = fresh()
    twice.queues[("JADBCNBJXXX", "CNY")] = deque([held, held])
    elsewhere = fresh()
    elsewhere.queues[("HPCBCNSHXXX", "CNY")] = deque([held])
    stays = fresh()
    stays.queues[("JADBCNBJXXX", "CNY")] = deque([held])
    stays.cancelled.append(7)
    undone = fresh()
    undone.void("r1")
    undone.reversed.append("r1")
    for broken in (uneven, twice, elsewhere, stays, undone):
        with pytest.raises(AssertionError):
            broken.check()
