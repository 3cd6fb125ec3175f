"""What a batch does to the open settlement cycles, decided inside the batch's transaction.

The store loads what the batch touches (the cycle heads of its currencies, locked; the running
positions; the queues of held payments; the obligations it voids), the ledger decides, and the
store writes what the ledger says. Both stores share this logic, so SQLite and PostgreSQL
settle alike.

Rules (docs/domain.md, 'Net settlement cycles and caps'):
- An obligation joins its currency's open cycle. A cycle whose recorded cut-off has passed
  (by the batch's clock) is frozen first and the next opened: the boundary is the recorded
  cut-off, compared once, under the head's lock.
- A capped payment that would take its payer's net debit in the open cycle over the payer's
  cap is held (policy "queue") or refused (policy "reject"). A payer with held payments has
  every later capped payment held behind them: release is strictly in order.
- A credit to a participant (an incoming obligation, or one of its payments voided) releases
  its held payments, oldest first, while they fit.
- A void of an obligation still in the open cycle removes it; one in a frozen cycle (netted
  already) stays there, marked 'reversed', and is undone by a reversing obligation in the
  open cycle. A void of a payment still held cancels it: it leaves its queue, is never
  booked, and the payments queued behind it may then fit.
- A cancellation accepted by the other side voids its payment only while the payment is in
  the open cycle (and not returned): once netted, the money comes back by a return. A
  cancellation of a payment still held cancels it, as a rejection does.
- A return of a payment that was voided books nothing (it was never paid), and a payment
  returned already is not voided (it was paid back).
- A batch is decided as if each record came alone: a void or a booking sees every obligation
  booked, voided or reversed before it in the same batch (`known`), so a rejection that
  shares a batch with its payment voids it, and no reference is booked or voided twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Literal

from gateway.canonical import Obligation
from gateway.settlement.netting import to_minor
from gateway.settlement.offsetting import (
    Candidate,
    largest_release,
    net_change,
    released_in_order,
)
from gateway.settlement.statuses import ObligationStatus


@dataclass
class Head:
    """A currency's open cycle."""

    currency: str
    cycle: str
    seq: int
    opened_at: datetime | None
    due_at: datetime | None  # the recorded cut-off; None: closes only on command


@dataclass(frozen=True)
class QueuedPayment:
    """A held payment, as the store keeps it."""

    id: int
    payer: str
    currency: str
    units: int  # what it debits the payer
    cap: int  # the payer's cap when it was held
    obligations: tuple[Obligation, ...]
    payload: object = None  # the store's: what to publish on release

    @cached_property
    def candidate(self) -> Candidate:
        """As offsetting sees it: what its release does to positions in its currency (the
        capped one), computed once, not on every run."""
        moves: list[tuple[str, int]] = []
        for o in self.obligations:
            if o.amount.currency == self.currency:
                units = to_minor(o.amount.amount, self.currency)
                moves += [(o.payer, -units), (o.payee, units)]
        return Candidate(self.id, tuple(moves), self.cap)


@dataclass(frozen=True)
class Booked:
    """An obligation entered into the ledger: the row the store inserts."""

    obligation: Obligation
    units: int
    cycle: str


@dataclass(frozen=True)
class Recorded:
    """An obligation as it stands: loaded by the store, or booked earlier in this batch."""

    obligation: Obligation
    units: int
    cycle: str
    status: ObligationStatus


@dataclass(frozen=True)
class Rolled:
    """A cycle frozen at its cut-off, and the cycle opened after it."""

    frozen: str
    cut_off: datetime
    opened: Head


@dataclass(frozen=True)
class OffsetRun:
    """What one offsetting run released into `cycle`: its payments in release order, their
    gross (what they debit their payers) and the net change of positions they made (what the
    payers' positions fell by, all told): gross - net is the liquidity the run saved."""

    cycle: str
    released: tuple[QueuedPayment, ...]
    gross: int
    net: int


Decision = Literal["accepted", "held", "refused"]


def _unscheduled(_: datetime) -> datetime | None:
    return None


@dataclass(frozen=True)
class Rules:
    """What a batch's obligations are booked by: one clock reading for the whole batch, the
    schedule that gives a new cycle its cut-off, and the cap policy."""

    now: datetime
    next_cut_off: Callable[[datetime], datetime | None] = _unscheduled
    cap_currency: str = "CNY"
    policy: str = "queue"  # or "reject"
    # "multilateral": held payments that fit together are released together (offsetting.py);
    # "off": a held payment waits for room of its own.
    offsetting: str = "multilateral"


def cycle_id(currency: str, seq: int) -> str:
    return f"{currency}-{seq:06d}"


@dataclass
class Ledger:
    heads: dict[str, Head]
    positions: dict[tuple[str, str], int]  # (cycle, participant) -> received - paid
    queues: dict[tuple[str, str], deque[QueuedPayment]]  # (payer, currency), oldest first
    rules: Rules
    # Every obligation this batch touches, by reference, as it stands now: the store loads
    # those the batch books or voids, and each booking, void and reversal updates it. What a
    # record sees is thus what it would see had it come in a batch of its own.
    known: dict[str, Recorded] = field(default_factory=dict)
    booked: list[Booked] = field(default_factory=list)
    voided: list[str] = field(default_factory=list)
    reversed: list[str] = field(default_factory=list)
    released: list[QueuedPayment] = field(default_factory=list)
    released_into: dict[int, str] = field(default_factory=dict)  # held id -> its cycle
    offsets: list[OffsetRun] = field(default_factory=list)  # the runs that released some
    cancelled: list[int] = field(default_factory=list)  # held payments voided before release
    rolled: list[Rolled] = field(default_factory=list)
    created: list[Head] = field(default_factory=list)  # first cycles of new currencies
    deltas: dict[tuple[str, str], int] = field(default_factory=dict)
    _credits: list[tuple[str, str]] = field(default_factory=list)  # (participant, currency)
    # Whether a position or a queue of the capped currency changed since offsetting last ran:
    # after a run nothing more fits together, so only a change can make a new set.
    _changed: bool = True

    # -- cycles -------------------------------------------------------------------------------
    def head(self, currency: str) -> Head:
        """The open cycle of `currency` at this batch's time, rolled past its cut-off."""
        now = self.rules.now
        head = self.heads.get(currency)
        if head is None:
            head = Head(currency, cycle_id(currency, 1), 1, None, self.rules.next_cut_off(now))
            self.heads[currency] = head
            self.created.append(head)
        elif head.due_at is not None and now >= head.due_at:
            cut_off = head.due_at
            # Cut-offs that passed with nothing accepted get no cycle of their own.
            opened = Head(
                currency,
                cycle_id(currency, head.seq + 1),
                head.seq + 1,
                cut_off,
                self.rules.next_cut_off(max(now, cut_off)),
            )
            self.rolled.append(Rolled(head.cycle, cut_off, opened))
            self.heads[currency] = head = opened
            self._changed = True  # a new cycle: new positions
        return head

    # -- postings -----------------------------------------------------------------------------
    def post(self, obligations: list[Obligation], cap: int | None) -> Decision:
        """One accepted record's obligations. `cap`: the payer's net debit cap in minor units
        of the cap currency when the record is a capped payment, else None."""
        debit = self.capped_debit(obligations) if cap is not None else None
        if debit is not None and cap is not None:
            payer, units = debit
            queue = self.queues.get((payer, self.rules.cap_currency))
            if queue or not self._fits(payer, units, cap):
                return "held" if self.rules.policy == "queue" else "refused"
        for o in obligations:
            self._book(o)
        self._release()
        return "accepted"

    def capped_debit(self, obligations: list[Obligation]) -> tuple[str, int] | None:
        """(payer, minor units) a payment debits in the cap currency, if any."""
        currency = self.rules.cap_currency
        debits = [o for o in obligations if o.amount.currency == currency]
        if not debits:
            return None
        return debits[0].payer, sum(to_minor(o.amount.amount, currency) for o in debits)

    def roll_now(self, currency: str) -> Rolled | None:
        """Freeze the open cycle of `currency` at this batch's time (an operator's close)."""
        head = self.heads.get(currency)
        if head is None:
            return None
        now = self.rules.now
        if head.due_at is not None and now >= head.due_at:
            self.head(currency)  # its scheduled cut-off passed: that is the close
            return self.rolled[-1]
        opened = Head(
            currency,
            cycle_id(currency, head.seq + 1),
            head.seq + 1,
            now,
            self.rules.next_cut_off(now),
        )
        rolled = Rolled(head.cycle, now, opened)
        self.rolled.append(rolled)
        self.heads[currency] = opened
        self._changed = True
        return rolled

    def hold(self, queued: QueuedPayment) -> None:
        """A payment just held (the store gave it its id): later ones queue behind it."""
        self.queues.setdefault((queued.payer, queued.currency), deque()).append(queued)
        self._changed = True

    def void(self, reference: str) -> None:
        """The other side rejected what `reference` pays: undo it. Unknown, or voided or
        reversed already: nothing (a rejection changes state once)."""
        found = self.known.get(reference)
        if found is None:
            self.cancel_held(reference)
            return
        if found.status != ObligationStatus.OPEN:
            return
        o = found.obligation
        head = self.head(o.amount.currency)
        if found.cycle == head.cycle:
            self.voided.append(o.reference)
            self.known[reference] = replace(found, status=ObligationStatus.VOID)
            self._move(head.cycle, o.payer, found.units)
            self._move(head.cycle, o.payee, -found.units)
            self._credits.append((o.payer, o.amount.currency))
        else:
            # Netted already: it stays in its cycle ('reversed', still netted there), and the
            # reversal undoes it in this one. Marked, so a second void finds it not open.
            reversal = Obligation(o.payee, o.payer, o.amount, f"{o.reference}:reversal")
            self.reversed.append(o.reference)
            self.known[reference] = replace(found, status=ObligationStatus.REVERSED)
            self._book(reversal)
        self._release()

    def void_if_open(self, reference: str) -> None:
        """The other side accepted a cancellation of what `reference` pays: undone if it is
        still in the open cycle and was not returned; else nothing (a frozen cycle is netted
        already: a return gives the money back)."""
        found = self.known.get(reference)
        if found is None or found.status != ObligationStatus.OPEN:
            return
        if f"return:{reference}" in self.known:
            return  # returned already: voiding it too would pay the payer twice
        if found.cycle == self.head(found.obligation.amount.currency).cycle:
            self.void(reference)

    def release_all(self, currency: str) -> None:
        """After a cycle opens, or on a tick: every payer's held payments, while they fit;
        then what only fits together."""
        self._credits += [key for key in sorted(self.queues) if key[1] == currency]
        self._release()
        self._changed = True  # what is held may fit together in the new cycle
        self.offset()

    def offset(self) -> None:
        """Release together the largest set of held payments (a prefix of each payer's queue)
        that leaves every payer in it within its cap (gateway/settlement/offsetting.py), in the
        order they were held. Run after each record, as after each credit: what a record leaves
        gridlocked is resolved before the next record is decided, whatever the batching."""
        currency = self.rules.cap_currency
        if self.rules.offsetting != "multilateral" or not self._changed:
            return
        self._changed = False
        candidates = {
            payer: [item.candidate for item in queue]
            for (payer, ccy), queue in self.queues.items()
            if ccy == currency and queue
        }
        if not candidates:
            return
        cycle = self.head(currency).cycle
        positions = {p: units for (c, p), units in self.positions.items() if c == cycle}
        chosen = released_in_order(candidates, largest_release(positions, candidates))
        if not chosen:
            return
        payer_of = {c.id: payer for payer, queue in candidates.items() for c in queue}
        run = []
        for candidate in chosen:
            item = self.queues[(payer_of[candidate.id], currency)].popleft()
            assert item.id == candidate.id, "offsetting skipped a queue's head"
            self.released.append(item)
            self.released_into[item.id] = cycle
            run.append(item)
            for o in item.obligations:
                self._book(o)
        net = net_change(chosen)
        gross = sum(item.units for item in run)
        assert 0 <= net <= gross, (net, gross)
        self.offsets.append(OffsetRun(cycle, tuple(run), gross, net))
        for payer in {item.payer for item in run}:
            last = max((i for i in run if i.payer == payer), key=lambda i: i.id)
            assert self.positions.get((cycle, payer), 0) >= -last.cap, (
                f"offsetting left {payer} over its cap"
            )
        # What it released credits others, but nothing more fits: the set was the largest.
        before = len(self.released)
        self._release()
        assert len(self.released) == before, "offsetting released less than all that fits"
        self._changed = False  # its own bookings open no new set (the set was the largest)

    def check(self) -> None:
        """The ledger's invariants, asserted before the store writes what it decided."""
        # Every move has its opposite: what it does to a cycle's positions sums to zero.
        moved: dict[str, int] = {}
        for (cycle, _), units in self.deltas.items():
            moved[cycle] = moved.get(cycle, 0) + units
        assert all(total == 0 for total in moved.values()), f"positions moved unevenly: {moved}"
        # Each held payment stands in exactly one queue, its payer's, until it leaves it.
        queued = [
            item.id
            for (payer, currency), queue in self.queues.items()
            for item in queue
            if item.payer == payer and item.currency == currency
        ]
        assert len(queued) == sum(map(len, self.queues.values())), "a payment in another's queue"
        assert len(set(queued)) == len(queued), "a held payment queued twice"
        gone = {item.id for item in self.released}.union(self.cancelled)
        assert gone.isdisjoint(queued), "a released or cancelled payment still queued"
        # An obligation is undone once: voided in the open cycle, or reversed once netted.
        undone = [*self.voided, *self.reversed]
        assert len(set(undone)) == len(undone), f"an obligation undone twice: {undone}"
        assert all(self.known[r].status == ObligationStatus.VOID for r in self.voided), (
            "voided, yet not void"
        )

    # -- internals ----------------------------------------------------------------------------
    def _fits(self, payer: str, units: int, cap: int) -> bool:
        cycle = self.head(self.rules.cap_currency).cycle
        return self.positions.get((cycle, payer), 0) - units >= -cap

    def cancel_held(self, reference: str) -> bool:
        """A held payment rejected, or cancelled at its payer's request, before it was
        released: out of its queue, never booked; the payer's later held payments may fit
        now. Whether it was held."""
        for (payer, currency), queue in self.queues.items():
            for item in queue:
                if any(o.reference == reference for o in item.obligations):
                    queue.remove(item)
                    self.cancelled.append(item.id)
                    self._changed = True
                    self._credits.append((payer, currency))
                    self._release()
                    return True
        return False

    def _book(self, o: Obligation) -> None:
        if o.reference in self.known:
            return  # booked already (a second return of one payment): it counts once
        returned = self.known.get(o.reference.removeprefix("return:"))
        if o.reference.startswith("return:") and returned is not None:
            if returned.status == ObligationStatus.VOID:
                return  # its payment was voided (rejected, cancelled): nothing to give back
        currency = o.amount.currency
        units = to_minor(o.amount.amount, currency)
        head = self.head(currency)
        self.booked.append(Booked(o, units, head.cycle))
        self.known[o.reference] = Recorded(o, units, head.cycle, ObligationStatus.OPEN)
        self._move(head.cycle, o.payer, -units)
        self._move(head.cycle, o.payee, units)
        self._credits.append((o.payee, currency))

    def _move(self, cycle: str, participant: str, units: int) -> None:
        # Only a credit to a payer with held payments can let a set fit together (a debit
        # only takes room away; a payer with none queued has no cap to keep in a set).
        if units > 0 and self.queues.get((participant, self.rules.cap_currency)):
            self._changed = True
        key = (cycle, participant)
        self.positions[key] = self.positions.get(key, 0) + units
        self.deltas[key] = self.deltas.get(key, 0) + units

    def _release(self) -> None:
        """Room may have appeared for the participants credited: release their held payments,
        oldest first, while they fit. A release credits others in turn (a worklist, not
        recursion: chains of releases can be long)."""
        while self._credits:
            participant, currency = self._credits.pop()
            queue = self.queues.get((participant, currency))
            while queue and self._fits(participant, queue[0].units, queue[0].cap):
                item = queue.popleft()
                self.released.append(item)
                self.released_into[item.id] = self.head(currency).cycle
                for o in item.obligations:
                    self._book(o)
