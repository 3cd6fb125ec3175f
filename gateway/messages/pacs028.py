"""pacs.028: a payment status enquiry, about one payment by its UETR, from its instructing
party or its receiver. The gateway answers with a pacs.002 of what it knows, or forwards the
enquiry to the receiver when the status is the receiver's to give (gateway/flows/enquiries.py)."""

from __future__ import annotations

from gateway.canonical import StatusRequest
from gateway.codec import status
from gateway.flows import enquiries
from gateway.messages import PACS002, Get, MessageType


def _transactions(get: Get) -> tuple[tuple[str, ...], str | None]:
    # Each enquiry is its own (its message key); it is about its payment.
    return (), get("orgnl_uetr")


TYPE: MessageType = MessageType(
    msg_def="pacs.028.001.03",
    title="payment status request",
    root="FIToFIPmtStsReq",
    decode=status.decode_status_request,
    encode=None,
    matches=lambda body: isinstance(body, StatusRequest),
    paths={
        "msg_id": "GrpHdr/MsgId",
        "agent": "GrpHdr/InstgAgt/FinInstnId/BICFI",
        "orgnl_uetr": "TxInf/OrgnlUETR",
    },
    transactions=_transactions,
    # It means something only with its payment's correlation, and what the store knows of
    # the payment when it is decided (`reads_state`).
    answers=True,
    reads_state=True,
    asks=lambda get: (f"payment:{uetr}",) if (uetr := get("orgnl_uetr")) else (),
    carried=True,
    refusal=PACS002,
    sender="payment_party",
    flow=enquiries.status_request,
)
