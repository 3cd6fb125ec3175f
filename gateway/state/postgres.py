"""PostgreSQL backend (asyncpg): several gateway instances share one state.

Correctness across instances rests on what the database gives, and this module is where it is
asked for:
- a claim is an INSERT .. ON CONFLICT DO NOTHING on the claims' primary key, inside the batch
  transaction: when two instances race for one record (a rebalance overlap), the second blocks
  on the first's uncommitted row and then finds it taken, so the record's effects are applied
  by exactly one of them;
- a currency's cycle head is locked FOR UPDATE by a batch booking into it and by a freeze;
- ids come from the tables' sequences;
- the relay locks the rows it publishes (FOR UPDATE SKIP LOCKED) until it marks them sent, so
  live instances do not publish each other's rows twice, and a dead instance's locks vanish with
  its connection, leaving its rows to the next relay pass.
Everything else is the shared algorithm (gateway/state/store.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg

from gateway.state.base import OutboxRow, headers_from_json
from gateway.state.schema import POSTGRES, schema
from gateway.state.store import Store
from gateway.state.tx import Row, Work

T = TypeVar("T")
# Instances starting together must not race on CREATE TABLE IF NOT EXISTS.
_SCHEMA_LOCK = 0x636F6E6E656374  # "connect"
# How long a stop waits for the pool's connections to be released before dropping them.
CLOSE_SECONDS = 10
log = logging.getLogger(__name__)

# Faults worth retrying: the server restarting, a failover, a lost connection, a conflict.
TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.AdminShutdownError,
    asyncpg.InterfaceError,
    # A connection left mid-operation by a server that went away ("cannot switch to state
    # 15; another operation is in progress", seen in a CI run when the relay's connection
    # died): the whole transaction is tried again on another connection, as for the above.
    asyncpg.InternalClientError,
)


@functools.lru_cache(maxsize=256)
def _numbered(sql: str) -> str:
    """`?` parameters as PostgreSQL numbers them; `{in}` as `= ANY($1)` (its only one)."""
    if "{in}" in sql:
        assert "?" not in sql, sql
        return sql.replace("{in}", "= ANY($1)")
    count = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


def _changed(status: str) -> int:
    """Rows changed, from a command status such as "UPDATE 1" or "INSERT 0 3"."""
    return int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0


class PostgresTx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._now = datetime.now(UTC)

    @property
    def now(self) -> object:
        return self._now

    @property
    def insertion_order(self) -> str:
        return POSTGRES.insertion_order

    async def fetch(self, sql: str, *args: object, lock: str = "") -> list[Row]:
        sql = f"{sql} {lock}" if lock else sql
        return [tuple(r) for r in await self._conn.fetch(_numbered(sql), *args)]

    async def fetch_in(self, sql: str, values: Sequence[object], lock: str = "") -> list[Row]:
        sql = f"{sql} {lock}" if lock else sql
        return [tuple(r) for r in await self._conn.fetch(_numbered(sql), list(values))]

    async def execute(self, sql: str, *args: object) -> int:
        return _changed(await self._conn.execute(_numbered(sql), *args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            await self._conn.executemany(_numbered(sql), rows)

    async def chunks(self, sql: str, *args: object) -> AsyncIterator[list[Row]]:
        # A cursor lives in a transaction: a read gets its own.
        async with self._conn.transaction():
            cursor = await self._conn.cursor(_numbered(sql), *args)
            while rows := await cursor.fetch(50_000):
                yield [tuple(r) for r in rows]

    async def claim(self, claims: Sequence[tuple[str, str]]) -> set[str]:
        won = await self._conn.fetch(
            "INSERT INTO claims (key, fingerprint, created_at) "
            "SELECT k, f, $3 FROM unnest($1::text[], $2::text[]) AS t(k, f) "
            "ON CONFLICT DO NOTHING RETURNING key",
            [k for k, _ in claims],
            [f for _, f in claims],
            self._now,
        )
        return {r["key"] for r in won}

    async def next_ids(self, table: str, count: int) -> list[int]:
        assert table in ("outbox", "held"), table
        if not count:
            return []
        rows = await self._conn.fetch(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, $1)",
            count,
        )
        return sorted(r[0] for r in rows)


class PostgresBackend:
    def __init__(self, dsn: str, pool_size: int = 4) -> None:
        self._dsn = dsn  # may hold a password: never logged, never in repr
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    def __repr__(self) -> str:
        return "PostgresBackend(<dsn hidden>)"

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "state store not open"
        return self._pool

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, (*TRANSIENT, OSError, TimeoutError))

    async def open(self) -> None:
        async def setup(conn: asyncpg.Connection) -> None:
            # JSONB headers/data travel as text: the store owns their encoding.
            for kind in ("json", "jsonb"):
                await conn.set_type_codec(
                    kind, encoder=lambda s: s, decoder=lambda s: s, schema="pg_catalog"
                )

        # min_size=0: asyncpg keeps no connection floor, whose restoring task logs a traceback
        # every try while the server is down; connections are made when a step needs one
        # (and kept for reuse), and a step that fails is retried by its caller.
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=0, max_size=self._pool_size, init=setup, command_timeout=60
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            await conn.execute(schema(POSTGRES))
            # Before the store was written once, a claim's results were a BIGINT[]; the
            # shared algorithm keeps them as text, as SQLite always did.
            await conn.execute(
                "DO $$ BEGIN IF (SELECT data_type FROM information_schema.columns WHERE "
                "table_schema = current_schema() AND table_name = 'claims' AND "
                "column_name = 'results') = 'ARRAY' THEN "
                "ALTER TABLE claims ALTER COLUMN results DROP DEFAULT; "
                "ALTER TABLE claims ALTER COLUMN results TYPE TEXT "
                "USING array_to_string(results, ','); "
                "ALTER TABLE claims ALTER COLUMN results SET DEFAULT ''; END IF; END $$"
            )

    async def close(self) -> None:
        """Gracefully, within CLOSE_SECONDS; then the connections are dropped. asyncpg's
        close waits for every connection to be released, and one whose acquire or query was
        cancelled at the wrong moment never is (asyncpg #547): a stop must still end. Nothing
        is lost by dropping them: an open transaction rolls back, as after a crash."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), CLOSE_SECONDS)
        except TimeoutError:
            log.warning("state store: connections not released in %d s; dropped", CLOSE_SECONDS)
            pool.terminate()

    async def run(self, work: Work[T], write: bool) -> T:
        async with self.pool.acquire() as conn:
            if not write:
                return await work(PostgresTx(conn))
            async with conn.transaction():
                return await work(PostgresTx(conn))

    async def relay(self, limit: int, publish: Callable[[list[OutboxRow]], Awaitable[None]]) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = [
                OutboxRow(r[1], bytes(r[2]), bytes(r[3]), headers_from_json(r[4]), r[0])
                for r in await conn.fetch(
                    "SELECT id, topic, key, value, headers FROM outbox WHERE sent_at IS NULL "
                    "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                    limit,
                )
            ]
            if not rows:
                return 0
            await publish(rows)
            await conn.execute(
                "UPDATE outbox SET sent_at = $2 WHERE id = ANY($1::bigint[])",
                [r.id for r in rows],
                datetime.now(UTC),
            )
        return len(rows)


class PostgresStore(Store):
    """The state store on a PostgreSQL database, shared by several instances."""

    def __init__(self, dsn: str, pool_size: int = 4) -> None:
        self.postgres = PostgresBackend(dsn, pool_size)
        super().__init__(self.postgres)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.postgres.pool
