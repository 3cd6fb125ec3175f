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

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

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
    units BIGINT NOT NULL,
    cycle TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    created_at TIMESTAMPTZ NOT NULL
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
    lease_until DOUBLE PRECISION,
    instruction_id TEXT,
    summary TEXT,
    reason TEXT,
    awaiting TEXT,
    updated_at TIMESTAMPTZ NOT NULL
);
-- The lock of a currency's cycles: batches booking into it and closes take it FOR UPDATE.
CREATE TABLE IF NOT EXISTS cycle_heads (
    currency TEXT PRIMARY KEY,
    cycle TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    cycle TEXT NOT NULL,
    participant TEXT NOT NULL,
    units BIGINT NOT NULL,
    PRIMARY KEY (cycle, participant)
);
CREATE TABLE IF NOT EXISTS held (
    id BIGSERIAL PRIMARY KEY,
    status TEXT NOT NULL,
    payer TEXT NOT NULL,
    currency TEXT NOT NULL,
    units BIGINT NOT NULL,
    cap BIGINT NOT NULL,
    obligations TEXT NOT NULL,
    outbox TEXT NOT NULL,
    source TEXT NOT NULL,
    input BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS held_waiting ON held (currency, id)
    WHERE status IN ('queued', 'refusing');
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

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

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

    async def commit_batch(self, batch: list[Effects], rules: Rules | None = None) -> list[bool]:
        now = datetime.now(UTC)
        rules = rules or Rules(datetime.now(UTC8))
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
                await self._apply(conn, chosen, now, rules)
        return applied

    async def _apply(
        self, conn: asyncpg.Connection, batch: list[Effects], now: datetime, rules: Rules
    ) -> None:
        """The effects of the records whose claim this transaction won."""
        # The obligations the batch books or voids, as stored (Ledger.known).
        known: dict[str, Recorded] = {}
        refs = references_touched(batch)
        if refs:
            for r in await conn.fetch(
                "SELECT reference, payer, payee, currency, amount::text AS amount, units, "
                "cycle, status FROM obligations WHERE reference = ANY($1::text[])",
                refs,
            ):
                o = obligation_from_row(
                    r["reference"], r["payer"], r["payee"], r["currency"], r["amount"]
                )
                known[o.reference] = Recorded(o, r["units"], r["cycle"], r["status"])
        currencies, unknown_voids = currencies_touched(batch, known)
        if unknown_voids:
            currencies.update(
                r["currency"]
                for r in await conn.fetch(
                    "SELECT DISTINCT currency FROM held WHERE status = 'queued'"
                )
            )
        ledger = await _ledger_for(conn, currencies, rules)
        ledger.known = known
        capped = sum(1 for e in batch if e.cap is not None)
        held_ids = await _next_ids(conn, "held", capped)
        plan = plan_batch(batch, ledger, iter(held_ids))
        ids = await _next_ids(conn, "outbox", len(plan.outbox))
        outbox = [
            (i, row.topic, row.key, row.value, headers_to_json(row.headers), now)
            for i, row in zip(ids, plan.outbox, strict=True)
        ]
        if outbox:
            await conn.executemany(
                "INSERT INTO outbox (id, topic, key, value, headers, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                outbox,
            )
        results = {key: [ids[i] for i in idx] for key, idx in plan.results.items()}
        by_claim: dict[str, list[int]] = {}  # answers of the records before this one
        for e in batch:
            # A resend may name its original by any of the original's claims.
            by_claim.update((key, results[e.claims[0][0]]) for key, _ in e.claims)
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
        refused = {h.effects.claims[0][0] for h in plan.held if h.status == "refusing"}
        await _insert_correlations(
            conn, [c for e in batch if e.claims[0][0] not in refused for c in e.correlations]
        )
        if plan.held:
            await conn.executemany(
                "INSERT INTO held (id, status, payer, currency, units, cap, obligations, outbox,"
                " source, input, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                [h.row(now) for h in plan.held],
            )
        await _write_ledger(conn, ledger, now)
        for cycle, status, reason, instruction in (o for e in batch for o in e.cycle_outcomes):
            await _cycle_outcome(conn, cycle, status, reason, instruction, now)

    # -- settlement cycles ---------------------------------------------------------------------
    async def cycles(
        self, currency: str | None = None, status: str | None = None
    ) -> list[CycleRecord]:
        rows = await self.pool.fetch(
            f"SELECT {_CYCLE_COLUMNS} FROM cycles WHERE ($1::text IS NULL OR currency = $1) "
            "AND ($2::text IS NULL OR status = $2) ORDER BY currency, seq",
            currency,
            status,
        )
        return [CycleRecord(*r) for r in rows]

    async def freeze(self, currency: str, rules: Rules, cycle: str | None = None) -> str | None:
        async with self.pool.acquire() as conn, conn.transaction():
            heads = await _locked_heads(conn, [currency])
            if currency not in heads or cycle not in (None, heads[currency].cycle):
                return None  # none yet, or rolled meanwhile (by a batch past its cut-off)
            ledger = Ledger(heads, {}, {}, rules)
            rolled = ledger.roll_now(currency)
            await _write_ledger(conn, ledger, datetime.now(UTC))
            return rolled.frozen if rolled else None

    async def take_close(self, cycle: str, owner: str, lease_seconds: float) -> bool:
        now = time.time()
        done = await self.pool.execute(
            "UPDATE cycles SET closer = $2, lease_until = $3 WHERE id = $1 AND "
            "status = 'closing' AND (closer IS NULL OR closer = $2 OR lease_until < $4)",
            cycle,
            owner,
            now + lease_seconds,
            now,
        )
        return bool(done == "UPDATE 1")

    async def net_cycle(self, cycle: str, currency: str) -> Netting:
        netter = Netter(currency, bilateral=True)
        async with self.pool.acquire() as conn, conn.transaction():
            cursor = await conn.cursor(
                "SELECT payer, payee, units FROM obligations WHERE cycle = $1 AND status != 'void'",
                cycle,
            )
            while rows := await cursor.fetch(50_000):
                netter.add((r[0], r[1], r[2]) for r in rows)
        return netter.result()

    async def positions(self, cycle: str) -> dict[str, int]:
        rows = await self.pool.fetch(
            "SELECT participant, units FROM positions WHERE cycle = $1 AND units != 0", cycle
        )
        return {r["participant"]: r["units"] for r in rows}

    async def participant_totals(self, cycle: str) -> dict[str, tuple[int, int, int, int]]:
        rows = await self.pool.fetch(
            "SELECT payee, count(*), sum(units), 0, 0 FROM obligations "
            "WHERE cycle = $1 AND status != 'void' GROUP BY payee UNION ALL "
            "SELECT payer, 0, 0, count(*), sum(units) FROM obligations "
            "WHERE cycle = $1 AND status != 'void' GROUP BY payer",
            cycle,
        )
        return participant_totals(tuple(r) for r in rows)

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
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.execute(
                "UPDATE cycles SET status = $2, summary = $3, instruction_id = $4, awaiting = $5,"
                " closer = NULL, lease_until = NULL, updated_at = $6 "
                "WHERE id = $1 AND status = 'closing' AND closer = $7",
                cycle,
                status,
                summary,
                instruction_id,
                json.dumps(awaiting),
                now,
                owner,
            )
            if done != "UPDATE 1":
                return False  # another instance finished it (our lease ran out)
            await _insert_outbox(conn, outbox, now)
            await _insert_correlations(conn, correlations)
            return True

    async def release_held(self, currency: str, rules: Rules) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            waiting = await conn.fetchval(
                "SELECT 1 FROM held WHERE status = 'queued' AND currency = $1 LIMIT 1", currency
            )
            if not waiting:
                return 0
            ledger = await _ledger_for(conn, {currency}, rules)
            ledger.release_all(currency)
            plan = Plan()
            release(plan, ledger, 0)
            now = datetime.now(UTC)
            await _insert_outbox(conn, plan.outbox, now)
            await _write_ledger(conn, ledger, now)
            return len(plan.released)

    async def refusals(self) -> list[HeldPayment]:
        return await self.held("refusing")

    async def finish_refusal(self, held_id: int, outbox: list[OutboxRow]) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.execute(
                "UPDATE held SET status = 'refused' WHERE id = $1 AND status = 'refusing'",
                held_id,
            )
            if done != "UPDATE 1":
                return False
            await _insert_outbox(conn, outbox, datetime.now(UTC))
            return True

    async def held(self, status: str | None = None) -> list[HeldPayment]:
        rows = await self.pool.fetch(
            "SELECT id, source, input, payer, status FROM held "
            "WHERE $1::text IS NULL OR status = $1 ORDER BY id",
            status,
        )
        return [HeldPayment(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows]

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


_CYCLE_COLUMNS = (
    "id, currency, seq, status, opened_at, due_at, cut_off, instruction_id, summary, reason"
)


async def _next_ids(conn: asyncpg.Connection, table: str, count: int) -> list[int]:
    if not count:
        return []
    rows = await conn.fetch(
        f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, $1)",
        count,
    )
    return sorted(r[0] for r in rows)  # id order is publication (or queue) order


async def _locked_heads(conn: asyncpg.Connection, currencies: list[str]) -> dict[str, Head]:
    """The open cycles of `currencies`, locked until the transaction ends: a batch's cap
    checks and a close's freeze see one position at a time. Locked in currency order, so two
    batches never wait for each other in a circle."""
    rows = await conn.fetch(
        "SELECT h.currency, c.id, c.seq, c.opened_at, c.due_at FROM cycle_heads h "
        "JOIN cycles c ON c.id = h.cycle WHERE h.currency = ANY($1::text[]) "
        "ORDER BY h.currency FOR UPDATE OF h",
        currencies,
    )
    return {
        r["currency"]: Head(
            r["currency"], r["id"], r["seq"], parse_time(r["opened_at"]), parse_time(r["due_at"])
        )
        for r in rows
    }


async def _ledger_for(conn: asyncpg.Connection, currencies: set[str], rules: Rules) -> Ledger:
    if not currencies:
        return Ledger({}, {}, {}, rules)
    wanted = sorted(currencies)
    heads = await _locked_heads(conn, wanted)
    missing = [c for c in wanted if c not in heads]
    if missing:
        # First cycle of a currency. Two instances may race here: the loser's inserts wait for
        # the winner's and do nothing, and the lock below then gives it the winner's head.
        now = datetime.now(UTC)
        for currency in missing:
            head = Head(currency, cycle_id(currency, 1), 1, None, rules.next_cut_off(rules.now))
            await _open_cycle(conn, head, now, replace=False)
        heads = await _locked_heads(conn, wanted)
    cycles = [h.cycle for h in heads.values()]
    positions = {
        (r["cycle"], r["participant"]): r["units"]
        for r in await conn.fetch(
            "SELECT cycle, participant, units FROM positions WHERE cycle = ANY($1::text[])",
            cycles,
        )
    }
    queues: dict[tuple[str, str], deque[QueuedPayment]] = {}
    for r in await conn.fetch(
        "SELECT id, payer, currency, units, cap, obligations, outbox FROM held "
        "WHERE status = 'queued' AND currency = ANY($1::text[]) ORDER BY id",
        wanted,
    ):
        queues.setdefault((r["payer"], r["currency"]), deque()).append(
            QueuedPayment(
                r["id"],
                r["payer"],
                r["currency"],
                r["units"],
                r["cap"],
                obligations_from_json(r["obligations"]),
                outbox_from_json(r["outbox"]),
            )
        )
    return Ledger(heads, positions, queues, rules)


async def _open_cycle(
    conn: asyncpg.Connection, head: Head, now: datetime, replace: bool = True
) -> None:
    await conn.execute(
        "INSERT INTO cycles (id, currency, seq, status, opened_at, due_at, updated_at) "
        "VALUES ($1, $2, $3, 'open', $4, $5, $6) ON CONFLICT DO NOTHING",
        head.cycle,
        head.currency,
        head.seq,
        iso_utc8(head.opened_at),
        iso_utc8(head.due_at),
        now,
    )
    await conn.execute(
        "INSERT INTO cycle_heads (currency, cycle) VALUES ($1, $2) ON CONFLICT (currency) "
        + ("DO UPDATE SET cycle = EXCLUDED.cycle" if replace else "DO NOTHING"),
        head.currency,
        head.cycle,
    )


async def _write_ledger(conn: asyncpg.Connection, ledger: Ledger, now: datetime) -> None:
    for rolled in ledger.rolled:
        await conn.execute(
            "UPDATE cycles SET status = 'closing', cut_off = $2, updated_at = $3 "
            "WHERE id = $1 AND status = 'open'",
            rolled.frozen,
            iso_utc8(rolled.cut_off),
            now,
        )
        await _open_cycle(conn, rolled.opened, now)
    for head in ledger.created:
        await _open_cycle(conn, head, now, replace=False)
    if ledger.booked:
        await conn.executemany(
            "INSERT INTO obligations (reference, payer, payee, currency, amount, units, cycle,"
            " created_at) VALUES ($1, $2, $3, $4, $5::numeric, $6, $7, $8)"
            " ON CONFLICT DO NOTHING",
            [(*obligation_row(b.obligation), b.units, b.cycle, now) for b in ledger.booked],
        )
    if ledger.voided:
        await conn.execute(
            "UPDATE obligations SET status = 'void' WHERE reference = ANY($1::text[])",
            ledger.voided,
        )
    if ledger.reversed:
        await conn.execute(
            "UPDATE obligations SET status = 'reversed' WHERE reference = ANY($1::text[])",
            ledger.reversed,
        )
    if ledger.deltas:
        await conn.executemany(
            "INSERT INTO positions (cycle, participant, units) VALUES ($1, $2, $3) "
            "ON CONFLICT (cycle, participant) DO UPDATE SET units = positions.units + $3",
            [(c, p, u) for (c, p), u in ledger.deltas.items()],
        )
    if ledger.released:
        await conn.execute(
            "UPDATE held SET status = 'released' WHERE id = ANY($1::bigint[])",
            [item.id for item in ledger.released],
        )
    if ledger.cancelled:
        await conn.execute(
            "UPDATE held SET status = 'cancelled' WHERE id = ANY($1::bigint[])",
            ledger.cancelled,
        )


async def _cycle_outcome(
    conn: asyncpg.Connection, cycle: str, status: str, reason: str, instruction: str, now: datetime
) -> None:
    """The RTGS's answer to one of a cycle's instructions (only while it is instructed)."""
    awaiting = await conn.fetchval(
        "SELECT awaiting FROM cycles WHERE id = $1 AND status = 'instructed' FOR UPDATE", cycle
    )
    if awaiting is None:
        return  # settled or failed already: a late or repeated answer changes nothing
    new_status, left = cycle_after(awaiting, status, instruction)
    await conn.execute(
        "UPDATE cycles SET status = $2, reason = $3, awaiting = $4, updated_at = $5 WHERE id = $1",
        cycle,
        new_status,
        reason,
        left,
        now,
    )


async def _insert_outbox(conn: asyncpg.Connection, rows: list[OutboxRow], now: datetime) -> None:
    if rows:
        await conn.executemany(
            "INSERT INTO outbox (topic, key, value, headers, created_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            [(r.topic, r.key, r.value, headers_to_json(r.headers), now) for r in rows],
        )


async def _insert_correlations(conn: asyncpg.Connection, entries: list[Correlation]) -> None:
    if entries:
        await conn.executemany(
            "INSERT INTO correlations (key, outbound_biz_msg_idr, outbound_msg_id, data) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE SET "
            "outbound_biz_msg_idr = EXCLUDED.outbound_biz_msg_idr, "
            "outbound_msg_id = EXCLUDED.outbound_msg_id, data = EXCLUDED.data",
            [
                (c.key, c.outbound_biz_msg_idr, c.outbound_msg_id, correlation_to_json(c))
                for c in entries
            ],
        )
