"""SQLite state store: the embedded default (one gateway instance, zero set-up).

WAL mode, synchronous=FULL (an acknowledged batch survives a power cut), one connection used
from one dedicated thread, so the event loop never blocks on the database.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from gateway.canonical import Obligation
from gateway.clock import UTC8
from gateway.settlement.ledger import Head, Ledger, QueuedPayment, Recorded, Rules, cycle_id
from gateway.settlement.netting import Netter, Netting
from gateway.state.base import (
    ClaimState,
    CycleRecord,
    Effects,
    HeldPayment,
    OutboxRow,
    correlation_from_json,
    correlation_to_json,
    cycle_after,
    headers_from_json,
    headers_to_json,
    iso_utc8,
    obligation_from_row,
    obligation_row,
    obligations_from_json,
    outbox_from_json,
    parse_time,
    participant_totals,
)
from gateway.state.plan import (
    Plan,
    currencies_touched,
    plan_batch,
    references_touched,
    release,
)
from gateway.translation import Correlation

T = TypeVar("T")

_CYCLE_COLUMNS = (
    "id, currency, seq, status, opened_at, due_at, cut_off, instruction_id, summary, reason"
)
# Per participant in a cycle: obligations received (count, units) and paid (count, units).
_TOTALS_SQL = (
    "SELECT payee, count(*), sum(units), 0, 0 FROM obligations "
    "WHERE cycle = ? AND status != 'void' GROUP BY payee UNION ALL "
    "SELECT payer, 0, 0, count(*), sum(units) FROM obligations "
    "WHERE cycle = ? AND status != 'void' GROUP BY payer"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    results TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS obligations (
    reference TEXT PRIMARY KEY,
    payer TEXT NOT NULL,
    payee TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount TEXT NOT NULL,
    units INTEGER NOT NULL,
    cycle TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS obligations_cycle ON obligations (cycle, status);
CREATE TABLE IF NOT EXISTS cycles (
    id TEXT PRIMARY KEY,
    currency TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    opened_at TEXT,
    due_at TEXT,
    cut_off TEXT,
    closer TEXT,
    lease_until REAL,
    instruction_id TEXT,
    summary TEXT,
    reason TEXT,
    awaiting TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cycle_heads (
    currency TEXT PRIMARY KEY,
    cycle TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    cycle TEXT NOT NULL,
    participant TEXT NOT NULL,
    units INTEGER NOT NULL,
    PRIMARY KEY (cycle, participant)
);
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    payer TEXT NOT NULL,
    currency TEXT NOT NULL,
    units INTEGER NOT NULL,
    cap INTEGER NOT NULL,
    obligations TEXT NOT NULL,
    outbox TEXT NOT NULL,
    source TEXT NOT NULL,
    input BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS held_waiting ON held (currency, id)
    WHERE status IN ('queued', 'refusing');
CREATE TABLE IF NOT EXISTS correlations (
    key TEXT PRIMARY KEY,
    outbound_biz_msg_idr TEXT NOT NULL,
    outbound_msg_id TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS correlations_biz ON correlations (outbound_biz_msg_idr);
CREATE INDEX IF NOT EXISTS correlations_msg ON correlations (outbound_msg_id);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-state")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            assert self._db is not None, "state store not open"
            return fn(self._db)

        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            return db

        self._db = await asyncio.get_running_loop().run_in_executor(self._pool, connect)

    async def close(self) -> None:
        if self._db is not None:
            await self._run(lambda db: db.close())
            self._db = None
        self._pool.shutdown(wait=True)

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    async def claims(self, keys: list[str]) -> dict[str, ClaimState]:
        def query(db: sqlite3.Connection) -> dict[str, ClaimState]:
            found: dict[str, ClaimState] = {}
            for chunk in _chunks(keys, 500):
                marks = ",".join("?" * len(chunk))
                for key, fp, results in db.execute(
                    f"SELECT key, fingerprint, results FROM claims WHERE key IN ({marks})", chunk
                ):
                    ids = tuple(int(x) for x in results.split(",") if x)
                    found[key] = ClaimState(key, fp, ids)
            return found

        return await self._run(query) if keys else {}

    async def correlations(self, refs: list[str]) -> list[Correlation]:
        def query(db: sqlite3.Connection) -> list[Correlation]:
            out: dict[str, Correlation] = {}
            for chunk in _chunks(refs, 300):
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT key, data FROM correlations WHERE key IN ({marks}) "
                    f"OR outbound_biz_msg_idr IN ({marks}) OR outbound_msg_id IN ({marks})",
                    chunk * 3,
                )
                for key, data in rows:
                    out[key] = correlation_from_json(data)
            return list(out.values())

        return await self._run(query) if refs else []

    async def commit_batch(self, batch: list[Effects], rules: Rules | None = None) -> list[bool]:
        rules = rules or Rules(datetime.now(UTC8))
        return await self._transaction(lambda db: _apply(db, batch, _now(), rules))

    async def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` in one write transaction (BEGIN IMMEDIATE: the write lock from the start)."""

        def run(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return result

        return await self._run(run)

    # -- settlement cycles ---------------------------------------------------------------------
    async def cycles(
        self, currency: str | None = None, status: str | None = None
    ) -> list[CycleRecord]:
        def query(db: sqlite3.Connection) -> list[CycleRecord]:
            rows = db.execute(
                f"SELECT {_CYCLE_COLUMNS} FROM cycles WHERE (? IS NULL OR currency = ?) "
                "AND (? IS NULL OR status = ?) ORDER BY currency, seq",
                (currency, currency, status, status),
            )
            return [CycleRecord(*r) for r in rows]

        return await self._run(query)

    async def freeze(self, currency: str, rules: Rules, cycle: str | None = None) -> str | None:
        def run(db: sqlite3.Connection) -> str | None:
            known = db.execute("SELECT 1 FROM cycle_heads WHERE currency = ?", (currency,))
            if known.fetchone() is None:
                return None
            head = _head(db, currency, rules)
            if cycle is not None and head.cycle != cycle:
                return None  # rolled meanwhile (by a batch past its cut-off)
            ledger = Ledger({currency: head}, {}, {}, rules)
            rolled = ledger.roll_now(currency)
            _write_ledger(db, ledger, _now())
            return rolled.frozen if rolled else None

        return await self._transaction(run)

    async def take_close(self, cycle: str, owner: str, lease_seconds: float) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            now = time.time()
            done = db.execute(
                "UPDATE cycles SET closer = ?, lease_until = ? WHERE id = ? AND "
                "status = 'closing' AND (closer IS NULL OR closer = ? OR lease_until < ?)",
                (owner, now + lease_seconds, cycle, owner, now),
            )
            return done.rowcount == 1

        return await self._transaction(run)

    async def net_cycle(self, cycle: str, currency: str) -> Netting:
        def run(db: sqlite3.Connection) -> Netting:
            netter = Netter(currency, bilateral=True)
            cursor = db.execute(
                "SELECT payer, payee, units FROM obligations WHERE cycle = ? AND status != 'void'",
                (cycle,),
            )
            while rows := cursor.fetchmany(50_000):
                netter.add(rows)
            return netter.result()

        return await self._run(run)

    async def positions(self, cycle: str) -> dict[str, int]:
        def query(db: sqlite3.Connection) -> dict[str, int]:
            rows = db.execute(
                "SELECT participant, units FROM positions WHERE cycle = ? AND units != 0",
                (cycle,),
            )
            return dict(rows.fetchall())

        return await self._run(query)

    async def participant_totals(self, cycle: str) -> dict[str, tuple[int, int, int, int]]:
        def query(db: sqlite3.Connection) -> dict[str, tuple[int, int, int, int]]:
            return participant_totals(db.execute(_TOTALS_SQL, (cycle, cycle)))

        return await self._run(query)

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
    ) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            now = _now()
            done = db.execute(
                "UPDATE cycles SET status = ?, summary = ?, instruction_id = ?, awaiting = ?, "
                "closer = NULL, lease_until = NULL, updated_at = ? "
                "WHERE id = ? AND status = 'closing' AND closer = ?",
                (status, summary, instruction_id, json.dumps(awaiting), now, cycle, owner),
            )
            if done.rowcount != 1:
                return False  # another instance finished it (our lease ran out)
            _insert_outbox(db, outbox, now)
            _insert_correlations(db, correlations)
            return True

        return await self._transaction(run)

    async def release_held(self, currency: str, rules: Rules) -> int:
        def run(db: sqlite3.Connection) -> int:
            if (
                db.execute(
                    "SELECT 1 FROM held WHERE status = 'queued' AND currency = ? LIMIT 1",
                    (currency,),
                ).fetchone()
                is None
            ):
                return 0
            ledger = _ledger_for(db, {currency}, rules)
            ledger.release_all(currency)
            plan = Plan()
            release(plan, ledger, 0)
            _insert_outbox(db, plan.outbox, _now())
            _write_ledger(db, ledger, _now())
            return len(plan.released)

        return await self._transaction(run)

    async def refusals(self) -> list[HeldPayment]:
        return await self.held("refusing")

    async def finish_refusal(self, held_id: int, outbox: list[OutboxRow]) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            done = db.execute(
                "UPDATE held SET status = 'refused' WHERE id = ? AND status = 'refusing'",
                (held_id,),
            )
            if done.rowcount == 1:
                _insert_outbox(db, outbox, _now())
            return done.rowcount == 1

        return await self._transaction(run)

    async def held(self, status: str | None = None) -> list[HeldPayment]:
        def query(db: sqlite3.Connection) -> list[HeldPayment]:
            rows = db.execute(
                "SELECT id, source, input, payer, status FROM held "
                "WHERE ? IS NULL OR status = ? ORDER BY id",
                (status, status),
            )
            return [HeldPayment(*r) for r in rows]

        return await self._run(query)

    def is_transient(self, exc: BaseException) -> bool:
        # "database is locked" / disk I/O hiccups; a corrupt file is not transient.
        return isinstance(exc, sqlite3.OperationalError | OSError | TimeoutError)

    async def relay(self, limit: int, publish: Callable[[list[OutboxRow]], Awaitable[None]]) -> int:
        def query(db: sqlite3.Connection) -> list[OutboxRow]:
            rows = db.execute(
                "SELECT id, topic, key, value, headers FROM outbox WHERE sent_at IS NULL "
                "ORDER BY id LIMIT ?",
                (limit,),
            )
            return [OutboxRow(t, k, v, headers_from_json(h), i) for i, t, k, v, h in rows]

        def update(db: sqlite3.Connection, ids: list[int]) -> None:
            now = _now()
            # A sent mark lost to a power cut only means a row is published again, with the
            # same key and bytes: not worth an fsync. Batch commits stay synchronous=FULL.
            db.execute("PRAGMA synchronous=NORMAL")
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "UPDATE outbox SET sent_at = ? WHERE id = ?", [(now, i) for i in ids]
                )
                db.execute("COMMIT")
            finally:
                db.execute("PRAGMA synchronous=FULL")

        # One instance per SQLite file: nobody else relays these rows meanwhile.
        rows = await self._run(query)
        if rows:
            await publish(rows)
            ids = [r.id for r in rows if r.id is not None]
            await self._run(lambda db: update(db, ids))
        return len(rows)

    async def counts(self) -> dict[str, int]:
        def query(db: sqlite3.Connection) -> dict[str, int]:
            row = db.execute(
                "SELECT (SELECT count(*) FROM claims), "
                "(SELECT count(*) FROM outbox WHERE sent_at IS NULL), "
                "(SELECT count(*) FROM obligations)"
            ).fetchone()
            return dict(zip(("claims", "unsent", "obligations"), row, strict=True))

        return await self._run(query)

    async def outbox_rows(self, ids: list[int]) -> list[OutboxRow]:
        def query(db: sqlite3.Connection) -> list[OutboxRow]:
            marks = ",".join("?" * len(ids))
            rows = db.execute(
                f"SELECT id, topic, key, value, headers FROM outbox WHERE id IN ({marks}) "
                "ORDER BY id",
                ids,
            )
            return [OutboxRow(t, k, v, headers_from_json(h), i) for i, t, k, v, h in rows]

        return await self._run(query) if ids else []

    async def obligations(self, status: str | None = None) -> list[tuple[Obligation, str]]:
        def query(db: sqlite3.Connection) -> list[tuple[Obligation, str]]:
            sql = "SELECT reference, payer, payee, currency, amount, status FROM obligations"
            rows = db.execute(
                sql + (" WHERE status = ?" if status else "") + " ORDER BY rowid",
                (status,) if status else (),
            )
            return [(obligation_from_row(*r[:5]), r[5]) for r in rows]

        return await self._run(query)


def _apply(db: sqlite3.Connection, batch: list[Effects], now: str, rules: Rules) -> list[bool]:
    """The batch's effects, inside its transaction: for each record whose first claim is new,
    its claims, outbox rows, obligations (through the settlement ledger), voids, correlations
    and cycle outcomes. A few statements per batch, not per record (the write lock is held:
    outbox and held ids can be given here)."""
    firsts = [e.claims[0][0] for e in batch]
    taken: set[str] = set()
    for chunk in _chunks(firsts, 500):
        marks = ",".join("?" * len(chunk))
        taken.update(
            k for (k,) in db.execute(f"SELECT key FROM claims WHERE key IN ({marks})", chunk)
        )
    applied: list[bool] = []
    chosen: list[Effects] = []
    for effects, first in zip(batch, firsts, strict=True):
        # Processed already (here, by another instance before a rebalance, or earlier in
        # this batch): no second effect.
        applied.append(first not in taken)
        if first not in taken:
            taken.add(first)
            chosen.append(effects)
    if not chosen:
        return applied
    ledger = _load_ledger(db, chosen, rules)
    held_next = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM held").fetchone()[0]) + 1
    plan = plan_batch(chosen, ledger, itertools.count(held_next))
    next_id = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0]) + 1
    outbox: list[tuple[Any, ...]] = []
    rows_by_id: dict[int, tuple[Any, ...]] = {}
    for row in plan.outbox:
        values = (row.topic, row.key, row.value, headers_to_json(row.headers))
        outbox.append((next_id, *values, now))
        rows_by_id[next_id] = values
        next_id += 1
    first_id = outbox[0][0] if outbox else next_id
    results_of: dict[str, list[int]] = {}  # answers of the records before this one, by claim
    claims: list[tuple[str, str, str, str]] = []
    for e in chosen:
        if e.replay_key is not None:
            # A PssblDplct resend: what answered the original (stored, or earlier in this
            # batch: never a later record), published again.
            for values in _answers(db, e.replay_key, results_of, rows_by_id):
                outbox.append((next_id, *values, now))
                next_id += 1
        ids = [first_id + i for i in plan.results[e.claims[0][0]]]
        for key, _ in e.claims:  # a resend may name the original by any of its keys
            results_of[key] = ids
        results = ",".join(str(i) for i in ids)
        claims += [(key, fp, results, now) for key, fp in e.claims]
    refused = {h.effects.claims[0][0] for h in plan.held if h.status == "refusing"}
    db.executemany(
        "INSERT INTO outbox (id, topic, key, value, headers, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        outbox,
    )
    db.executemany(
        "INSERT OR IGNORE INTO claims (key, fingerprint, results, created_at) VALUES (?, ?, ?, ?)",
        claims,
    )
    _insert_correlations(
        db, [c for e in chosen if e.claims[0][0] not in refused for c in e.correlations]
    )
    db.executemany(
        "INSERT INTO held (id, status, payer, currency, units, cap, obligations, outbox, "
        "source, input, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [h.row(now) for h in plan.held],
    )
    _write_ledger(db, ledger, now)
    for cycle, status, reason, instruction in (o for e in chosen for o in e.cycle_outcomes):
        _cycle_outcome(db, cycle, status, reason, instruction, now)
    return applied


def _load_ledger(db: sqlite3.Connection, chosen: list[Effects], rules: Rules) -> Ledger:
    """What the batch's obligations and voids touch: the obligations it books or voids, as
    stored; their currencies' open cycles (created if new), those cycles' positions, the
    payments held in those currencies (in every currency with held payments when a void names
    no stored obligation: it may cancel a held payment)."""
    known: dict[str, Recorded] = {}
    for chunk in _chunks(references_touched(chosen), 500):
        marks = ",".join("?" * len(chunk))
        for ref, payer, payee, ccy, amount, units, cycle, status in db.execute(
            "SELECT reference, payer, payee, currency, amount, units, cycle, status "
            f"FROM obligations WHERE reference IN ({marks})",
            chunk,
        ):
            o = obligation_from_row(ref, payer, payee, ccy, amount)
            known[ref] = Recorded(o, units, cycle, status)
    currencies, unknown_voids = currencies_touched(chosen, known)
    if unknown_voids:
        currencies.update(
            c for (c,) in db.execute("SELECT DISTINCT currency FROM held WHERE status = 'queued'")
        )
    ledger = _ledger_for(db, currencies, rules)
    ledger.known = known
    return ledger


def _ledger_for(db: sqlite3.Connection, currencies: set[str], rules: Rules) -> Ledger:
    if not currencies:
        return Ledger({}, {}, {}, rules)
    heads: dict[str, Head] = {}
    for currency in sorted(currencies):
        heads[currency] = _head(db, currency, rules)
    cycles = [h.cycle for h in heads.values()]
    positions: dict[tuple[str, str], int] = {}
    queues: dict[tuple[str, str], deque[QueuedPayment]] = {}
    if cycles:
        marks = ",".join("?" * len(cycles))
        for cycle, participant, units in db.execute(
            f"SELECT cycle, participant, units FROM positions WHERE cycle IN ({marks})", cycles
        ):
            positions[(cycle, participant)] = units
        cmarks = ",".join("?" * len(heads))
        for hid, payer, ccy, units, cap, obligations, outbox in db.execute(
            "SELECT id, payer, currency, units, cap, obligations, outbox FROM held "
            f"WHERE status = 'queued' AND currency IN ({cmarks}) ORDER BY id",
            list(heads),
        ):
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


def _head(db: sqlite3.Connection, currency: str, rules: Rules) -> Head:
    row = db.execute(
        "SELECT c.id, c.seq, c.opened_at, c.due_at FROM cycle_heads h "
        "JOIN cycles c ON c.id = h.cycle WHERE h.currency = ?",
        (currency,),
    ).fetchone()
    if row is not None:
        return Head(currency, row[0], row[1], parse_time(row[2]), parse_time(row[3]))
    head = Head(currency, cycle_id(currency, 1), 1, None, rules.next_cut_off(rules.now))
    _open_cycle(db, head, _now())
    return head


def _open_cycle(db: sqlite3.Connection, head: Head, now: str) -> None:
    db.execute(
        "INSERT INTO cycles (id, currency, seq, status, opened_at, due_at, updated_at) "
        "VALUES (?, ?, ?, 'open', ?, ?, ?)",
        (head.cycle, head.currency, head.seq, iso_utc8(head.opened_at), iso_utc8(head.due_at), now),
    )
    db.execute(
        "INSERT INTO cycle_heads (currency, cycle) VALUES (?, ?) "
        "ON CONFLICT (currency) DO UPDATE SET cycle = excluded.cycle",
        (head.currency, head.cycle),
    )


def _write_ledger(db: sqlite3.Connection, ledger: Ledger, now: str) -> None:
    for rolled in ledger.rolled:
        db.execute(
            "UPDATE cycles SET status = 'closing', cut_off = ?, updated_at = ? "
            "WHERE id = ? AND status = 'open'",
            (iso_utc8(rolled.cut_off), now, rolled.frozen),
        )
        _open_cycle(db, rolled.opened, now)
    for head in ledger.created:
        _open_cycle(db, head, now)
    db.executemany(
        "INSERT OR IGNORE INTO obligations (reference, payer, payee, currency, amount, units,"
        " cycle, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(*obligation_row(b.obligation), b.units, b.cycle, now) for b in ledger.booked],
    )
    db.executemany(
        "UPDATE obligations SET status = 'void' WHERE reference = ?",
        [(r,) for r in ledger.voided],
    )
    db.executemany(
        "UPDATE obligations SET status = 'reversed' WHERE reference = ?",
        [(r,) for r in ledger.reversed],
    )
    db.executemany(
        "INSERT INTO positions (cycle, participant, units) VALUES (?, ?, ?) "
        "ON CONFLICT (cycle, participant) DO UPDATE SET units = units + excluded.units",
        [(c, p, u) for (c, p), u in ledger.deltas.items()],
    )
    db.executemany(
        "UPDATE held SET status = 'released' WHERE id = ?",
        [(item.id,) for item in ledger.released],
    )
    db.executemany(
        "UPDATE held SET status = 'cancelled' WHERE id = ?", [(i,) for i in ledger.cancelled]
    )


def _cycle_outcome(
    db: sqlite3.Connection, cycle: str, status: str, reason: str, instruction: str, now: str
) -> None:
    """The RTGS's answer to one of a cycle's instructions (only while it is instructed)."""
    row = db.execute(
        "SELECT awaiting FROM cycles WHERE id = ? AND status = 'instructed'", (cycle,)
    ).fetchone()
    if row is None:
        return  # settled or failed already: a late or repeated answer changes nothing
    new_status, awaiting = cycle_after(row[0], status, instruction)
    db.execute(
        "UPDATE cycles SET status = ?, reason = ?, awaiting = ?, updated_at = ? WHERE id = ?",
        (new_status, reason, awaiting, now, cycle),
    )


def _answers(
    db: sqlite3.Connection,
    claim: str,
    results_of: dict[str, list[int]],
    rows_by_id: dict[int, tuple[Any, ...]],
) -> list[tuple[Any, ...]]:
    """(topic, key, value, headers) of the outbox rows that answered `claim`."""
    ids = results_of.get(claim)
    if ids is not None:  # answered earlier in this very batch, not written yet
        return [rows_by_id[i] for i in ids]
    found = db.execute("SELECT results FROM claims WHERE key = ?", (claim,)).fetchone()
    ids = [int(x) for x in (found[0] if found else "").split(",") if x]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return db.execute(
        f"SELECT topic, key, value, headers FROM outbox WHERE id IN ({marks}) ORDER BY id", ids
    ).fetchall()


def _insert_outbox(db: sqlite3.Connection, rows: list[OutboxRow], now: str) -> None:
    db.executemany(
        "INSERT INTO outbox (topic, key, value, headers, created_at) VALUES (?, ?, ?, ?, ?)",
        [(r.topic, r.key, r.value, headers_to_json(r.headers), now) for r in rows],
    )


def _insert_correlations(db: sqlite3.Connection, entries: list[Correlation]) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO correlations (key, outbound_biz_msg_idr, "
        "outbound_msg_id, data) VALUES (?, ?, ?, ?)",
        [
            (c.key, c.outbound_biz_msg_idr, c.outbound_msg_id, correlation_to_json(c))
            for c in entries
        ],
    )


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
