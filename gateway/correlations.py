"""Correlations: what the gateway remembers of an accepted original so that the answers coming
back about it can be routed, authorised and applied; and the grammar of their keys, in one
place. The pipeline keeps them in the state store, written in the same transaction as the
outbox; a translation is handed the ones it may use (`Correlations`), never a shared attribute.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from gateway.canonical import SecuritiesAccount
from gateway.sides import Side

# The key grammar. A correlation's key names its original:
PAYMENT = "uetr:"  # a payment (pacs.008, pacs.009) by its UETR
SECURITIES = "sese:"  # a securities instruction by its TxId
CANCELLATION = "cxl:"  # a cancellation request by its payment's UETR
CYCLE = "cycle:"  # a cycle's settlement instruction: cycle:<cycle>[:<BIC>]


def payment_key(uetr: str) -> str:
    return f"{PAYMENT}{uetr}"


def securities_key(tx_id: str) -> str:
    return f"{SECURITIES}{tx_id}"


def cancellation_key(uetr: str) -> str:
    return f"{CANCELLATION}{uetr}"


def cycle_key(cycle: str, bic: str | None = None) -> str:
    return f"{CYCLE}{cycle}:{bic}" if bic else f"{CYCLE}{cycle}"


def keys_of(correlation: str) -> list[str]:
    """Every correlation key an answer's correlation value (a UETR, a TxId) may stand for."""
    return [payment_key(correlation), securities_key(correlation), cancellation_key(correlation)]


@dataclass(frozen=True)
class Correlation:
    """An accepted instruction, as the answers coming back about it will need it."""

    key: str  # payment_key(UETR), securities_key(TxId), cancellation_key(UETR), or a cycle's
    source: Side  # where the original came from (where answers go back to)
    sender_bic: str | None  # AppHdr Fr of the original
    biz_msg_idr: str | None  # AppHdr BizMsgIdr of the original
    msg_id: str  # GrpHdr MsgId of the original (sese.023: its TxId)
    msg_def: str
    created: str | None
    outbound_biz_msg_idr: str  # what the gateway sent to the other side
    outbound_msg_id: str
    owner_bic: str | None = None  # sese.023: the account owner and account behind the nominee
    owner_lei: str | None = None
    account: SecuritiesAccount | None = None
    outbound_created: str | None = None  # the CreDtTm the gateway gave what it sent
    # Who instructed the original and who received it (BICs): who may cancel it, and who may
    # answer it (gateway/authorisation.py). None in entries kept before they were recorded.
    instructing: str | None = None
    receiver: str | None = None
    # Read from beside a payment held for its cap (never forwarded yet): only a cancellation
    # request may see it (gateway/state/store.py, held_correlations).
    held: bool = False


def reference(entry: Correlation) -> str:
    """The obligation reference of a correlated original: its UETR, or sese:<TxId>."""
    return entry.key.removeprefix(PAYMENT)


class Correlations(Protocol):
    def remember(self, entry: Correlation) -> None: ...
    def find(self, key: str) -> Correlation | None: ...
    def find_outbound(self, biz_msg_idr_or_msg_id: str) -> Correlation | None: ...
    def find_held(self, key: str) -> Correlation | None: ...


class MemoryCorrelations:
    """In-process correlations: for the offline CLI and tests. The pipeline keeps its own in the
    state store, written in the same transaction as the outbox."""

    def __init__(self, known: Iterable[Correlation] = ()) -> None:
        self._by_key: dict[str, Correlation] = {}
        self._by_outbound: dict[str, Correlation] = {}
        self._held: dict[str, Correlation] = {}
        self.added: list[Correlation] = []
        for entry in known:
            self.remember(entry, new=False)

    def remember(self, entry: Correlation, new: bool = True) -> None:
        if entry.held:
            # Nothing answers a payment that never reached the other side: kept apart.
            self._held[entry.key] = entry
            return
        self._by_key[entry.key] = entry
        self._by_outbound[entry.outbound_biz_msg_idr] = entry
        self._by_outbound[entry.outbound_msg_id] = entry
        if new:
            self.added.append(entry)

    def find(self, key: str) -> Correlation | None:
        return self._by_key.get(key)

    def find_outbound(self, biz_msg_idr_or_msg_id: str) -> Correlation | None:
        return self._by_outbound.get(biz_msg_idr_or_msg_id)

    def find_held(self, key: str) -> Correlation | None:
        return self._held.get(key)


class NoCorrelations:
    """Knows nothing and learns nothing: for translating ahead of the state store, where
    an answer must not be correlated to an original whose fate this batch has not decided
    (a payment read just before it may yet be held or refused for its cap)."""

    def remember(self, entry: Correlation) -> None:
        pass

    def find(self, key: str) -> Correlation | None:
        return None

    def find_outbound(self, biz_msg_idr_or_msg_id: str) -> Correlation | None:
        return None

    def find_held(self, key: str) -> Correlation | None:
        return None


class LookUpOnly:
    """Correlations to look up in, never to add to."""

    def __init__(self, inner: Correlations) -> None:
        self.inner = inner

    def remember(self, entry: Correlation) -> None:
        pass

    def find(self, key: str) -> Correlation | None:
        return self.inner.find(key)

    def find_outbound(self, biz_msg_idr_or_msg_id: str) -> Correlation | None:
        return self.inner.find_outbound(biz_msg_idr_or_msg_id)

    def find_held(self, key: str) -> Correlation | None:
        return self.inner.find_held(key)


@dataclass(frozen=True)
class PaymentFacts:
    """What the store knows of one payment, for a status enquiry (gateway/flows/enquiries.py):
    which answers about it were applied (their claims), its obligation and cycle, its hold."""

    uetr: str
    statuses: tuple[str, ...] = ()  # the receiver's statuses applied (pacs.002 TxSts)
    resolutions: tuple[str, ...] = ()  # cancellation resolutions applied (camt.029 Sts/Conf)
    returned: bool = False  # a return (pacs.004) applied
    cycle: str | None = None  # the cycle its obligation is in
    obligation: str | None = None  # open | void
    cycle_status: str | None = None  # open | closing | instructed | settled | failed
    held: str | None = None  # queued | refusing | refused | cancelled | released
    payer: str | None = None  # a held payment's payer (its instructing participant)


@dataclass(frozen=True)
class OpenAccount:
    """A participant's account in one currency's open cycle, as the batches kept it."""

    currency: str
    cycle: str
    position: int  # minor units: received - paid
    received: tuple[int, int]  # (count, minor units) of the obligations it received
    paid: tuple[int, int]
    held: tuple[tuple[str, int], ...]  # its queued payments: (UETR or TxId, minor units), in order


@dataclass(frozen=True)
class ClosedCycle:
    id: str
    status: str
    summary: str | None  # the close's report (JSON): each participant's totals and position
    opened: str | None
    cut_off: str | None
    instruction: str | None


@dataclass(frozen=True)
class AccountFacts:
    """What the store knows of a participant's account, for a report request (camt.060)."""

    participant: str
    open: tuple[OpenAccount, ...] = ()  # per currency with an open cycle
    closed: ClosedCycle | None = None  # the cycle the request names, if it exists


Facts = PaymentFacts | AccountFacts
