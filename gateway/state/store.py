"""The state store's algorithm, written once for every backend.

Claims, the outbox, obligations through the settlement ledger, held payments, correlations and
cycles: each rule is here, once, as coroutines over a `Tx` (gateway/state/tx.py). SQLite and
PostgreSQL differ only in their backend (the claim race, head locks, id allocation, the
relay), so a batch is applied alike on both, and a fix is made in one place.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from gateway.canonical import Obligation
from gateway.clock import UTC8
from gateway.correlations import (
    AccountFacts,
    ClosedCycle,
    Correlation,
    Facts,
    OpenAccount,
    PaymentFacts,
    payment_key,
    securities_key,
)
from gateway.ordering import Waiting
from gateway.settlement.ledger import Head, Ledger, QueuedPayment, Recorded, Rules, cycle_id
from gateway.settlement.liquidity import Queued
from gateway.settlement.netting import Netter, Netting
from gateway.settlement.report import Saving
from gateway.settlement.statuses import CycleStatus, HeldStatus, ObligationStatus
from gateway.sides import side_named
from gateway.state.base import (
    Backlog,
    ClaimState,
    CycleRecord,
    Effects,
    HeldPayment,
    OutboxRow,
    Traced,
    correlation_from_json,
    correlation_to_json,
    cycle_after,
    headers_from_json,
    headers_to_json,
    iso_utc8,
    obligation_from_row,
    obligations_from_json,
    outbox_from_json,
    parse_time,
)
from gateway.state.plan import Plan, currencies_touched, plan_batch, references_touched, release
from gateway.state.tx import Backend, Row, Tx, Work

T = TypeVar("T")
log = logging.getLogger(__name__)

_CYCLE_COLUMNS = (
    "id, currency, seq, status, opened_at, due_at, cut_off, instruction_id, summary, reason"
)
_OUTBOX_COLUMNS = "id, topic, key, value, headers"
_CORRELATION_UPSERT = (
    "ON CONFLICT (key) DO UPDATE SET outbound_biz_msg_idr = excluded.outbound_biz_msg_idr, "
    "outbound_msg_id = excluded.outbound_msg_id, data = excluded.data"
)


# Per participant in a cycle: obligations received (count, units) and paid (count, units).
class Outage:
    """A state-store outage, logged once when it starts and once when it ends, however many
    steps meet it meanwhile (the pipeline, the relay and the settlement ticks all retry)."""

    def __init__(self) -> None:
        self.since: float | None = None

    def begins(self, exc: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.warning(
                "state store unavailable (%s: %s); every step waits for it and retries",
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "-",
            )

    def ends(self) -> None:
        if self.since is not None:
            log.warning("state store available again after %.1f s", time.monotonic() - self.since)
            self.since = None


class Store:
    """The `StateStore` over one backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.outage = Outage()

    async def _run(self, work: Work[T], write: bool) -> T:
        """Every transaction of the store: where an outage is seen to start and to end."""
        try:
            result = await self.backend.run(work, write)
        except Exception as exc:
            if self.backend.is_transient(exc):
                self.outage.begins(exc)
            raise
        self.outage.ends()
        return result

    async def _relay(
        self, limit: int, publish: Callable[[list[OutboxRow]], Awaitable[None]]
    ) -> int:
        # Its faults may be the broker's (publish), so only its success tells of the store.
        sent = await self.backend.relay(limit, publish)
        self.outage.ends()
        return sent

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend!r})"

    async def open(self) -> None:
        await self.backend.open()

    async def close(self) -> None:
        await self.backend.close()

    def is_transient(self, exc: BaseException) -> bool:
        return self.backend.is_transient(exc)

    async def ping(self) -> None:
        async def work(tx: Tx) -> None:
            await tx.fetch("SELECT 1")

        await self._run(work, write=False)

    # -- claims and the outbox -----------------------------------------------------------------
    async def claims(self, keys: list[str]) -> dict[str, ClaimState]:
        async def work(tx: Tx) -> dict[str, ClaimState]:
            rows = await tx.fetch_in(
                "SELECT key, fingerprint, results FROM claims WHERE key {in}", keys
            )
            return {key: ClaimState(key, fp, _ids(results)) for key, fp, results in rows}

        return await self._run(work, write=False) if keys else {}

    async def correlations(self, refs: list[str]) -> list[Correlation]:
        async def work(tx: Tx) -> list[Correlation]:
            # With them, payments held for their cap, by key only, marked held: a cancellation
            # request may see them, nothing else (they never reached the other side). One
            # statement: this is every batch's read.
            rows = await tx.fetch_in(
                "SELECT key, data, 0 FROM correlations WHERE key {in} "
                "OR outbound_biz_msg_idr {in} OR outbound_msg_id {in} "
                "UNION ALL SELECT key, data, 1 FROM held_correlations WHERE key {in}",
                refs,
            )
            found: dict[str, Correlation] = {}
            for key, data, held in sorted(rows, key=lambda row: row[2]):
                if key not in found:  # released meanwhile: its forwarded correlation wins
                    entry = correlation_from_json(data)
                    found[key] = replace(entry, held=True) if held else entry
            return list(found.values())

        return await self._run(work, write=False) if refs else []

    async def waiting(self, correlations: list[str] | None = None) -> list[Waiting]:
        async def work(tx: Tx) -> list[Waiting]:
            sql = "SELECT key, side, correlation, id FROM waiting"
            if correlations is None:
                rows = await tx.fetch(sql)
            else:
                rows = await tx.fetch_in(f"{sql} WHERE correlation {{in}}", correlations)
            return sorted(
                (Waiting(key, side_named(side), c, i) for key, side, c, i in rows),
                key=lambda w: w.id,
            )

        return await self._run(work, write=False) if correlations != [] else []

    async def commit_batch(self, batch: list[Effects], rules: Rules | None = None) -> list[bool]:
        rules = rules or Rules(datetime.now(UTC8))

        async def work(tx: Tx) -> list[bool]:
            return await _apply(tx, batch, rules)

        return await self._run(work, write=True)

    async def relay(self, limit: int, publish: Callable[[list[OutboxRow]], Awaitable[None]]) -> int:
        return await self._relay(limit, publish)

    async def counts(self) -> dict[str, int]:
        async def work(tx: Tx) -> dict[str, int]:
            (row,) = await tx.fetch(
                "SELECT (SELECT count(*) FROM claims), "
                "(SELECT count(*) FROM outbox WHERE sent_at IS NULL), "
                "(SELECT count(*) FROM obligations)"
            )
            return dict(zip(("claims", "unsent", "obligations"), row, strict=True))

        return await self._run(work, write=False)

    async def obligations(self, status: str | None = None) -> list[tuple[Obligation, str]]:
        async def work(tx: Tx) -> list[tuple[Obligation, str]]:
            rows = await tx.fetch(
                "SELECT reference, payer, payee, currency, CAST(amount AS TEXT), status "
                "FROM obligations WHERE CAST(? AS TEXT) IS NULL OR status = ? "
                f"ORDER BY {tx.insertion_order}",
                status,
                status,
            )
            return [(obligation_from_row(*r[:5]), r[5]) for r in rows]

        return await self._run(work, write=False)

    # -- settlement cycles ---------------------------------------------------------------------
    async def cycles(
        self, currency: str | None = None, status: str | None = None
    ) -> list[CycleRecord]:
        async def work(tx: Tx) -> list[CycleRecord]:
            rows = await tx.fetch(
                f"SELECT {_CYCLE_COLUMNS} FROM cycles WHERE "
                "(CAST(? AS TEXT) IS NULL OR currency = ?) "
                "AND (CAST(? AS TEXT) IS NULL OR status = ?) ORDER BY currency, seq",
                currency,
                currency,
                status,
                status,
            )
            return [CycleRecord(r[0], r[1], r[2], CycleStatus(r[3]), *r[4:]) for r in rows]

        return await self._run(work, write=False)

    async def freeze(self, currency: str, rules: Rules, cycle: str | None = None) -> str | None:
        async def work(tx: Tx) -> str | None:
            heads = await _locked_heads(tx, [currency])
            if currency not in heads or cycle not in (None, heads[currency].cycle):
                return None  # none yet, or rolled meanwhile (by a batch past its cut-off)
            ledger = Ledger(heads, {}, {}, rules)
            rolled = ledger.roll_now(currency)
            await _write_ledger(tx, ledger)
            return rolled.frozen if rolled else None

        return await self._run(work, write=True)

    async def take_close(self, cycle: str, owner: str, lease_seconds: float) -> bool:
        async def work(tx: Tx) -> bool:
            now = time.time()
            done = await tx.execute(
                "UPDATE cycles SET closer = ?, lease_until = ? WHERE id = ? AND "
                "status = 'closing' AND (closer IS NULL OR closer = ? OR lease_until < ?)",
                owner,
                now + lease_seconds,
                cycle,
                owner,
                now,
            )
            return done == 1

        return await self._run(work, write=True)

    async def net_cycle(self, cycle: str, currency: str) -> Netting:
        async def work(tx: Tx) -> Netting:
            netter = Netter(currency, bilateral=True)
            # Every obligation of the cycle in one pass: the voided ones are counted, not
            # netted (the report shows them).
            async for rows in tx.chunks(
                "SELECT payer, payee, units, status = 'void' FROM obligations WHERE cycle = ?",
                cycle,
            ):
                netter.add(rows)
            return netter.result()

        return await self._run(work, write=False)

    async def positions(self, cycle: str) -> dict[str, int]:
        async def work(tx: Tx) -> dict[str, int]:
            rows = await tx.fetch(
                "SELECT participant, units FROM positions WHERE cycle = ? AND units != 0", cycle
            )
            return {participant: units for participant, units in rows}

        return await self._run(work, write=False)

    async def facts(self, asks: list[str]) -> dict[str, Facts]:
        async def work(tx: Tx) -> dict[str, Facts]:
            out: dict[str, Facts] = {}
            for ask in dict.fromkeys(asks):
                kind, _, subject = ask.partition(":")
                if kind == "payment":
                    out[ask] = await _payment_facts(tx, subject)
                elif kind == "account":
                    bic, _, cycle = subject.partition(":")
                    out[ask] = await _account_facts(tx, bic, cycle or None)
                else:
                    raise ValueError(f"no facts of {ask!r}")
            return out

        return await self._run(work, write=False) if asks else {}

    async def trace(self, subject: str) -> Traced:
        async def work(tx: Tx) -> Traced:
            outputs = await tx.fetch(
                "SELECT o.id, o.topic, o.key, o.headers, CAST(o.created_at AS TEXT), "
                "CAST(o.sent_at AS TEXT) FROM trail t JOIN outbox o ON o.id = t.outbox "
                "WHERE t.subject = ? ORDER BY o.id",
                subject,
            )
            references = [subject, f"return:{subject}", f"sese:{subject}"]
            obligations = await tx.fetch_in(
                "SELECT reference, payer, payee, currency, CAST(amount AS TEXT), cycle, status, "
                "CAST(created_at AS TEXT) FROM obligations WHERE reference {in}",
                references,
            )
            keys = [payment_key(subject), securities_key(subject)]
            held = await tx.fetch_in(
                "SELECT DISTINCT h.id, h.payer, h.status, CAST(h.created_at AS TEXT) FROM held h "
                "JOIN held_correlations c ON c.held = h.id WHERE c.key {in} ORDER BY h.id",
                keys,
            )
            cycles = await tx.fetch_in(
                "SELECT id, status, CAST(updated_at AS TEXT), cut_off, reason FROM cycles "
                "WHERE id {in} ORDER BY id",
                sorted({row[5] for row in obligations}) or [""],
            )
            waiting = await tx.fetch(
                "SELECT key, side FROM waiting WHERE correlation = ? ORDER BY id", subject
            )
            return Traced(
                subject,
                tuple(
                    (
                        i,
                        topic,
                        bytes(key).decode("utf-8", "replace"),
                        {k: v.decode("utf-8", "replace") for k, v in headers_from_json(h)},
                        written,
                        sent,
                    )
                    for i, topic, key, h, written, sent in outputs
                ),
                tuple(
                    (ref, payer, payee, f"{amount} {ccy}", cycle, status, booked)
                    for ref, payer, payee, ccy, amount, cycle, status, booked in sorted(
                        obligations, key=lambda r: (r[7], r[0])
                    )
                ),
                tuple(tuple(r) for r in held),
                tuple(tuple(r) for r in cycles),
                tuple((k, s) for k, s in waiting),
            )

        return await self._run(work, write=False)

    async def cycle_obligations(self, cycle: str) -> list[Obligation]:
        async def work(tx: Tx) -> list[Obligation]:
            rows = await tx.fetch(
                "SELECT reference, payer, payee, currency, CAST(amount AS TEXT) FROM obligations "
                f"WHERE cycle = ? AND status != 'void' ORDER BY {tx.insertion_order}",
                cycle,
            )
            return [obligation_from_row(*r) for r in rows]

        return await self._run(work, write=False)

    async def finish_close(
        self,
        cycle: str,
        owner: str,
        status: str,
        summary: str,
        instruction_id: str | None,
        outbox: list[OutboxRow],
        correlations: list[Correlation],
        awaiting: list[str],
        on_settled: list[OutboxRow] | None = None,
    ) -> bool:
        async def work(tx: Tx) -> bool:
            done = await tx.execute(
                "UPDATE cycles SET status = ?, summary = ?, instruction_id = ?, awaiting = ?, "
                "closer = NULL, lease_until = NULL, updated_at = ? "
                "WHERE id = ? AND status = 'closing' AND closer = ?",
                status,
                summary,
                instruction_id,
                json.dumps(awaiting),
                tx.now,
                cycle,
                owner,
            )
            if done != 1:
                return False  # another instance finished it (our lease ran out)
            await _insert_outbox(tx, outbox)
            await _insert_correlations(tx, correlations)
            await tx.executemany(
                "INSERT INTO cycle_notices (cycle, seq, topic, key, value, headers) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (cycle, seq, r.topic, r.key, r.value, headers_to_json(r.headers))
                    for seq, r in enumerate(on_settled or ())
                ],
            )
            return True

        return await self._run(work, write=True)

    # -- held payments -------------------------------------------------------------------------
    async def release_held(self, currency: str, rules: Rules) -> int:
        async def work(tx: Tx) -> int:
            waiting = await tx.fetch(
                "SELECT 1 FROM held WHERE status = 'queued' AND currency = ? LIMIT 1", currency
            )
            if not waiting:
                return 0
            ledger = await _ledger_for(tx, {currency}, rules)
            ledger.release_all(currency)
            plan = Plan()
            release(plan, ledger, 0)
            await _insert_outbox(tx, plan.outbox)
            await _write_ledger(tx, ledger)
            return len(plan.released)

        return await self._run(work, write=True)

    async def refusals(self) -> list[HeldPayment]:
        return await self.held(HeldStatus.REFUSING)

    async def finish_refusal(self, held_id: int, outbox: list[OutboxRow]) -> bool:
        async def work(tx: Tx) -> bool:
            done = await tx.execute(
                "UPDATE held SET status = 'refused' WHERE id = ? AND status = 'refusing'",
                held_id,
            )
            if done == 1:
                await _insert_outbox(tx, outbox)
            return done == 1

        return await self._run(work, write=True)

    async def backlog(self) -> Backlog:
        async def work(tx: Tx) -> Backlog:
            rows = await tx.fetch(
                "SELECT currency, payer, count(*), sum(units) FROM held "
                "WHERE status = 'queued' GROUP BY currency, payer"
            )
            (totals,) = await tx.fetch(
                "SELECT (SELECT count(*) FROM outbox WHERE sent_at IS NULL), "
                "(SELECT count(*) FROM offset_runs), "
                "(SELECT coalesce(sum(payments), 0) FROM offset_runs), "
                "(SELECT coalesce(sum(gross - net), 0) FROM offset_runs)"
            )
            unsent, runs, released, saved = (int(v) for v in totals)
            queues = {(c, p): (int(n), int(u)) for c, p, n, u in rows}
            return Backlog(queues, unsent, runs, released, saved)

        return await self._run(work, write=False)

    async def liquidity(self, cycle: str) -> Saving:
        async def work(tx: Tx) -> Saving:
            (runs,) = await tx.fetch(
                "SELECT count(*), coalesce(sum(payments), 0), coalesce(sum(gross), 0), "
                "coalesce(sum(net), 0) FROM offset_runs WHERE cycle = ?",
                cycle,
            )
            waits = await tx.fetch(
                "SELECT CAST(h.created_at AS TEXT), CAST(r.released_at AS TEXT) FROM releases r "
                "JOIN held h ON h.id = r.held WHERE r.cycle = ? ORDER BY r.held",
                cycle,
            )
            count, payments, gross, net = (int(v) for v in runs)
            parse = datetime.fromisoformat  # times as the backend gives them back as text
            return Saving(
                count,
                payments,
                gross,
                net,
                held_seconds=tuple(
                    max(0.0, (parse(b) - parse(a)).total_seconds()) for a, b in waits
                ),
            )

        return await self._run(work, write=False)

    async def queued(self, currency: str) -> tuple[str | None, dict[str, int], list[Queued]]:
        async def work(tx: Tx) -> tuple[str | None, dict[str, int], list[Queued]]:
            head = await tx.fetch("SELECT cycle FROM cycle_heads WHERE currency = ?", currency)
            cycle = head[0][0] if head else None
            positions = {
                p: int(u)
                for p, u in await tx.fetch(
                    "SELECT participant, units FROM positions WHERE cycle = ?", cycle
                )
            }
            rows = await tx.fetch(
                "SELECT id, payer, units, cap, obligations, CAST(created_at AS TEXT) FROM held "
                "WHERE status = 'queued' AND currency = ? ORDER BY id",
                currency,
            )
            queued = []
            for hid, payer, units, cap, obligations, since in rows:
                # As the ledger sees it when it offsets (one computation of its moves).
                held = QueuedPayment(
                    int(hid), payer, currency, int(units), int(cap),
                    obligations_from_json(obligations),
                )  # fmt: skip
                queued.append(Queued(payer, held.units, since, held.candidate))
            return cycle, positions, queued

        return await self._run(work, write=False)

    async def held(self, status: str | None = None) -> list[HeldPayment]:
        async def work(tx: Tx) -> list[HeldPayment]:
            rows = await tx.fetch(
                "SELECT id, source, input, payer, status FROM held "
                "WHERE CAST(? AS TEXT) IS NULL OR status = ? ORDER BY id",
                status,
                status,
            )
            return [
                HeldPayment(i, src, bytes(value), payer, HeldStatus(st))
                for i, src, value, payer, st in rows
            ]

        return await self._run(work, write=False)


# -- a batch, inside its transaction -----------------------------------------------------------
async def _apply(tx: Tx, batch: list[Effects], rules: Rules) -> list[bool]:
    """For each record whose first claim this transaction wins, in batch order: its claims,
    outbox rows, obligations (through the settlement ledger), voids, correlations and cycle
    outcomes. A few statements per batch, not per record."""
    won = await tx.claim([e.claims[0] for e in batch])
    applied: list[bool] = []
    for e in batch:
        # Processed already (here, by another instance before a rebalance, or earlier in
        # this batch: one key twice, the first wins): no second effect.
        key = e.claims[0][0]
        applied.append(key in won)
        won.discard(key)
    chosen = [e for e, ok in zip(batch, applied, strict=True) if ok]
    if not chosen:
        return applied
    ledger = await _load_ledger(tx, chosen, rules)
    held_ids = await tx.next_ids("held", sum(1 for e in chosen if e.cap is not None))
    plan = plan_batch(chosen, ledger, iter(held_ids))
    rows = list(plan.outbox)
    # A PssblDplct resend publishes again what answered its original: stored, or earlier in
    # this batch, never a later record. Its rows follow the batch's own.
    before: dict[str, list[int]] = {}  # claim -> indexes in `rows` of what answered it
    for e in chosen:
        if e.replay_key is not None:
            earlier = before.get(e.replay_key)
            if earlier is not None:
                rows += [plan.outbox[i] for i in earlier]
            else:
                rows += await _stored_answers(tx, e.replay_key)
        for key, _ in e.claims:  # a resend may name its original by any of its keys
            before[key] = plan.results[e.claims[0][0]]
    ids = await _insert_outbox(tx, rows)
    results = {key: _csv(ids[i] for i in idx) for key, idx in plan.results.items()}
    await tx.executemany(
        "UPDATE claims SET results = ? WHERE key = ?",
        [(text, key) for key, text in results.items() if text],
    )
    await tx.executemany(
        "INSERT INTO claims (key, fingerprint, results, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        [(key, fp, results[e.claims[0][0]], tx.now) for e in chosen for key, fp in e.claims[1:]]
        # A request the gateway resolved itself: its answer is the payment's resolution, which
        # a later request for the payment gets again (gateway/messages/camt056.py, outcomes).
        + [
            (f"cxlres:{e.cancel_held}", e.claims[0][1], results[e.claims[0][0]], tx.now)
            for e in chosen
            if e.claims[0][0] in plan.cancelled_here
        ],
    )
    # A payment held or refused for its cap has not reached the other side: nothing answers
    # it. A held one's correlations wait beside it until it is released.
    held = {h.effects.claims[0][0]: h for h in plan.held}
    await _insert_correlations(
        tx,
        [
            c
            for e in chosen
            if e.claims[0][0] not in held and e.claims[0][0] not in plan.cancelled_here
            for c in e.correlations
        ],
    )
    await tx.executemany(
        "INSERT INTO held_correlations (held, key, outbound_biz_msg_idr, outbound_msg_id, data) "
        "VALUES (?, ?, ?, ?, ?)",
        [
            (h.id, c.key, c.outbound_biz_msg_idr, c.outbound_msg_id, correlation_to_json(c))
            for h in plan.held
            if h.status == HeldStatus.QUEUED
            for c in h.effects.correlations
        ],
    )
    # Every hold by its payment's keys, for good: a status enquiry finds a payment refused or
    # cancelled before it reached the other side, whose correlations are gone or never kept.
    await tx.executemany(
        "INSERT INTO held_keys (key, held) VALUES (?, ?) ON CONFLICT DO NOTHING",
        [(c.key, h.id) for h in plan.held for c in h.effects.correlations],
    )
    await tx.executemany(
        "INSERT INTO held (id, status, payer, currency, units, cap, obligations, outbox, "
        "source, input, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [h.row(tx.now) for h in plan.held],
    )
    await _write_ledger(tx, ledger)
    # Markers of answers sent to the retry topics, then those of answers now decided (a copy
    # decided in the batch that queued the retry removes the marker that retry just left).
    await tx.executemany(
        "INSERT INTO waiting (key, side, correlation) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        [(e.wait.key, e.wait.side, e.wait.correlation) for e in chosen if e.wait is not None],
    )
    await tx.executemany(
        "DELETE FROM waiting WHERE key = ?", [(e.claims[0][0],) for e in chosen if e.unwait]
    )
    for cycle, status, reason, instruction in (o for e in chosen for o in e.cycle_outcomes):
        await _cycle_outcome(tx, cycle, status, reason, instruction)
    return applied


async def _stored_answers(tx: Tx, claim: str) -> list[OutboxRow]:
    """The stored outbox rows that answered `claim`, in order."""
    found = await tx.fetch("SELECT results FROM claims WHERE key = ?", claim)
    ids = _ids(found[0][0]) if found else ()
    if not ids:
        return []
    rows = await tx.fetch_in(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id {{in}}", ids)
    return sorted(_outbox_rows(rows), key=lambda r: r.id or 0)


async def _load_ledger(tx: Tx, chosen: list[Effects], rules: Rules) -> Ledger:
    """What the batch touches: the obligations it books or voids, as stored (`known`); their
    currencies' open cycles (created if new), those cycles' positions, the payments held in
    those currencies (in every currency with held payments when a void names no stored
    obligation: it may cancel a held payment)."""
    known: dict[str, Recorded] = {}
    refs = references_touched(chosen)
    if refs:
        for ref, payer, payee, ccy, amount, units, cycle, status in await tx.fetch_in(
            "SELECT reference, payer, payee, currency, CAST(amount AS TEXT), units, cycle, "
            "status FROM obligations WHERE reference {in}",
            refs,
        ):
            known[ref] = Recorded(
                obligation_from_row(ref, payer, payee, ccy, amount),
                units,
                cycle,
                ObligationStatus(status),
            )
    currencies, unknown_voids = currencies_touched(chosen, known)
    if unknown_voids:
        currencies.update(
            c
            for (c,) in await tx.fetch("SELECT DISTINCT currency FROM held WHERE status = 'queued'")
        )
    ledger = await _ledger_for(tx, currencies, rules)
    ledger.known = known
    return ledger


async def _locked_heads(tx: Tx, currencies: Sequence[str]) -> dict[str, Head]:
    """The open cycles of `currencies`, locked until the transaction ends: a batch's cap
    checks and a close's freeze see one position at a time. Locked in currency order, so two
    transactions never wait for each other in a circle."""
    rows = await tx.fetch_in(
        "SELECT h.currency, c.id, c.seq, c.opened_at, c.due_at FROM cycle_heads h "
        "JOIN cycles c ON c.id = h.cycle WHERE h.currency {in} ORDER BY h.currency",
        list(currencies),
        lock="FOR UPDATE OF h",
    )
    return {
        ccy: Head(ccy, cycle, seq, parse_time(opened), parse_time(due))
        for ccy, cycle, seq, opened, due in rows
    }


async def _ledger_for(tx: Tx, currencies: set[str], rules: Rules) -> Ledger:
    if not currencies:
        return Ledger({}, {}, {}, rules)
    wanted = sorted(currencies)
    heads = await _locked_heads(tx, wanted)
    missing = [c for c in wanted if c not in heads]
    if missing:
        # First cycle of a currency. Two instances may race here: the loser's inserts wait for
        # the winner's and do nothing, and the lock below then gives it the winner's head.
        for currency in missing:
            head = Head(currency, cycle_id(currency, 1), 1, None, rules.next_cut_off(rules.now))
            await _open_cycle(tx, head, replace=False)
        heads = await _locked_heads(tx, wanted)
    assert set(heads) == set(wanted), f"no open cycle for {set(wanted) - set(heads)}"
    positions: dict[tuple[str, str], int] = {
        (cycle, participant): units
        for cycle, participant, units in await tx.fetch_in(
            "SELECT cycle, participant, units FROM positions WHERE cycle {in}",
            [h.cycle for h in heads.values()],
        )
    }
    queues: dict[tuple[str, str], deque[QueuedPayment]] = {}
    queued = await tx.fetch_in(
        "SELECT id, payer, currency, units, cap, obligations, outbox FROM held "
        "WHERE status = 'queued' AND currency {in}",
        wanted,
    )
    for hid, payer, ccy, units, cap, obligations, outbox in sorted(queued):
        queues.setdefault((payer, ccy), deque()).append(
            QueuedPayment(
                hid,
                payer,
                ccy,
                units,
                cap,
                obligations_from_json(obligations),
                outbox_from_json(outbox),
            )
        )
    return Ledger(heads, positions, queues, rules)


async def _open_cycle(tx: Tx, head: Head, replace: bool = True) -> None:
    await tx.execute(
        "INSERT INTO cycles (id, currency, seq, status, opened_at, due_at, updated_at) "
        "VALUES (?, ?, ?, 'open', ?, ?, ?) ON CONFLICT DO NOTHING",
        head.cycle,
        head.currency,
        head.seq,
        iso_utc8(head.opened_at),
        iso_utc8(head.due_at),
        tx.now,
    )
    await tx.execute(
        "INSERT INTO cycle_heads (currency, cycle) VALUES (?, ?) ON CONFLICT (currency) "
        + ("DO UPDATE SET cycle = excluded.cycle" if replace else "DO NOTHING"),
        head.currency,
        head.cycle,
    )


async def _write_ledger(tx: Tx, ledger: Ledger) -> None:
    """What the ledger decided: rolled and new cycles, bookings, voids, reversals, position
    moves, released and cancelled held payments."""
    ledger.check()  # what the ledger decided holds to its invariants, or nothing is written
    for rolled in ledger.rolled:
        await tx.execute(
            "UPDATE cycles SET status = 'closing', cut_off = ?, updated_at = ? "
            "WHERE id = ? AND status = 'open'",
            iso_utc8(rolled.cut_off),
            tx.now,
            rolled.frozen,
        )
        await _open_cycle(tx, rolled.opened)
    for head in ledger.created:
        await _open_cycle(tx, head, replace=False)
    await tx.executemany(
        "INSERT INTO obligations (reference, payer, payee, currency, amount, units, cycle, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [
            (
                b.obligation.reference,
                b.obligation.payer,
                b.obligation.payee,
                b.obligation.amount.currency,
                b.obligation.amount.amount,
                b.units,
                b.cycle,
                tx.now,
            )
            for b in ledger.booked
        ],
    )
    for status, references in (
        (ObligationStatus.VOID, ledger.voided),
        (ObligationStatus.REVERSED, ledger.reversed),
    ):
        await tx.executemany(
            "UPDATE obligations SET status = ? WHERE reference = ?",
            [(status, r) for r in references],
        )
    await tx.executemany(
        "INSERT INTO positions (cycle, participant, units) VALUES (?, ?, ?) "
        "ON CONFLICT (cycle, participant) DO UPDATE SET units = positions.units + excluded.units",
        [(c, p, u) for (c, p), u in ledger.deltas.items()],
    )
    for held, ids in (
        (HeldStatus.RELEASED, [item.id for item in ledger.released]),
        (HeldStatus.CANCELLED, ledger.cancelled),
    ):
        await tx.executemany("UPDATE held SET status = ? WHERE id = ?", [(held, i) for i in ids])
    runs = {item.id: run.released[0].id for run in ledger.offsets for item in run.released}
    await tx.executemany(
        "INSERT INTO releases (held, cycle, run, released_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        [
            (item.id, ledger.released_into[item.id], runs.get(item.id), tx.now)
            for item in ledger.released
        ],
    )
    await tx.executemany(
        "INSERT INTO offset_runs (run, cycle, payments, gross, net, at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [
            (run.released[0].id, run.cycle, len(run.released), run.gross, run.net, tx.now)
            for run in ledger.offsets
        ],
    )
    # Released: now on its way to the other side, so its answers may come.
    await tx.executemany(
        "INSERT INTO correlations (key, outbound_biz_msg_idr, outbound_msg_id, data) "
        "SELECT key, outbound_biz_msg_idr, outbound_msg_id, data FROM held_correlations "
        f"WHERE held = ? {_CORRELATION_UPSERT}",
        [(item.id,) for item in ledger.released],
    )
    await tx.executemany(
        "DELETE FROM held_correlations WHERE held = ?",
        [(i,) for i in [*(item.id for item in ledger.released), *ledger.cancelled]],
    )


async def _cycle_outcome(tx: Tx, cycle: str, status: str, reason: str, instruction: str) -> None:
    """The RTGS's answer to one of a cycle's instructions (only while it is instructed)."""
    found = await tx.fetch(
        "SELECT awaiting FROM cycles WHERE id = ? AND status = 'instructed'",
        cycle,
        lock="FOR UPDATE",
    )
    if not found:
        return  # settled or failed already: a late or repeated answer changes nothing
    new_status, awaiting = cycle_after(found[0][0], status, instruction)
    await tx.execute(
        "UPDATE cycles SET status = ?, reason = ?, awaiting = ?, updated_at = ? WHERE id = ?",
        new_status,
        reason,
        awaiting,
        tx.now,
        cycle,
    )
    if new_status == CycleStatus.SETTLED:
        # Booked by the RTGS: the participants are told now, in this transaction.
        notices = await tx.fetch(
            "SELECT topic, key, value, headers FROM cycle_notices WHERE cycle = ? ORDER BY seq",
            cycle,
        )
        await _insert_outbox(
            tx, [OutboxRow(t, bytes(k), bytes(v), headers_from_json(h)) for t, k, v, h in notices]
        )
    if new_status in (CycleStatus.SETTLED, CycleStatus.FAILED):
        await tx.execute("DELETE FROM cycle_notices WHERE cycle = ?", cycle)


async def _insert_outbox(tx: Tx, rows: list[OutboxRow]) -> list[int]:
    """Queue `rows` in order; their ids. Each row about a payment or transaction (its
    correlation-id header) is listed in its trail, for `trace`."""
    ids = await tx.next_ids("outbox", len(rows))
    await tx.executemany(
        "INSERT INTO outbox (id, topic, key, value, headers, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (i, r.topic, r.key, r.value, headers_to_json(r.headers), tx.now)
            for i, r in zip(ids, rows, strict=True)
        ],
    )
    await tx.executemany(
        "INSERT INTO trail (subject, outbox) VALUES (?, ?) ON CONFLICT DO NOTHING",
        [
            (subject.decode("utf-8", "replace"), i)
            for i, r in zip(ids, rows, strict=True)
            for name, subject in r.headers
            if name == "correlation-id"
        ],
    )
    return ids


async def _insert_correlations(tx: Tx, entries: list[Correlation]) -> None:
    await tx.executemany(
        "INSERT INTO correlations (key, outbound_biz_msg_idr, outbound_msg_id, data) "
        f"VALUES (?, ?, ?, ?) {_CORRELATION_UPSERT}",
        [
            (c.key, c.outbound_biz_msg_idr, c.outbound_msg_id, correlation_to_json(c))
            for c in entries
        ],
    )


def _outbox_rows(rows: list[Row]) -> list[OutboxRow]:
    return [OutboxRow(t, bytes(k), bytes(v), headers_from_json(h), i) for i, t, k, v, h in rows]


def _ids(text: str) -> tuple[int, ...]:
    """A claim's results: the outbox ids that answered it, comma separated."""
    return tuple(int(x) for x in text.split(",") if x)


def _csv(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in ids)


async def _payment_facts(tx: Tx, uetr: str) -> PaymentFacts:
    """What a status enquiry is told of a payment (gateway/flows/enquiries.py)."""
    # The answers applied: their claims, keyed by the payment and what they said
    # (gateway/messages/: status:, cxlsts:, return:); a range, not a LIKE, so both databases
    # use the primary key.
    claimed = []
    for prefix in (f"status:{uetr}:", f"cxlsts:{uetr}:"):
        rows = await tx.fetch(
            "SELECT key FROM claims WHERE key >= ? AND key < ? ORDER BY key",
            prefix,
            prefix[:-1] + ";",  # ';' sorts right after ':'
        )
        claimed.append(tuple(k.removeprefix(prefix) for (k,) in rows))
    returned = await tx.fetch("SELECT 1 FROM claims WHERE key = ?", f"return:{uetr}")
    booked = await tx.fetch(
        "SELECT o.cycle, o.status, c.status FROM obligations o "
        "JOIN cycles c ON c.id = o.cycle WHERE o.reference = ?",
        uetr,
    )
    held = await tx.fetch(
        "SELECT h.status, h.payer FROM held h JOIN held_keys k ON k.held = h.id "
        "WHERE k.key = ? ORDER BY h.id DESC",
        payment_key(uetr),
    )
    cycle, obligation, cycle_status = booked[0] if booked else (None, None, None)
    return PaymentFacts(
        uetr,
        statuses=claimed[0],
        resolutions=claimed[1],
        returned=bool(returned),
        cycle=cycle,
        obligation=obligation,
        cycle_status=cycle_status,
        held=held[0][0] if held else None,
        payer=held[0][1] if held else None,
    )


async def _account_facts(tx: Tx, bic: str, cycle: str | None) -> AccountFacts:
    """What a report request is told of a participant's account (gateway/flows/reports.py)."""
    accounts = []
    heads = await tx.fetch(
        "SELECT h.currency, h.cycle FROM cycle_heads h ORDER BY h.currency",
    )
    for currency, open_cycle in heads:
        position = await tx.fetch(
            "SELECT units FROM positions WHERE cycle = ? AND participant = ?", open_cycle, bic
        )
        totals = []
        for side in ("payee", "payer"):
            (count, units), *_ = await tx.fetch(
                f"SELECT count(*), COALESCE(sum(units), 0) FROM obligations "
                f"WHERE cycle = ? AND {side} = ? AND status != 'void'",
                open_cycle,
                bic,
            )
            totals.append((int(count), int(units)))
        held = await tx.fetch(
            "SELECT k.key, h.units FROM held h JOIN held_keys k ON k.held = h.id "
            "WHERE h.payer = ? AND h.currency = ? AND h.status = 'queued' ORDER BY h.id",
            bic,
            currency,
        )
        accounts.append(
            OpenAccount(
                currency,
                open_cycle,
                int(position[0][0]) if position else 0,
                totals[0],
                totals[1],
                tuple((key.split(":", 1)[-1], int(units)) for key, units in held),
            )
        )
    closed = None
    if cycle:
        found = await tx.fetch(
            "SELECT id, status, summary, opened_at, cut_off, instruction_id FROM cycles "
            "WHERE id = ?",
            cycle,
        )
        if found:
            closed = ClosedCycle(*found[0])
    return AccountFacts(bic, tuple(accounts), closed)
