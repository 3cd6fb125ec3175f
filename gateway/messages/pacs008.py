"""pacs.008: FI to FI customer credit transfer, one transaction, carried whole."""

from __future__ import annotations

from gateway.canonical import Payment
from gateway.codec import payments
from gateway.messages import PACS002, Get, MessageType


def payment_transactions(get: Get) -> tuple[tuple[str, ...], str | None]:
    """A payment is keyed by its UETR, end to end."""
    uetr = get("uetr")
    return ((f"uetr:{uetr}",), uetr) if uetr else ((), None)


TYPE = MessageType(
    msg_def="pacs.008.001.08",
    title="customer credit transfer",
    root="FIToFICstmrCdtTrf",
    decode=lambda ctx: payments.decode(ctx, "customer"),
    encode=payments.encode,  # type: ignore[arg-type]  # takes a Payment: matches() says so
    matches=lambda body: isinstance(body, Payment) and body.kind == "customer",
    paths={
        "msg_id": "GrpHdr/MsgId",
        "agent": "CdtTrfTxInf/InstgAgt/FinInstnId/BICFI",
        "uetr": "CdtTrfTxInf/PmtId/UETR",
    },
    transactions=payment_transactions,
    carried=True,
    capped=True,
    refusal=PACS002,
)
