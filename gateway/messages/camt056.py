"""camt.056: a participant's request to cancel a payment it instructed, carried whole to the
payment's receiver while the payment is out there, or answered by the gateway itself (a
camt.029) while the payment is still held for its payer's cap (docs/domain.md,
"Cancellations")."""

from __future__ import annotations

from gateway.canonical import CancellationRequest
from gateway.codec import cancellation
from gateway.correlations import cancellation_key
from gateway.flows import cancellations
from gateway.messages import CAMT029, Get, MessageType


def _transactions(get: Get) -> tuple[tuple[str, ...], str | None]:
    # One request per payment at a time: a second one clashes on this key (PDCR).
    uetr = get("orgnl_uetr")
    return ((cancellation_key(uetr),) if uetr else ()), uetr


def _outcomes(get: Get) -> tuple[str, ...]:
    # How a request for the payment was resolved: by the other side (its camt.029 CNCL or
    # RJCR, carried to the requester), or by the gateway (the payment was still held).
    uetr = get("orgnl_uetr")
    if not uetr:
        return ()
    return (f"cxlsts:{uetr}:CNCL", f"cxlsts:{uetr}:RJCR", f"cxlres:{uetr}")


TYPE: MessageType = MessageType(
    msg_def="camt.056.001.08",
    title="payment cancellation request",
    root="FIToFIPmtCxlReq",
    decode=cancellation.decode_request,
    encode=None,
    matches=lambda body: isinstance(body, CancellationRequest),
    paths={
        "msg_id": "Assgnmt/Id",
        "agent": "Assgnmt/Assgnr/Agt/FinInstnId/BICFI",
        "orgnl_uetr": "Undrlyg/TxInf/OrgnlUETR",
    },
    transactions=_transactions,
    # It means something only with its payment's correlation (forwarded, or held).
    answers=True,
    codes={
        "Undrlyg/OrgnlGrpInfAndCxl/CxlRsnInf/Rsn/Cd": ("ExternalCancellationReason1Code",),
        "Undrlyg/TxInf/CxlRsnInf/Rsn/Cd": ("ExternalCancellationReason1Code",),
    },
    carried=True,
    refusal=CAMT029,
    clash="PDCR",
    outcomes=_outcomes,
    identification=("Assgnmt", "Id", "CreDtTm"),
    sender="payment_instructor",
    flow=cancellations.request,
)
