"""pacs.002: payment status report, an answer carried whole back to the original's sender."""

from __future__ import annotations

from gateway.canonical import StatusReport
from gateway.codec import status
from gateway.flows import answers
from gateway.messages import Get, MessageType


def _transactions(get: Get) -> tuple[tuple[str, ...], str | None]:
    # Keyed by what it reports on and the status it gives: one status is applied once.
    correlation = get("orgnl_uetr") or get("orgnl_msg_id")
    state = get("status")
    return ((f"status:{correlation}:{state}",) if correlation and state else ()), correlation


# The statuses it gives and their reasons, from ISO's external code sets.
_STATUS_REASON = ("ExternalStatusReason1Code",)
CODES = {
    "OrgnlGrpInfAndSts/GrpSts": ("ExternalPaymentGroupStatus1Code",),
    "OrgnlGrpInfAndSts/StsRsnInf/Rsn/Cd": _STATUS_REASON,
    "OrgnlGrpInfAndSts/NbOfTxsPerSts/DtldSts": ("ExternalPaymentTransactionStatus1Code",),
    "TxInfAndSts/TxSts": ("ExternalPaymentTransactionStatus1Code",),
    "TxInfAndSts/StsRsnInf/Rsn/Cd": _STATUS_REASON,
}

TYPE: MessageType = MessageType(
    msg_def="pacs.002.001.10",
    title="payment status report",
    root="FIToFIPmtStsRpt",
    decode=status.decode_status,
    encode=status.encode_status,  # type: ignore[arg-type]
    matches=lambda body: isinstance(body, StatusReport),
    paths={
        "msg_id": "GrpHdr/MsgId",
        "agent": "TxInfAndSts/InstgAgt/FinInstnId/BICFI",
        "orgnl_uetr": "TxInfAndSts/OrgnlUETR",
        "status": "TxInfAndSts/TxSts",
        "orgnl_msg_id": "OrgnlGrpInfAndSts/OrgnlMsgId",
    },
    transactions=_transactions,
    answer_refs=("TxInfAndSts/OrgnlGrpInf/OrgnlMsgId", "OrgnlGrpInfAndSts/OrgnlMsgId"),
    carried=True,
    answers=True,
    sender="original_receiver",
    flow=answers.status,
    codes=CODES,
)
