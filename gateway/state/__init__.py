"""The state store: idempotency claims, the outbox, obligations and correlations.

One small interface (`StateStore`), two implementations: SQLite (embedded default, one
instance) and PostgreSQL (several instances sharing state). Everything a batch of input
records causes is written by one `commit_batch` call, in one transaction, and each record's
effects are applied only if its claim is new inside that transaction: a record that another
instance processed meanwhile (after a rebalance) has no second effect.
"""

from gateway.state.base import (
    ClaimState,
    Effects,
    OutboxRow,
    StateStore,
)

__all__ = ["ClaimState", "Effects", "OutboxRow", "StateStore"]
