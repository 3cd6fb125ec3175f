"""A sequential reference model of what accepted records do to settlement state.

Written from the rules (docs in gateway/settlement/ledger.py and ARCHITECTURE.md), not from the
ledger's code: one record at a time, plain dictionaries, positions recomputed from the
obligations each time they are needed. The stores, fed the same records in any batching, with
crashes and replays, must end in the state this model ends in.

Records are the stores' input (`Effects`): the decisions about messages happen before them.
A record is applied once, the first time its first claim is seen.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from gateway.canonical import Obligation
from gateway.settlement.netting import to_minor
from gateway.state.base import Effects


@dataclass
class ModelObligation:
    obligation: Obligation
    units: int
    cycle: str
    status: str = "open"  # open | void | reversed


@dataclass
class ModelHeld:
    record: Effects
    payer: str
    units: int
    cap: int
    status: str  # queued | released | refusing | cancelled


@dataclass
class SettlementModel:
    policy: str = "queue"  # or "reject"
    cap_currency: str = "CNY"
    offsetting: str = "multilateral"  # or "off"
    claims: set[str] = field(default_factory=set)
    answered: dict[str, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    obligations: dict[str, ModelObligation] = field(default_factory=dict)
    open_cycle: dict[str, int] = field(default_factory=dict)  # currency -> seq
    cycle_status: dict[str, str] = field(default_factory=dict)
    held: list[ModelHeld] = field(default_factory=list)
    outputs: dict[bytes, list[bytes]] = field(default_factory=lambda: defaultdict(list))

    # -- what the stores are compared on -----------------------------------------------------
    def positions(self, cycle: str) -> dict[str, int]:
        """received - paid of every obligation netted in `cycle` (void ones are not)."""
        out: dict[str, int] = defaultdict(int)
        for o in self.obligations.values():
            if o.cycle == cycle and o.status != "void":
                out[o.obligation.payer] -= o.units
                out[o.obligation.payee] += o.units
        return {p: u for p, u in out.items() if u}

    def statuses(self) -> dict[str, str]:
        return {ref: o.status for ref, o in self.obligations.items()}

    # -- records ------------------------------------------------------------------------------
    def apply(self, e: Effects) -> None:
        first = e.claims[0][0]
        if first in self.claims:
            return  # a copy, a redelivery or a replay after a crash: no second effect
        self.claims.update(k for k, _ in e.claims)
        for o in e.obligations:
            self._cycle_of(o.amount.currency)  # the store opens a currency's cycle on sight
        cancelled = e.cancel_held is not None and self._cancel_held(e.cancel_held)
        for reference in e.voids:
            self._void(reference)
        for reference in e.voids_open:
            found = self.obligations.get(reference)
            returned = f"return:{reference}" in self.obligations
            if found is not None and not returned:
                if found.cycle == self._cycle_of(found.obligation.amount.currency):
                    self._void(reference)
        rows = [(r.key, r.value) for r in (e.held_outbox if cancelled else e.outbox)]
        answer: list[tuple[bytes, bytes]] = []
        if self._admit(e):
            for o in e.obligations:
                self._book(o)
            answer = rows
            self._emit(rows)
            self._release()
        self._offset()
        for key, _ in e.claims:
            self.answered[key] = answer
        if e.replay_key is not None:
            self._emit(self.answered.get(e.replay_key, []))
        for cycle, status, _reason, instruction in e.cycle_outcomes:
            # One instruction a cycle here: its confirmation settles it, any rejection fails
            # it, an interim status changes nothing; a settled or failed cycle stays so.
            if self.cycle_status.get(cycle) != "instructed":
                continue
            if status == "failed":
                self.cycle_status[cycle] = "failed"
            elif status == "settled" and instruction == instruction_of(cycle):
                self.cycle_status[cycle] = "settled"

    def close(self, currency: str) -> str | None:
        """An operator's close: the open cycle frozen, instructed; held payments released
        into the next while they fit."""
        if currency not in self.open_cycle:
            return None
        seq = self.open_cycle[currency]
        frozen = _cycle(currency, seq)
        self.cycle_status[frozen] = "instructed"
        self.open_cycle[currency] = seq + 1
        self.cycle_status[_cycle(currency, seq + 1)] = "open"
        self._release()
        self._offset()
        return frozen

    # -- rules ----------------------------------------------------------------------------------
    def _cycle_of(self, currency: str) -> str:
        if currency not in self.open_cycle:
            self.open_cycle[currency] = 1
            self.cycle_status[_cycle(currency, 1)] = "open"
        return _cycle(currency, self.open_cycle[currency])

    def _debit(self, e: Effects) -> tuple[str, int] | None:
        debits = [o for o in e.obligations if o.amount.currency == self.cap_currency]
        if e.cap is None or not debits:
            return None
        return debits[0].payer, sum(to_minor(o.amount.amount, self.cap_currency) for o in debits)

    def _fits(self, payer: str, units: int, cap: int) -> bool:
        cycle = self._cycle_of(self.cap_currency)
        return self.positions(cycle).get(payer, 0) - units >= -cap

    def _admit(self, e: Effects) -> bool:
        debit = self._debit(e)
        if debit is None:
            return True
        payer, units = debit
        assert e.cap is not None
        cap = to_minor(e.cap, self.cap_currency)
        waiting = any(h.payer == payer and h.status == "queued" for h in self.held)
        if not waiting and self._fits(payer, units, cap):
            return True
        status = "queued" if self.policy == "queue" else "refusing"
        self.held.append(ModelHeld(e, payer, units, cap, status))
        return False

    def _book(self, o: Obligation) -> None:
        if o.reference in self.obligations:
            return  # a reference counts once
        paid = self.obligations.get(o.reference.removeprefix("return:"))
        if o.reference.startswith("return:") and paid is not None and paid.status == "void":
            return  # a voided payment was never paid: its return gives nothing back
        units = to_minor(o.amount.amount, o.amount.currency)
        self.obligations[o.reference] = ModelObligation(o, units, self._cycle_of(o.amount.currency))

    def _cancel_held(self, reference: str) -> bool:
        for h in self.held:
            if h.status == "queued" and any(o.reference == reference for o in h.record.obligations):
                h.status = "cancelled"
                self._release()
                return True
        return False

    def _void(self, reference: str) -> None:
        found = self.obligations.get(reference)
        if found is None:
            self._cancel_held(reference)
            return
        if found.status != "open":
            return
        o = found.obligation
        if found.cycle == self._cycle_of(o.amount.currency):
            found.status = "void"
        else:
            found.status = "reversed"
            self._book(Obligation(o.payee, o.payer, o.amount, f"{o.reference}:reversal"))
        self._release()

    def _release(self) -> None:
        """Held payments, each payer's oldest first, while they fit, until nothing moves."""
        moved = True
        while moved:
            moved = False
            for payer in sorted({h.payer for h in self.held if h.status == "queued"}):
                head = next(h for h in self.held if h.payer == payer and h.status == "queued")
                if self._fits(payer, head.units, head.cap):
                    head.status = "released"
                    for o in head.record.obligations:
                        self._book(o)
                    self._emit([(r.key, r.value) for r in head.record.outbox])
                    moved = True

    def _offset(self) -> None:
        """Liquidity saving, by brute force: of every combination of a prefix of each payer's
        queue, those whose release together leaves each payer in it within its cap; their
        union (itself one of them) is released, in the order the payments were held."""
        if self.offsetting != "multilateral":
            return
        queues: dict[str, list[ModelHeld]] = defaultdict(list)
        for h in self.held:
            if h.status == "queued":
                queues[h.payer].append(h)
        if not queues:
            return  # (and opens no cycle: the store opens one only on sight of money)
        payers = sorted(queues)
        base = self.positions(self._cycle_of(self.cap_currency))

        def feasible(take: tuple[int, ...]) -> bool:
            after = dict(base)
            for payer, n in zip(payers, take, strict=True):
                for h in queues[payer][:n]:
                    for o in h.record.obligations:
                        if o.amount.currency == self.cap_currency:
                            units = to_minor(o.amount.amount, self.cap_currency)
                            after[o.payer] = after.get(o.payer, 0) - units
                            after[o.payee] = after.get(o.payee, 0) + units
            return all(
                after.get(payer, 0) >= -queues[payer][n - 1].cap
                for payer, n in zip(payers, take, strict=True)
                if n
            )

        good = [
            take
            for take in itertools.product(*(range(len(queues[p]) + 1) for p in payers))
            if feasible(take)
        ]
        union = tuple(max(t[i] for t in good) for i in range(len(payers)))
        assert feasible(union)
        chosen = {id(h) for p, n in zip(payers, union, strict=True) for h in queues[p][:n]}
        for h in self.held:
            if id(h) in chosen:
                h.status = "released"
                for o in h.record.obligations:
                    self._book(o)
                self._emit([(r.key, r.value) for r in h.record.outbox])

    def _emit(self, rows: list[tuple[bytes, bytes]]) -> None:
        for key, value in rows:
            self.outputs[key].append(value)


def _cycle(currency: str, seq: int) -> str:
    return f"{currency}-{seq:06d}"


def instruction_of(cycle: str) -> str:
    return f"instr-{cycle}"
