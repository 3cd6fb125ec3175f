"""The small interface between the one store algorithm and a database backend.

The algorithm (`gateway/state/store.py`) is written once, as coroutines over a `Tx`: one
connection, inside one transaction when it writes. A backend keeps only what really differs
between databases: how a transaction starts and runs (a thread for SQLite, a pool for
PostgreSQL), the claim race, head locks, id allocation, and the relay's row locks.

SQL given to a `Tx` uses `?` for parameters and `{in}` for "is in this list" (a backend
writes `IN (?, ...)` or `= ANY($1)`); everything else is SQL both databases speak.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from gateway.state.base import OutboxRow

T = TypeVar("T")
Row = tuple[Any, ...]


class Tx(Protocol):
    """One connection, as the store algorithm uses it."""

    @property
    def now(self) -> object:
        """This transaction's time, as the backend stores a row's time."""
        ...

    @property
    def insertion_order(self) -> str:
        """The expression that lists obligations in the order they were booked."""
        ...

    async def fetch(self, sql: str, *args: object, lock: str = "") -> list[Row]:
        """Rows of `sql`. `lock`: a row-lock clause (FOR UPDATE ...) the backend adds where
        rows can be locked; SQLite's write transaction holds the whole database already."""
        ...

    async def fetch_in(self, sql: str, values: Sequence[object], lock: str = "") -> list[Row]:
        """Rows of `sql`, whose every `{in}` is the list `values` (its only parameters)."""
        ...

    async def execute(self, sql: str, *args: object) -> int:
        """The number of rows `sql` changed."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None: ...

    def chunks(self, sql: str, *args: object) -> AsyncIterator[list[Row]]:
        """The rows of a large query, streamed in chunks."""
        ...

    async def claim(self, claims: Sequence[tuple[str, str]]) -> set[str]:
        """Insert (key, fingerprint) claims that do not exist yet; the keys this transaction
        won. A key claimed meanwhile by another transaction is not won, however the race ends."""
        ...

    async def next_ids(self, table: str, count: int) -> list[int]:
        """`count` new ids of `table` (outbox, held), ascending: id order is publication, or
        queue, order."""
        ...


Work = Callable[[Tx], Coroutine[Any, Any, T]]


class Backend(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def run(self, work: Work[T], write: bool) -> T:
        """`work` on one connection: in one write transaction when `write` (committed if it
        returns, rolled back if it raises), else as a read."""
        ...

    async def relay(self, limit: int, publish: Callable[[list[OutboxRow]], Awaitable[None]]) -> int:
        """Hand up to `limit` unsent rows, oldest first, to `publish`, then mark them sent;
        rows another instance is relaying are left to it."""
        ...

    def is_transient(self, exc: BaseException) -> bool: ...
