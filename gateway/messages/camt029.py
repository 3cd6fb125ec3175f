"""camt.029: the resolution of a cancellation request, carried whole back to the requester;
an acceptance (CNCL) voids the payment's obligation while its cycle is open."""

from __future__ import annotations

from gateway.canonical import CancellationResolution
from gateway.codec import cancellation
from gateway.flows import cancellations
from gateway.messages import Get, MessageType


def _transactions(get: Get) -> tuple[tuple[str, ...], str | None]:
    # Keyed by the payment it resolves and its status: one resolution is applied once.
    uetr = get("orgnl_uetr")
    status = get("status")
    return ((f"cxlsts:{uetr}:{status}",) if uetr and status else ()), uetr


# Its confirmation (the gateway acts on CNCL only) and a refusal's reasons, from ISO's
# external code sets.
_REJECTION = ("ExternalPaymentCancellationRejection1Code",)
CODES = {
    "Sts/Conf": ("ExternalInvestigationExecutionConfirmation1Code",),
    "CxlDtls/OrgnlGrpInfAndSts/CxlStsRsnInf/Rsn/Cd": _REJECTION,
    "CxlDtls/TxInfAndSts/CxlStsRsnInf/Rsn/Cd": _REJECTION,
}

TYPE: MessageType = MessageType(
    msg_def="camt.029.001.09",
    title="resolution of investigation",
    root="RsltnOfInvstgtn",
    decode=cancellation.decode_resolution,
    encode=None,
    matches=lambda body: isinstance(body, CancellationResolution),
    paths={
        "msg_id": "Assgnmt/Id",
        "agent": "Assgnmt/Assgnr/Agt/FinInstnId/BICFI",
        "orgnl_uetr": "CxlDtls/TxInfAndSts/OrgnlUETR",
        "status": "Sts/Conf",
    },
    transactions=_transactions,
    answer_refs=("CxlDtls/TxInfAndSts/OrgnlGrpInf/OrgnlMsgId",),
    answers=True,
    carried=True,
    identification=("Assgnmt", "Id", "CreDtTm"),
    sender="original_receiver",
    flow=cancellations.resolution,
    codes=CODES,
)
