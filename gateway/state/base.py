"""Types and the interface every state store implements."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Protocol

from gateway.canonical import Money, Obligation, SecuritiesAccount
from gateway.translation import Correlation


@dataclass(frozen=True)
class OutboxRow:
    """A record to publish: where, with which key and headers. `id` once stored."""

    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    id: int | None = None


@dataclass(frozen=True)
class ClaimState:
    """What the store knows of an idempotency key."""

    key: str
    fingerprint: str
    results: tuple[int, ...]  # outbox ids of what answered it


@dataclass
class Effects:
    """Everything one input record causes, applied all or nothing."""

    claims: list[tuple[str, str]]  # (idempotency key, fingerprint): first one is the record's
    outbox: list[OutboxRow] = field(default_factory=list)
    obligations: list[Obligation] = field(default_factory=list)
    voids: list[str] = field(default_factory=list)  # obligation references voided
    correlations: list[Correlation] = field(default_factory=list)
    # A PssblDplct resend: publish again what answered this claim. Resolved inside the
    # transaction, so it also works when the original is earlier in the same batch.
    replay_key: str | None = None


class StateStore(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def claims(self, keys: list[str]) -> dict[str, ClaimState]:
        """The known claims among `keys`."""
        ...

    async def correlations(self, refs: list[str]) -> list[Correlation]:
        """Correlations by key ("uetr:...", "sese:...") or by the gateway's outbound ids."""
        ...

    async def commit_batch(self, batch: list[Effects]) -> list[bool]:
        """Apply the batch in one transaction; per record, whether its effects were applied."""
        ...

    async def relay(self, limit: int, publish: Callable[[list[OutboxRow]], Awaitable[None]]) -> int:
        """Hand up to `limit` unsent rows, oldest first, to `publish`; once it returns, mark
        them sent. Rows being relayed by another instance are left to it. The number relayed."""
        ...

    async def outbox_rows(self, ids: list[int]) -> list[OutboxRow]: ...

    def is_transient(self, exc: BaseException) -> bool:
        """Whether a fault of this store is worth retrying (busy, restarting, failing over)."""
        ...

    async def counts(self) -> dict[str, int]:
        """claims, unsent outbox rows, obligations: for health checks and tests."""
        ...

    async def obligations(self, status: str | None = None) -> list[tuple[Obligation, str]]:
        """(obligation, status) for every recorded obligation: status 'open' or 'void'."""
        ...


def headers_to_json(headers: tuple[tuple[str, bytes], ...]) -> str:
    # Header values are tokens the gateway writes (keys, ids, topic names, error text), kept as
    # text so an operator can read them in a database session.
    return json.dumps([[k, v.decode("utf-8", "surrogateescape")] for k, v in headers])


def headers_from_json(text: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, v.encode("utf-8", "surrogateescape")) for k, v in json.loads(text))


def correlation_to_json(entry: Correlation) -> str:
    return json.dumps(asdict(entry), sort_keys=True)


def correlation_from_json(text: str) -> Correlation:
    raw = json.loads(text)
    account = raw.get("account")
    raw["account"] = SecuritiesAccount(**account) if account else None
    return Correlation(**raw)


def obligation_row(o: Obligation) -> tuple[str, str, str, str, str]:
    return (o.reference, o.payer, o.payee, o.amount.currency, str(o.amount.amount))


def obligation_from_row(
    reference: str, payer: str, payee: str, currency: str, amount: str
) -> Obligation:
    return Obligation(payer, payee, Money(Decimal(amount), currency), reference)
