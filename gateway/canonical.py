"""The canonical model: what a message means, independent of either dialect.

Adapters decode their dialect into these types and encode them back; translation is
`source.decode -> checks -> target.encode`. Participants are identified by BIC only: clearing
member ids (CNAPS, HKNCC) are dialect detail, re-derived from the directory on encoding.
Amounts are Decimal, dates are ISO strings as received (both sides use ISO 8601 with offsets),
so nothing is re-formatted on the way through.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class Agent:
    """A financial institution: a participant, depository or system, by BIC."""

    bic: str
    lei: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Address:
    town: str | None = None
    country: str | None = None
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Customer:
    name: str
    address: Address | None = None
    bic: str | None = None
    lei: str | None = None
    country_of_residence: str | None = None


@dataclass(frozen=True)
class Account:
    id: str
    currency: str | None = None


@dataclass(frozen=True)
class Supplementary:
    """A SplmtryData block, kept as XML so nothing the sender put there is lost."""

    place: str | None
    xml: bytes  # the one element inside Envlp, serialised


@dataclass(frozen=True)
class Header:
    """What the gateway needs of an inbound AppHdr."""

    sender: str
    biz_msg_idr: str
    msg_def: str
    created: str
    possible_duplicate: bool = False
    biz_svc: str | None = None
    receiver: str | None = None


@dataclass(frozen=True)
class Payment:
    """pacs.008 (customer) or pacs.009 (institution) credit transfer, one transaction."""

    kind: Literal["customer", "institution"]
    msg_id: str
    created: str
    settlement_method: str
    end_to_end_id: str
    uetr: str
    amount: Money
    settlement_date: str
    instructing: Agent
    instructed: Agent
    debtor: Customer | Agent
    creditor: Customer | Agent
    instr_id: str | None = None
    tx_id: str | None = None
    clr_sys_ref: str | None = None
    priority: str | None = None
    charge_bearer: str | None = None  # customer transfers only
    debtor_account: Account | None = None
    debtor_agent: Agent | None = None  # customer transfers only
    creditor_agent: Agent | None = None  # customer transfers only
    creditor_account: Account | None = None
    purpose: str | None = None
    remittance: tuple[str, ...] = ()
    supplementary: tuple[Supplementary, ...] = ()


@dataclass(frozen=True)
class Reason:
    code: str | None = None
    proprietary: str | None = None
    info: tuple[str, ...] = ()


@dataclass(frozen=True)
class OriginalGroup:
    msg_id: str
    msg_def: str
    created: str | None = None


@dataclass(frozen=True)
class TransactionStatus:
    original_group: OriginalGroup
    status: str
    status_id: str | None = None
    original_instr_id: str | None = None
    original_end_to_end_id: str | None = None
    original_tx_id: str | None = None
    original_uetr: str | None = None
    reasons: tuple[Reason, ...] = ()
    accepted_at: str | None = None
    effective_settlement_date: str | None = None
    clr_sys_ref: str | None = None
    instructing: Agent | None = None
    instructed: Agent | None = None


@dataclass(frozen=True)
class GroupStatus:
    original_group: OriginalGroup
    status: str | None = None
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class StatusReport:
    """pacs.002."""

    msg_id: str
    created: str
    group: GroupStatus | None = None
    transaction: TransactionStatus | None = None


@dataclass(frozen=True)
class PaymentReturn:
    """pacs.004, one returned transaction."""

    msg_id: str
    created: str
    settlement_method: str
    return_id: str
    original_group: OriginalGroup
    original_end_to_end_id: str
    original_uetr: str
    returned_amount: Money
    settlement_date: str
    instructing: Agent
    instructed: Agent
    reason: Reason
    original_instr_id: str | None = None
    original_tx_id: str | None = None
    original_amount: Money | None = None
    original_settlement_date: str | None = None
    charge_bearer: str | None = None


@dataclass(frozen=True)
class SecuritiesAccount:
    id: str
    name: str | None = None


@dataclass(frozen=True)
class SettlementParty:
    bic: str
    lei: str | None = None
    account: SecuritiesAccount | None = None


@dataclass(frozen=True)
class SettlementParties:
    depository: str
    party1: SettlementParty | None = None
    party2: SettlementParty | None = None  # the beneficial owner behind a nominee


@dataclass(frozen=True)
class CashLeg:
    amount: Money
    direction: Literal["CRDT", "DBIT"]  # DBIT: the account owner pays


@dataclass(frozen=True)
class SecuritiesInstruction:
    """sese.023."""

    tx_id: str
    movement: Literal["DELI", "RECE"]
    payment: Literal["FREE", "APMT"]
    settlement_date: str
    isin: str
    face_amount: Decimal
    owner_bic: str
    account: SecuritiesAccount
    transaction_type: str = "TRAD"
    common_id: str | None = None
    trade_date: str | None = None
    description: str | None = None
    owner_lei: str | None = None
    delivering: SettlementParties | None = None
    receiving: SettlementParties | None = None
    cash: CashLeg | None = None


@dataclass(frozen=True)
class SecuritiesDetails:
    """sese.024 TxDtls: what the instruction said, echoed back."""

    account: SecuritiesAccount
    isin: str
    face_amount: Decimal
    settlement_date: str
    movement: Literal["DELI", "RECE"]
    payment: Literal["FREE", "APMT"]
    transaction_type: str = "TRAD"
    owner_bic: str | None = None
    owner_lei: str | None = None
    description: str | None = None
    cash: CashLeg | None = None


@dataclass(frozen=True)
class SecuritiesStatus:
    """sese.024: accepted, or rejected with reasons."""

    owner_tx_id: str
    accepted: bool
    rejections: tuple[Reason, ...] = ()
    servicer_tx_id: str | None = None
    infrastructure_tx_id: str | None = None
    details: SecuritiesDetails | None = None


@dataclass(frozen=True)
class SecuritiesConfirmation:
    """sese.025."""

    owner_tx_id: str
    movement: Literal["DELI", "RECE"]
    payment: Literal["FREE", "APMT"]
    effective_settlement_date: str
    isin: str
    face_amount: Decimal
    account: SecuritiesAccount
    transaction_type: str = "TRAD"
    servicer_tx_id: str | None = None
    infrastructure_tx_id: str | None = None
    trade_date: str | None = None
    settlement_date: str | None = None
    description: str | None = None
    owner_bic: str | None = None
    owner_lei: str | None = None
    settled_cash: CashLeg | None = None


@dataclass(frozen=True)
class MessageReject:
    """admi.002."""

    reference: str
    reason: str
    rejected_at: str
    description: str
    location: str | None = None


@dataclass(frozen=True)
class MovementRecord:
    id: str
    sequence: int
    amount: Money
    direction: Literal["CRDT", "DBIT"]
    participant: str
    account: str | None = None


@dataclass(frozen=True)
class NetSettlement:
    """pacs.029: a cycle's net positions, sent by the gateway to the RTGS side."""

    msg_id: str
    created: str
    instruction_id: str
    cycle: str
    records: tuple[MovementRecord, ...]
    control_sum: Decimal | None = None


@dataclass(frozen=True)
class CycleStatement:
    """camt.053: one participant's net position in a closed settlement cycle (gateway-issued)."""

    msg_id: str
    created: str
    statement_id: str
    cycle: str
    participant: str
    name: str | None
    account: str
    position: Money  # its size; `direction` says who pays
    direction: Literal["CRDT", "DBIT"]
    cut_off_date: str
    received: tuple[int, Decimal]  # (count, sum) of the obligations it received
    paid: tuple[int, Decimal]
    info: str
    opened: str | None = None
    cut_off: str | None = None


@dataclass(frozen=True)
class StatusRequest:
    """pacs.028: a participant asks the status of one payment, by its UETR."""

    msg_id: str
    created: str
    original_uetr: str
    original_group: OriginalGroup | None = None
    instructing: Agent | None = None  # GrpHdr InstgAgt: who asks, if it says
    request_id: str | None = None  # TxInf StsReqId


@dataclass(frozen=True)
class ReportRequest:
    """camt.060: a participant asks for a report of its own account: an intraday camt.052 of
    the open cycle, or the camt.053 statement of a closed cycle it names."""

    msg_id: str
    created: str
    requested: str  # ReqdMsgNmId: camt.052.001.08 or camt.053.001.08
    owner: Agent  # AcctOwnr: the participant whose account it is
    account: str | None = None  # Acct/Id/Othr/Id, if given: must be the owner's
    cycle: str | None = None  # RptgSeq/EQSeq: the closed cycle a statement is asked for
    request_id: str | None = None  # RptgReq/Id


@dataclass(frozen=True)
class HeldEntry:
    """A payment of the participant held for its cap, as a report lists it."""

    reference: str  # its UETR (or TxId)
    amount: Money


@dataclass(frozen=True)
class AccountReport:
    """camt.052: a participant's account in the open cycle, intraday (gateway-issued, on
    request): its position, what it received and paid, its held payments, its headroom."""

    msg_id: str
    created: str
    report_id: str
    cycle: str
    participant: str
    name: str | None
    account: str
    position: Money  # its size; `direction` says which way
    direction: Literal["CRDT", "DBIT"]
    received: tuple[int, Decimal]  # (count, sum)
    paid: tuple[int, Decimal]
    held: tuple[HeldEntry, ...]
    headroom: Money | None  # cap + position (what it may still pay); None: not capped
    request: tuple[str, str] | None  # (MsgId, MsgNmId) of the request it answers
    info: str


@dataclass(frozen=True)
class NotifiedObligation:
    """One obligation behind a net settlement entry, as the participant sees it."""

    reference: str  # the obligation's: a UETR, return:<UETR>, or sese:<TxId>
    amount: Money
    direction: Literal["CRDT", "DBIT"]  # received (CRDT) or paid (DBIT) by the participant
    counterparty: str  # the other participant's BIC


@dataclass(frozen=True)
class CycleNotification:
    """camt.054: a participant's net settlement entry, booked when its cycle settles
    (gateway-issued); with the obligations behind it when configured."""

    msg_id: str
    created: str
    notification_id: str
    cycle: str
    participant: str
    name: str | None
    account: str
    amount: Money  # the net movement's size; `direction` says which way
    direction: Literal["CRDT", "DBIT"]
    booked: str  # the booking date
    reference: str | None  # the cycle's settlement instruction (pacs.029 MsgId, or EndToEndId)
    info: str
    details: tuple[NotifiedObligation, ...] = ()


@dataclass(frozen=True)
class CancellationRequest:
    """camt.056: a participant asks to cancel one payment it instructed."""

    assignment_id: str
    created: str
    assigner: Agent  # who asks: the payment's instructing agent
    assignee: Agent  # whom it asks: the payment's instructed agent
    original_uetr: str
    original_group: OriginalGroup | None = None
    case_id: str | None = None
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class CancellationResolution:
    """camt.029: the resolution of one cancellation request."""

    assignment_id: str
    created: str
    status: str  # Sts/Conf: CNCL (cancelled as asked), RJCR (refused), PDCR (pending), ...
    original_uetr: str
    transaction_status: str | None = None  # TxCxlSts: ACCR, RJCR, PDCR, PACR
    assigner: Agent | None = None  # who resolves: the payment's instructed agent
    original_group: OriginalGroup | None = None
    case_id: str | None = None
    reasons: tuple[Reason, ...] = ()


Business = (
    Payment
    | StatusReport
    | PaymentReturn
    | SecuritiesInstruction
    | SecuritiesStatus
    | SecuritiesConfirmation
    | MessageReject
    | NetSettlement
    | CycleStatement
    | CycleNotification
    | StatusRequest
    | ReportRequest
    | AccountReport
    | CancellationRequest
    | CancellationResolution
)


@dataclass(frozen=True)
class Obligation:
    """Money one participant owes another once the message is accepted (net settlement)."""

    payer: str
    payee: str
    amount: Money
    reference: str  # UETR, or the securities TxId
