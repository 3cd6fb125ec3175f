"""Types and the interface every state store implements."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from gateway.canonical import Money, Obligation, SecuritiesAccount
from gateway.clock import UTC8
from gateway.correlations import Correlation, Facts
from gateway.ordering import Waiting
from gateway.settlement.ledger import Rules
from gateway.settlement.liquidity import Queued
from gateway.settlement.netting import Netting
from gateway.settlement.report import Saving
from gateway.settlement.statuses import (
    CycleStatus,
    HeldStatus,
    RecordOutcome,
    SettlementAnswer,
)


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
    # A capped payment: its payer's net debit cap (cap currency). Held or refused inside the
    # transaction when the open cycle's position leaves no room (gateway.settlement.ledger).
    cap: Decimal | None = None
    # What a refusal for the cap must answer: the source side and the input record.
    source: str = ""
    value: bytes = b""
    # What the pipeline decided (translated, rejected, retry, resend, answered; a request
    # read while its payment was held: cancelled or translated, set by the batch's plan) and
    # the reject's reason code: for metrics and events only.
    outcome: RecordOutcome = RecordOutcome.TRANSLATED
    reason: str = ""
    detail: str = ""  # a reject's reason in words, for its log line
    # Answers to the gateway's own settlement instructions.
    cycle_outcomes: list[SettlementAnswer] = field(default_factory=list)
    # Voided only while still in their open cycle (a cancellation accepted by the other side).
    voids_open: list[str] = field(default_factory=list)
    # A cancellation request for a payment held when it was read: if the payment is still
    # held in this batch's transaction, it is cancelled, `held_outbox` (the gateway's camt.029
    # CNCL) is published instead of `outbox`, and `correlations` are not kept (nothing will
    # answer a request that was never forwarded). Else the request is forwarded as usual.
    cancel_held: str | None = None
    held_outbox: list[OutboxRow] = field(default_factory=list)
    # An answer sent to the retry topics: later answers about its payment wait behind it
    # (gateway/ordering.py). `unwait`: this record had such a marker and is now decided.
    wait: Waiting | None = None
    unwait: bool = False


@dataclass(frozen=True)
class CycleRecord:
    """A settlement cycle as the store keeps it. Times are ISO 8601 in UTC+8."""

    id: str
    currency: str
    seq: int
    status: CycleStatus
    opened_at: str | None
    due_at: str | None  # the scheduled cut-off recorded when it opened
    cut_off: str | None  # the cut-off it was frozen at
    instruction_id: str | None  # the settlement instruction's MsgId
    summary: str | None  # JSON: the netting's figures and positions
    reason: str | None  # why it failed, or the last status the RTGS gave


@dataclass(frozen=True)
class HeldPayment:
    """A capped payment held back, as the store gives it out (to refuse it)."""

    id: int
    source: str
    value: bytes
    payer: str
    status: HeldStatus


@dataclass(frozen=True)
class Backlog:
    """What the operations watch in the store (all instances' work)."""

    queues: dict[tuple[str, str], tuple[int, int]]  # (currency, payer) -> (payments, units)
    unsent: int  # outbox rows not yet published
    offset_runs: int  # offsetting runs that released payments, since the store began
    offset_released: int  # the payments they released
    offset_saved: int  # gross released minus the net change of positions (minor units)


@dataclass(frozen=True)
class Traced:
    """What the store holds about one payment or securities transaction (`trace`): every
    output about it, its obligations, its time held, its cycles, its answers still waiting.
    Times as the store wrote them (ISO 8601)."""

    subject: str  # a UETR or a TxId
    outputs: tuple[tuple[int, str, str, dict[str, str], str, str | None], ...]
    # (outbox id, topic, key, headers, written, sent)
    obligations: tuple[tuple[str, str, str, str, str, str, str], ...]
    # (reference, payer, payee, amount with currency, cycle, status, booked)
    held: tuple[tuple[int, str, str, str], ...]  # (id, payer, status, since)
    cycles: tuple[tuple[str, str, str, str | None, str | None], ...]
    # (id, status, updated, cut-off, the RTGS's last status)
    waiting: tuple[tuple[str, str], ...]  # (answer's key, its side) on the retry topics


class ClaimsStore(Protocol):
    """Idempotency claims, the outbox and what a batch books: the pipeline's side."""

    async def claims(self, keys: list[str]) -> dict[str, ClaimState]:
        """The known claims among `keys`."""
        ...

    async def correlations(self, refs: list[str]) -> list[Correlation]:
        """Correlations by key ("uetr:...", "sese:...") or by the gateway's outbound ids."""
        ...

    async def waiting(self, correlations: list[str] | None = None) -> list[Waiting]:
        """The answers on the retry topics about `correlations` (None: all), that later
        answers about the same payment from the same side wait behind (gateway/ordering.py)."""
        ...

    async def commit_batch(self, batch: list[Effects], rules: Rules | None = None) -> list[bool]:
        """Apply the batch in one transaction; per record, whether its effects were applied.
        `rules`: the clock and policies its obligations are booked by (default: now, no
        scheduled cut-off, CNY caps queued)."""
        ...

    async def relay(self, limit: int, publish: Callable[[list[OutboxRow]], Awaitable[None]]) -> int:
        """Hand up to `limit` unsent rows, oldest first, to `publish`; once it returns, mark
        them sent. Rows being relayed by another instance are left to it. The number relayed."""
        ...

    async def counts(self) -> dict[str, int]:
        """claims, unsent outbox rows, obligations: for health checks and tests."""
        ...

    async def obligations(self, status: str | None = None) -> list[tuple[Obligation, str]]:
        """(obligation, status) for every recorded obligation: open, void or reversed."""
        ...


class CycleStore(Protocol):
    """Settlement cycles: frozen, closed once under a lease, answered by the RTGS."""

    async def cycles(
        self, currency: str | None = None, status: str | None = None
    ) -> list[CycleRecord]:
        """The cycles (of a currency, in a status, when given), oldest first."""
        ...

    async def freeze(self, currency: str, rules: Rules, cycle: str | None = None) -> str | None:
        """Freeze the open cycle of `currency` (only if it is `cycle`, when given): at its
        recorded cut-off if that has passed, else at rules.now (an operator's close); the next
        cycle opened. The frozen cycle's id, or None."""
        ...

    async def take_close(self, cycle: str, owner: str, lease_seconds: float) -> bool:
        """Hold the close of a frozen cycle (the lock in the store): free, expired, or ours."""
        ...

    async def net_cycle(self, cycle: str, currency: str) -> Netting:
        """The cycle's live obligations netted (streamed from the store, with the bilateral
        view)."""
        ...

    async def positions(self, cycle: str) -> dict[str, int]:
        """The running positions the batches kept for the cycle (minor units)."""
        ...

    async def facts(self, asks: list[str]) -> dict[str, Facts]:
        """What the store knows of what requests that read state ask about: a payment
        ("payment:<UETR>", for a status enquiry), an account ("account:<BIC>:<cycle>", for a
        report request)."""
        ...

    async def trace(self, subject: str) -> Traced:
        """Everything the store holds about a payment (UETR) or securities transaction."""
        ...

    async def cycle_obligations(self, cycle: str) -> list[Obligation]:
        """The cycle's live (not voided) obligations, in the order they were booked."""
        ...

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
        on_settled: list[OutboxRow] | None = None,
    ) -> bool:
        """Record a frozen cycle's close and queue what it emits, once: only while `owner`
        holds the close. `awaiting`: the MsgIds of the instructions the RTGS must confirm
        before the cycle is settled. `on_settled`: what is queued, in order, in the
        transaction that records the RTGS's confirmation (dropped if the cycle fails).
        Whether it was recorded."""
        ...


class HeldStore(Protocol):
    """Capped payments held back: released in order, or refused once."""

    async def release_held(self, currency: str, rules: Rules) -> int:
        """Release held payments into the open cycle while they fit (after a cycle opens)."""
        ...

    async def refusals(self) -> list[HeldPayment]:
        """Payments refused for their cap whose reject is not queued yet."""
        ...

    async def finish_refusal(self, held_id: int, outbox: list[OutboxRow]) -> bool:
        """Queue the reject of a payment refused for its cap, once."""
        ...

    async def held(self, status: str | None = None) -> list[HeldPayment]:
        """Held payments, oldest first."""
        ...

    async def backlog(self) -> Backlog:
        """What the operations watch: the held queues, the relay's backlog, what offsetting
        did (one read, every few seconds; never a count of the claims)."""
        ...

    async def liquidity(self, cycle: str) -> Saving:
        """What held payments did in `cycle` (its report's liquidity figures)."""
        ...

    async def queued(self, currency: str) -> tuple[str | None, dict[str, int], list[Queued]]:
        """The open cycle of `currency`, its positions, and every payment queued for its
        payer's cap, oldest first (connect-gateway liquidity)."""
        ...


class StateStore(ClaimsStore, CycleStore, HeldStore, Protocol):
    """The whole store (gateway/state/store.py over a backend)."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raises if the store cannot answer (readiness)."""
        ...

    def is_transient(self, exc: BaseException) -> bool:
        """Whether a fault of this store is worth retrying (busy, restarting, failing over)."""
        ...


def headers_to_json(headers: tuple[tuple[str, bytes], ...]) -> str:
    # Header values are tokens the gateway writes (keys, ids, topic names, error text), kept as
    # text so an operator can read them in a database session.
    return json.dumps([[k, v.decode("utf-8", "surrogateescape")] for k, v in headers])


def headers_from_json(text: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, v.encode("utf-8", "surrogateescape")) for k, v in json.loads(text))


_CORRELATION_FIELDS = tuple(f.name for f in fields(Correlation))


def correlation_to_json(entry: Correlation) -> str:
    # asdict() deep-copies every value; one row per payment makes that show in a profile.
    raw = {name: getattr(entry, name) for name in _CORRELATION_FIELDS}
    if entry.account is not None:
        raw["account"] = asdict(entry.account)
    return json.dumps(raw, sort_keys=True)


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


def outbox_to_json(rows: Iterable[OutboxRow]) -> str:
    return json.dumps(
        [
            [
                r.topic,
                base64.b64encode(r.key).decode(),
                base64.b64encode(r.value).decode(),
                headers_to_json(r.headers),
            ]
            for r in rows
        ]
    )


def outbox_from_json(text: str) -> tuple[OutboxRow, ...]:
    return tuple(
        OutboxRow(t, base64.b64decode(k), base64.b64decode(v), headers_from_json(h))
        for t, k, v, h in json.loads(text)
    )


def obligations_to_json(obligations: Iterable[Obligation]) -> str:
    return json.dumps([obligation_row(o) for o in obligations])


def obligations_from_json(text: str) -> tuple[Obligation, ...]:
    return tuple(obligation_from_row(*row) for row in json.loads(text))


def cycle_after(awaiting: str | None, status: str, instruction: str) -> tuple[str, str]:
    """An instructed cycle after the RTGS answered one of its instructions: (status, the
    instructions still awaited, JSON). Settled once all are confirmed; failed on any
    rejection; an interim status changes nothing."""
    pending = [a for a in json.loads(awaiting or "[]") if a != instruction]
    if status == CycleStatus.FAILED:
        return CycleStatus.FAILED, json.dumps(pending)
    if status == CycleStatus.SETTLED:
        return (CycleStatus.INSTRUCTED if pending else CycleStatus.SETTLED), json.dumps(pending)
    return CycleStatus.INSTRUCTED, awaiting or "[]"


def iso_utc8(moment: datetime | None) -> str | None:
    """How the stores keep cycle times: ISO 8601 in UTC+8."""
    return moment.astimezone(UTC8).isoformat() if moment is not None else None


def parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
