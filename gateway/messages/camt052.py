"""camt.052: a participant's intraday account report of the open cycle, issued by the gateway
only, on the participant's request (camt.060)."""

from __future__ import annotations

from gateway.canonical import AccountReport
from gateway.codec import admin
from gateway.messages import MessageType

TYPE: MessageType = MessageType(
    msg_def="camt.052.001.08",
    title="account report",
    root="BkToCstmrAcctRpt",
    decode=admin.decode_account_report,
    encode=admin.encode_account_report,  # type: ignore[arg-type]
    matches=lambda body: isinstance(body, AccountReport),
    paths={"msg_id": "GrpHdr/MsgId"},
    sender="gateway",
)
