"""SQLite state store: the embedded default (one gateway instance, zero set-up).

WAL mode, synchronous=FULL (an acknowledged batch survives a power cut), one connection used
from one dedicated thread, so the event loop never blocks on the database.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from gateway.canonical import Obligation
from gateway.state.base import (
    ClaimState,
    Effects,
    OutboxRow,
    correlation_from_json,
    correlation_to_json,
    headers_from_json,
    headers_to_json,
    obligation_from_row,
    obligation_row,
)
from gateway.translation import Correlation

T = TypeVar("T")

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
    status TEXT NOT NULL DEFAULT 'open',
    created_at TEXT NOT NULL
);
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

    async def commit_batch(self, batch: list[Effects]) -> list[bool]:
        def apply(db: sqlite3.Connection) -> list[bool]:
            db.execute("BEGIN IMMEDIATE")
            try:
                applied = _apply(db, batch, _now())
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return applied

        return await self._run(apply)

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


def _apply(db: sqlite3.Connection, batch: list[Effects], now: str) -> list[bool]:
    """The batch's effects, inside its transaction: for each record whose first claim is new,
    its claims, outbox rows, obligations, voids and correlations. A few statements per batch,
    not per record (the write lock is held: outbox ids can be given here)."""
    firsts = [e.claims[0][0] for e in batch]
    taken: set[str] = set()
    for chunk in _chunks(firsts, 500):
        marks = ",".join("?" * len(chunk))
        taken.update(
            k for (k,) in db.execute(f"SELECT key FROM claims WHERE key IN ({marks})", chunk)
        )
    applied: list[bool] = []
    next_id = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0]) + 1
    outbox: list[tuple[Any, ...]] = []
    claims: list[tuple[str, str, str, str]] = []
    obligations: list[tuple[str, ...]] = []
    voids: list[tuple[str]] = []
    correlations: list[tuple[str, str, str, str]] = []
    results_of: dict[str, list[int]] = {}  # this batch's answers, by claim
    rows_by_id: dict[int, tuple[Any, ...]] = {}
    for effects, first in zip(batch, firsts, strict=True):
        # Processed already (here, by another instance before a rebalance, or earlier in
        # this batch): no second effect.
        applied.append(first not in taken)
        if first in taken:
            continue
        taken.add(first)
        ids: list[int] = []
        for row in effects.outbox:
            values = (row.topic, row.key, row.value, headers_to_json(row.headers))
            outbox.append((next_id, *values, now))
            rows_by_id[next_id] = values
            ids.append(next_id)
            next_id += 1
        if effects.replay_key is not None:
            # A PssblDplct resend: what answered the original, published again.
            for values in _answers(db, effects.replay_key, results_of, rows_by_id):
                outbox.append((next_id, *values, now))
                next_id += 1
        for key, _ in effects.claims:  # a resend may name the original by any of its keys
            results_of[key] = ids
        results = ",".join(str(i) for i in ids)
        claims += [(key, fp, results, now) for key, fp in effects.claims]
        obligations += [(*obligation_row(o), now) for o in effects.obligations]
        voids += [(reference,) for reference in effects.voids]
        correlations += [
            (c.key, c.outbound_biz_msg_idr, c.outbound_msg_id, correlation_to_json(c))
            for c in effects.correlations
        ]
    db.executemany(
        "INSERT INTO outbox (id, topic, key, value, headers, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        outbox,
    )
    db.executemany(
        "INSERT OR IGNORE INTO claims (key, fingerprint, results, created_at) VALUES (?, ?, ?, ?)",
        claims,
    )
    db.executemany(
        "INSERT OR IGNORE INTO obligations (reference, payer, payee, currency, amount,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
        obligations,
    )
    db.executemany("UPDATE obligations SET status = 'void' WHERE reference = ?", voids)
    db.executemany(
        "INSERT OR REPLACE INTO correlations (key, outbound_biz_msg_idr, "
        "outbound_msg_id, data) VALUES (?, ?, ?, ?)",
        correlations,
    )
    return applied


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


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
