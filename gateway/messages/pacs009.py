"""pacs.009: financial institution credit transfer (also COV and ADV), carried whole. The
gateway issues one too, per net position, when settlement.instruction = "pacs.009"."""

from __future__ import annotations

from gateway.canonical import Payment
from gateway.codec import payments
from gateway.messages import PACS002, MessageType
from gateway.messages.pacs008 import payment_transactions

TYPE = MessageType(
    msg_def="pacs.009.001.08",
    title="institution credit transfer",
    root="FICdtTrf",
    decode=lambda ctx: payments.decode(ctx, "institution"),
    encode=payments.encode,  # type: ignore[arg-type]
    matches=lambda body: isinstance(body, Payment) and body.kind == "institution",
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
