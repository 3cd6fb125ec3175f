"""The state store: idempotency claims, the outbox, obligations and correlations.

One interface (`StateStore`: claims and the outbox, cycles, held payments), one algorithm
(`store.py`) over two thin backends: SQLite (embedded default, one instance) and PostgreSQL
(several instances sharing state). Everything a batch of input
records causes is written by one `commit_batch` call, in one transaction, and each record's
effects are applied only if its claim is new inside that transaction: a record that another
instance processed meanwhile (after a rebalance) has no second effect.
"""

from pathlib import Path

from gateway.config import StateSection
from gateway.state.base import (
    ClaimState,
    Effects,
    OutboxRow,
    StateStore,
)


def store_for(state: StateSection) -> StateStore:
    """The store the configuration names (not yet opened)."""
    if state.backend == "postgres":
        from gateway.state.postgres import PostgresStore  # asyncpg only when it is used

        return PostgresStore(state.postgres_dsn, state.postgres_pool_size)
    from gateway.state.sqlite import SqliteStore

    return SqliteStore(Path(state.sqlite_path))


__all__ = ["ClaimState", "Effects", "OutboxRow", "StateStore", "store_for"]
