"""The state's tables, written once. Each backend renders them with its own column types
(`Types`); the columns, keys and indexes are the same everywhere, so the one store algorithm
(`gateway/state/store.py`) reads and writes both alike."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Types:
    """What a backend calls the column types the tables need."""

    serial: str  # a primary key the database can number (ids are also given by the store)
    bytes: str
    time: str  # when a row was written
    json: str
    decimal: str  # an amount, exactly as it came
    seq: str  # a column that numbers obligations in insertion order ('' if the table has one)
    insertion_order: str  # how obligations are listed in the order they were booked


SQLITE = Types(
    serial="INTEGER PRIMARY KEY AUTOINCREMENT",
    bytes="BLOB",
    time="TEXT",
    json="TEXT",
    decimal="TEXT",
    seq="",
    insertion_order="rowid",
)
POSTGRES = Types(
    serial="BIGSERIAL PRIMARY KEY",
    bytes="BYTEA",
    time="TIMESTAMPTZ",
    json="JSONB",
    decimal="NUMERIC",
    seq="seq BIGSERIAL,",
    insertion_order="seq",
)

_TABLES = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    results TEXT NOT NULL DEFAULT '',
    created_at {time} NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id {serial},
    topic TEXT NOT NULL,
    key {bytes} NOT NULL,
    value {bytes} NOT NULL,
    headers {json} NOT NULL,
    created_at {time} NOT NULL,
    sent_at {time}
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS obligations (
    {seq}
    reference TEXT PRIMARY KEY,
    payer TEXT NOT NULL,
    payee TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount {decimal} NOT NULL,
    units BIGINT NOT NULL,
    cycle TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    created_at {time} NOT NULL
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
    updated_at {time} NOT NULL
);
-- The lock of a currency's cycles: batches booking into it and closes take its row first.
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
    id {serial},
    status TEXT NOT NULL,
    payer TEXT NOT NULL,
    currency TEXT NOT NULL,
    units BIGINT NOT NULL,
    cap BIGINT NOT NULL,
    obligations TEXT NOT NULL,
    outbox TEXT NOT NULL,
    source TEXT NOT NULL,
    input {bytes} NOT NULL,
    created_at {time} NOT NULL
);
CREATE INDEX IF NOT EXISTS held_waiting ON held (currency, id)
    WHERE status IN ('queued', 'refusing');
-- Each held payment released: into which cycle, when, and by which offsetting run (the first
-- held id of the run; NULL: released by a credit or a new cycle, alone).
CREATE TABLE IF NOT EXISTS releases (
    held BIGINT PRIMARY KEY,
    cycle TEXT NOT NULL,
    run BIGINT,
    released_at {time} NOT NULL
);
CREATE INDEX IF NOT EXISTS releases_cycle ON releases (cycle);
-- Each offsetting run that released something: how many, their gross, the net change of
-- positions they made (gross - net: the liquidity it saved), in minor units.
CREATE TABLE IF NOT EXISTS offset_runs (
    run BIGINT PRIMARY KEY,
    cycle TEXT NOT NULL,
    payments INTEGER NOT NULL,
    gross BIGINT NOT NULL,
    net BIGINT NOT NULL,
    at {time} NOT NULL
);
-- A held payment's correlations: what its answers will need, once it is released (an answer
-- to a payment that has not reached the other side answers nothing).
CREATE TABLE IF NOT EXISTS held_correlations (
    held BIGINT NOT NULL,
    key TEXT NOT NULL,
    outbound_biz_msg_idr TEXT NOT NULL,
    outbound_msg_id TEXT NOT NULL,
    data {json} NOT NULL,
    PRIMARY KEY (held, key)
);
-- Every hold by its payment's correlation keys, kept after the hold ends (a status enquiry
-- asks about a payment refused or cancelled before it reached the other side).
CREATE TABLE IF NOT EXISTS held_keys (
    key TEXT NOT NULL,
    held BIGINT NOT NULL,
    PRIMARY KEY (key, held)
);
-- A cancellation request looks a held payment up by its key.
CREATE INDEX IF NOT EXISTS held_correlations_key ON held_correlations (key);
CREATE TABLE IF NOT EXISTS correlations (
    key TEXT PRIMARY KEY,
    outbound_biz_msg_idr TEXT NOT NULL,
    outbound_msg_id TEXT NOT NULL,
    data {json} NOT NULL
);
CREATE INDEX IF NOT EXISTS correlations_biz ON correlations (outbound_biz_msg_idr);
CREATE INDEX IF NOT EXISTS correlations_msg ON correlations (outbound_msg_id);
-- What a cycle emits once the RTGS confirms it (camt.054): queued in the outbox, in `seq`
-- order, by the transaction that records the settlement; dropped if the cycle fails.
CREATE TABLE IF NOT EXISTS cycle_notices (
    cycle TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    key {bytes} NOT NULL,
    value {bytes} NOT NULL,
    headers {json} NOT NULL,
    PRIMARY KEY (cycle, seq)
);
-- Every output about a payment or securities transaction (its correlation-id), by subject:
-- what `connect-gateway trace` reads, without scanning the outbox.
CREATE TABLE IF NOT EXISTS trail (
    subject TEXT NOT NULL,
    outbox BIGINT NOT NULL,
    PRIMARY KEY (subject, outbox)
);
-- Answers on the retry topics: later answers about the same payment from the same side wait
-- behind them, oldest (lowest id) first (gateway/ordering.py).
CREATE TABLE IF NOT EXISTS waiting (
    id {serial},
    key TEXT NOT NULL UNIQUE,
    side TEXT NOT NULL,
    correlation TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS waiting_correlation ON waiting (correlation);
"""


def schema(types: Types) -> str:
    """The tables as `types` names their columns."""
    return _TABLES.format(**asdict(types))
