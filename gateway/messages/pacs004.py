"""pacs.004: payment return, carried whole back to the original's sender; books the return."""

from __future__ import annotations

from gateway.canonical import PaymentReturn
from gateway.codec import status
from gateway.flows import answers
from gateway.messages import PACS002, Get, MessageType


def _transactions(get: Get) -> tuple[tuple[str, ...], str | None]:
    correlation = get("orgnl_uetr")
    return ((f"return:{correlation}",) if correlation else ()), correlation


TYPE: MessageType = MessageType(
    msg_def="pacs.004.001.09",
    title="payment return",
    root="PmtRtr",
    decode=status.decode_return,
    encode=status.encode_return,  # type: ignore[arg-type]
    matches=lambda body: isinstance(body, PaymentReturn),
    paths={
        "msg_id": "GrpHdr/MsgId",
        "agent": "TxInf/InstgAgt/FinInstnId/BICFI",
        "orgnl_uetr": "TxInf/OrgnlUETR",
        "rtr_id": "TxInf/RtrId",
    },
    transactions=_transactions,
    answer_refs=("TxInf/OrgnlGrpInf/OrgnlMsgId",),
    carried=True,
    refusal=PACS002,
    answers=True,
    codes={
        "OrgnlGrpInf/RtrRsnInf/Rsn/Cd": ("ExternalReturnReason1Code",),
        "TxInf/RtrRsnInf/Rsn/Cd": ("ExternalReturnReason1Code",),
    },
    sender="original_receiver",
    flow=answers.payment_return,
)
