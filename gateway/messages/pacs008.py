"""pacs.008: FI to FI customer credit transfer, one transaction, carried whole."""

from __future__ import annotations

from typing import Literal

from gateway.canonical import Payment
from gateway.codec import payments
from gateway.correlations import payment_key
from gateway.flows import payments as payment_flows
from gateway.messages import PACS002, Get, MessageType


def payment_transactions(get: Get) -> tuple[tuple[str, ...], str | None]:
    """A payment is keyed by its UETR, end to end."""
    uetr = get("uetr")
    return ((payment_key(uetr),), uetr) if uetr else ((), None)


def credit_transfer(
    msg_def: str, title: str, root: str, kind: Literal["customer", "institution"]
) -> MessageType:
    """A credit transfer (pacs.008, pacs.009): one transaction, keyed by its UETR, carried
    whole, capped, refused with a pacs.002."""
    return MessageType(
        msg_def=msg_def,
        title=title,
        root=root,
        decode=lambda ctx: payments.decode(ctx, kind),
        encode=payments.encode,  # type: ignore[arg-type]  # takes a Payment: matches() says so
        matches=lambda body: isinstance(body, Payment) and body.kind == kind,
        paths={
            "msg_id": "GrpHdr/MsgId",
            "agent": "CdtTrfTxInf/InstgAgt/FinInstnId/BICFI",
            "uetr": "CdtTrfTxInf/PmtId/UETR",
        },
        transactions=payment_transactions,
        carried=True,
        capped=True,
        refusal=PACS002,
        sender="instructing",
        flow=payment_flows.payment,
    )


TYPE: MessageType = credit_transfer(
    "pacs.008.001.08", "customer credit transfer", "FIToFICstmrCdtTrf", "customer"
)
