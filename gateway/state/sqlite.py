"""SQLite backend: the embedded default (one gateway instance, zero set-up).

WAL mode, synchronous=FULL (an acknowledged batch survives a power cut), one connection used
from one dedicated thread, so the event loop never blocks on the database. The store's
algorithm (gateway/state/store.py) runs whole inside that thread: over this backend's `Tx`
its awaits never suspend, so its coroutine is driven to the end there, in one call. A write
transaction is BEGIN IMMEDIATE, which holds the database's write lock from the start: the
claim race, head locks and id allocation need nothing more.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from gateway.state.base import OutboxRow, headers_from_json
from gateway.state.schema import SQLITE, schema
from gateway.state.store import Store
from gateway.state.tx import Row, Work

T = TypeVar("T")
# Amounts are kept as the text they came as ("1250000.00"), never as a float.
sqlite3.register_adapter(Decimal, str)
_CHUNK = 240  # parameters per `{in}`: a query has up to four, 960 < 999 (SQLite before 3.32)


class SqliteTx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._now = datetime.now(UTC).isoformat(timespec="microseconds")

    @property
    def now(self) -> object:
        return self._now

    @property
    def insertion_order(self) -> str:
        return SQLITE.insertion_order

    async def fetch(self, sql: str, *args: object, lock: str = "") -> list[Row]:
        return self._db.execute(sql, args).fetchall()

    async def fetch_in(self, sql: str, values: Sequence[object], lock: str = "") -> list[Row]:
        rows: list[Row] = []
        markers = sql.count("{in}")
        for i in range(0, len(values), _CHUNK):
            chunk = list(values[i : i + _CHUNK])
            marks = "IN (" + ",".join("?" * len(chunk)) + ")"
            rows += self._db.execute(sql.replace("{in}", marks), chunk * markers).fetchall()
        return rows

    async def execute(self, sql: str, *args: object) -> int:
        return self._db.execute(sql, args).rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            self._db.executemany(sql, rows)

    async def chunks(self, sql: str, *args: object) -> AsyncIterator[list[Row]]:
        cursor = self._db.execute(sql, args)
        while rows := cursor.fetchmany(50_000):
            yield rows

    async def claim(self, claims: Sequence[tuple[str, str]]) -> set[str]:
        # The write lock is held: whatever does not exist now is this transaction's.
        taken = {
            k
            for (k,) in await self.fetch_in(
                "SELECT key FROM claims WHERE key {in}", [k for k, _ in claims]
            )
        }
        won: dict[str, str] = {}
        for key, fingerprint in claims:
            if key not in taken and key not in won:
                won[key] = fingerprint
        await self.executemany(
            "INSERT INTO claims (key, fingerprint, created_at) VALUES (?, ?, ?)",
            [(k, fp, self._now) for k, fp in won.items()],
        )
        return set(won)

    async def next_ids(self, table: str, count: int) -> list[int]:
        assert table in ("outbox", "held"), table
        (last,) = self._db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
        return list(range(int(last) + 1, int(last) + 1 + count))


def _to_the_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (the store's work over a `SqliteTx`)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise AssertionError("the store's work suspended inside a SQLite transaction")


class SqliteBackend:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-state")
        self._db: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SqliteBackend({str(self.path)!r})"

    async def _in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
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
            db.executescript(schema(SQLITE))
            return db

        self._db = await asyncio.get_running_loop().run_in_executor(self._pool, connect)

    async def close(self) -> None:
        if self._db is not None:
            await self._in_thread(lambda db: db.close())
            self._db = None
        self._pool.shutdown(wait=True)

    async def run(self, work: Work[T], write: bool) -> T:
        def call(db: sqlite3.Connection) -> T:
            if not write:
                return _to_the_end(work(SqliteTx(db)))
            db.execute("BEGIN IMMEDIATE")
            try:
                result = _to_the_end(work(SqliteTx(db)))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return result

        return await self._in_thread(call)

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
            now = datetime.now(UTC).isoformat(timespec="microseconds")
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

        # One instance per SQLite file (gateway/instance.py): nobody else relays these rows.
        rows = await self._in_thread(query)
        if rows:
            await publish(rows)
            ids = [r.id for r in rows if r.id is not None]
            await self._in_thread(lambda db: update(db, ids))
        return len(rows)


class SqliteStore(Store):
    """The state store on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.sqlite = SqliteBackend(path)
        super().__init__(self.sqlite)

    @property
    def path(self) -> Path:
        return self.sqlite.path
