"""A batch's effects put in order inside its transaction, the same way for every store.

For each record whose claim is new, in batch order: its voids and obligations go through the
settlement ledger, which accepts the record (its outbox rows are queued for publication),
holds it (its rows wait in the held table) or refuses it for its cap (its reject is built after
the commit); payments released by a credit are queued right after the record that made room.
The store then gives ids and writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from gateway.settlement.ledger import Ledger, QueuedPayment, Recorded
from gateway.settlement.netting import to_minor
from gateway.settlement.statuses import RecordOutcome
from gateway.state.base import Effects, OutboxRow, obligations_to_json, outbox_to_json


@dataclass(frozen=True)
class NewHeld:
    id: int
    status: str  # queued | refusing
    payer: str
    currency: str
    units: int
    cap: int
    effects: Effects

    def row(self, now: object) -> tuple[object, ...]:
        """(id, status, payer, currency, units, cap, obligations, outbox, source, input,
        created_at): the held table's columns, in both stores."""
        e = self.effects
        return (
            self.id,
            self.status,
            self.payer,
            self.currency,
            self.units,
            self.cap,
            obligations_to_json(e.obligations),
            outbox_to_json(e.outbox),
            e.source,
            e.value,
            now,
        )


@dataclass
class Plan:
    outbox: list[OutboxRow] = field(default_factory=list)  # publication order
    results: dict[str, list[int]] = field(default_factory=dict)  # first claim -> outbox index
    held: list[NewHeld] = field(default_factory=list)
    released: list[int] = field(default_factory=list)  # held ids
    # Cancellation requests answered by the gateway (their payment was still held): first
    # claims. Their correlations are not kept: the request was never forwarded.
    cancelled_here: set[str] = field(default_factory=set)


def references_touched(batch: list[Effects]) -> list[str]:
    """Every obligation reference the batch books or voids: what the store loads, as stored,
    into `Ledger.known`."""
    refs = {
        *(r for e in batch for r in e.voids),
        *(o.reference for e in batch for o in e.obligations),
    }
    # A cancellation's void looks at whether its payment was returned; a return, at whether
    # its payment was voided.
    refs |= {x for e in batch for r in e.voids_open for x in (r, f"return:{r}")}
    refs |= {r.removeprefix("return:") for r in refs if r.startswith("return:")}
    return list(refs)


def currencies_touched(batch: list[Effects], known: dict[str, Recorded]) -> tuple[set[str], bool]:
    """The currencies whose open cycle, positions and held queues the ledger needs, and
    whether a void names no stored obligation: it may cancel a held payment, so the store
    adds every currency that has held payments."""
    currencies = {o.amount.currency for e in batch for o in e.obligations}
    currencies |= {r.obligation.amount.currency for r in known.values()}
    held = any(e.cancel_held is not None for e in batch)
    return currencies, held or any(r not in known for e in batch for r in e.voids)


def plan_batch(batch: list[Effects], ledger: Ledger, held_ids: Iterator[int]) -> Plan:
    """`batch`: the records whose claim is new, in order. `ledger`: loaded with what they
    touch (`Ledger.known`: the obligations they book or void, as stored). `held_ids`: ids for
    the payments this batch holds."""
    plan = Plan()
    currency = ledger.rules.cap_currency
    for e in batch:
        mine = plan.results.setdefault(e.claims[0][0], [])
        before = len(ledger.released)
        here = e.cancel_held is not None and ledger.cancel_held(e.cancel_held)
        if e.cancel_held is not None:
            # What it turned out to be, for metrics and events (each attempt decides afresh).
            e.outcome = RecordOutcome.CANCELLED if here else RecordOutcome.TRANSLATED
        if here:
            assert e.held_outbox and not e.obligations, (
                "a request cancelled here answers, books nothing"
            )
            plan.cancelled_here.add(e.claims[0][0])
        for reference in e.voids:
            ledger.void(reference)
        for reference in e.voids_open:
            ledger.void_if_open(reference)
        cap = to_minor(e.cap, currency) if e.cap is not None else None
        decision = ledger.post(e.obligations, cap)
        if decision == "accepted":
            for row in e.held_outbox if here else e.outbox:
                mine.append(len(plan.outbox))
                plan.outbox.append(row)
        else:
            debit = ledger.capped_debit(e.obligations)
            assert debit is not None and cap is not None
            held = NewHeld(
                next(held_ids),
                "queued" if decision == "held" else "refusing",
                debit[0],
                currency,
                debit[1],
                cap,
                e,
            )
            plan.held.append(held)
            if decision == "held":
                ledger.hold(
                    QueuedPayment(
                        held.id,
                        held.payer,
                        currency,
                        held.units,
                        cap,
                        tuple(e.obligations),
                        tuple(e.outbox),
                    )
                )
        ledger.offset()  # what this record left gridlocked, before the next is decided
        release(plan, ledger, before)
    return plan


def release(plan: Plan, ledger: Ledger, before: int) -> None:
    """Queue the outbox rows of the payments the ledger released since `before`."""
    for item in ledger.released[before:]:
        plan.released.append(item.id)
        rows = item.payload
        assert isinstance(rows, tuple)
        plan.outbox.extend(rows)
