"""PostgreSQL state store (asyncpg): several gateway instances share one state.

Correctness across instances rests on two things the database gives:
- a claim is an INSERT .. ON CONFLICT DO NOTHING on the claims' primary key, inside the batch
  transaction: when two instances race for one record (a rebalance overlap), the second blocks
  on the first's uncommitted row and then finds it taken, so the record's effects are applied
  by exactly one of them;
- the relay locks the rows it publishes (FOR UPDATE SKIP LOCKED) until it marks them sent, so
  live instances do not publish each other's rows twice, and a dead instance's locks vanish with
  its connection, leaving its rows to the next relay pass.
Each batch costs a handful of round trips, whatever its size (arrays and pipelined inserts).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

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

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    results BIGINT[] NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id BIGSERIAL PRIMARY KEY,
    topic TEXT NOT NULL,
    key BYTEA NOT NULL,
    value BYTEA NOT NULL,
    headers JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    sent_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS obligations (
    seq BIGSERIAL,
    reference TEXT PRIMARY KEY,
    payer TEXT NOT NULL,
    payee TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount NUMERIC NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS correlations (
    key TEXT PRIMARY KEY,
    outbound_biz_msg_idr TEXT NOT NULL,
    outbound_msg_id TEXT NOT NULL,
    data JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS correlations_biz ON correlations (outbound_biz_msg_idr);
CREATE INDEX IF NOT EXISTS correlations_msg ON correlations (outbound_msg_id);
"""

# Instances starting together must not race on CREATE TABLE IF NOT EXISTS.
_SCHEMA_LOCK = 0x636F6E6E656374  # "connect"

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
)


def _row(r: asyncpg.Record) -> OutboxRow:
    return OutboxRow(
        r["topic"], bytes(r["key"]), bytes(r["value"]), headers_from_json(r["headers"]), r["id"]
    )


class PostgresStore:
    def __init__(self, dsn: str, pool_size: int = 4) -> None:
        self._dsn = dsn  # may hold a password: never logged, never in repr
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    def __repr__(self) -> str:
        return "PostgresStore(<dsn hidden>)"

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

        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=self._pool_size, init=setup, command_timeout=60
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            await conn.execute(SCHEMA)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def claims(self, keys: list[str]) -> dict[str, ClaimState]:
        if not keys:
            return {}
        rows = await self.pool.fetch(
            "SELECT key, fingerprint, results FROM claims WHERE key = ANY($1::text[])", keys
        )
        return {r["key"]: ClaimState(r["key"], r["fingerprint"], tuple(r["results"])) for r in rows}

    async def correlations(self, refs: list[str]) -> list[Correlation]:
        if not refs:
            return []
        rows = await self.pool.fetch(
            "SELECT key, data FROM correlations WHERE key = ANY($1::text[]) "
            "OR outbound_biz_msg_idr = ANY($1::text[]) OR outbound_msg_id = ANY($1::text[])",
            refs,
        )
        return [correlation_from_json(r["data"]) for r in rows]

    async def commit_batch(self, batch: list[Effects]) -> list[bool]:
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            firsts = [e.claims[0] for e in batch]
            won = {
                r["key"]
                for r in await conn.fetch(
                    "INSERT INTO claims (key, fingerprint, created_at) "
                    "SELECT k, f, $3 FROM unnest($1::text[], $2::text[]) AS t(k, f) "
                    "ON CONFLICT DO NOTHING RETURNING key",
                    [k for k, _ in firsts],
                    [f for _, f in firsts],
                    now,
                )
            }
            applied = []
            for e in batch:
                # One key twice in a batch (two identical unreadable records): the first wins.
                key = e.claims[0][0]
                applied.append(key in won)
                won.discard(key)
            chosen = [e for e, ok in zip(batch, applied, strict=True) if ok]
            if chosen:
                await self._apply(conn, chosen, now)
        return applied

    async def _apply(self, conn: asyncpg.Connection, batch: list[Effects], now: datetime) -> None:
        """The effects of the records whose claim this transaction won."""
        count = sum(len(e.outbox) for e in batch)
        ids = [
            r[0]
            for r in await conn.fetch(
                "SELECT nextval(pg_get_serial_sequence('outbox', 'id')) "
                "FROM generate_series(1, $1)",
                count,
            )
        ]
        ids.sort()  # outbox order is publication order
        outbox: list[tuple[Any, ...]] = []
        results: dict[str, list[int]] = {}
        next_id = iter(ids)
        for e in batch:
            mine = results.setdefault(e.claims[0][0], [])
            for row in e.outbox:
                i = next(next_id)
                mine.append(i)
                outbox.append((i, row.topic, row.key, row.value, headers_to_json(row.headers), now))
        if outbox:
            await conn.executemany(
                "INSERT INTO outbox (id, topic, key, value, headers, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                outbox,
            )
        # A resend may name its original by any of the original's claims.
        by_claim = {key: results[e.claims[0][0]] for e in batch for key, _ in e.claims}
        for e in batch:
            if e.replay_key is None:
                continue
            earlier = by_claim.get(e.replay_key)  # answered earlier in this very batch
            if earlier is None:
                found = await conn.fetchval(
                    "SELECT results FROM claims WHERE key = $1", e.replay_key
                )
                earlier = list(found or ())
            if earlier:
                await conn.execute(
                    "INSERT INTO outbox (topic, key, value, headers, created_at) "
                    "SELECT topic, key, value, headers, $2 FROM outbox "
                    "WHERE id = ANY($1::bigint[]) ORDER BY id",
                    earlier,
                    now,
                )
        await conn.executemany(
            "UPDATE claims SET results = $2 WHERE key = $1",
            [(k, v) for k, v in results.items() if v],
        )
        others = [
            (key, fp, results[e.claims[0][0]], now) for e in batch for key, fp in e.claims[1:]
        ]
        if others:
            await conn.executemany(
                "INSERT INTO claims (key, fingerprint, results, created_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                others,
            )
        obligations = [(*obligation_row(o), now) for e in batch for o in e.obligations]
        if obligations:
            await conn.executemany(
                "INSERT INTO obligations (reference, payer, payee, currency, amount, created_at)"
                " VALUES ($1, $2, $3, $4, $5::numeric, $6) ON CONFLICT DO NOTHING",
                obligations,
            )
        voids = [ref for e in batch for ref in e.voids]
        if voids:
            await conn.execute(
                "UPDATE obligations SET status = 'void' WHERE reference = ANY($1::text[])", voids
            )
        correlations = [
            (c.key, c.outbound_biz_msg_idr, c.outbound_msg_id, correlation_to_json(c))
            for e in batch
            for c in e.correlations
        ]
        if correlations:
            await conn.executemany(
                "INSERT INTO correlations (key, outbound_biz_msg_idr, outbound_msg_id, data) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE SET "
                "outbound_biz_msg_idr = EXCLUDED.outbound_biz_msg_idr, "
                "outbound_msg_id = EXCLUDED.outbound_msg_id, data = EXCLUDED.data",
                correlations,
            )

    async def relay(self, limit: int, publish: Callable[[list[OutboxRow]], Awaitable[None]]) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = [
                _row(r)
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

    async def outbox_rows(self, ids: list[int]) -> list[OutboxRow]:
        rows = await self.pool.fetch(
            "SELECT id, topic, key, value, headers FROM outbox WHERE id = ANY($1::bigint[]) "
            "ORDER BY id",
            ids,
        )
        return [_row(r) for r in rows]

    async def obligations(self, status: str | None = None) -> list[tuple[Obligation, str]]:
        rows = await self.pool.fetch(
            "SELECT reference, payer, payee, currency, amount::text AS amount, status "
            "FROM obligations WHERE $1::text IS NULL OR status = $1 ORDER BY seq",
            status,
        )
        return [
            (
                obligation_from_row(
                    r["reference"], r["payer"], r["payee"], r["currency"], r["amount"]
                ),
                r["status"],
            )
            for r in rows
        ]

    async def counts(self) -> dict[str, int]:
        row = await self.pool.fetchrow(
            "SELECT (SELECT count(*) FROM claims) AS claims, "
            "(SELECT count(*) FROM outbox WHERE sent_at IS NULL) AS unsent, "
            "(SELECT count(*) FROM obligations) AS obligations"
        )
        assert row is not None
        return dict(row)
