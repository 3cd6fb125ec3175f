"""camt.054: a participant's debit or credit notification when its cycle settles, issued by the
gateway only (gateway/settlement/notification.py)."""

from __future__ import annotations

from gateway.canonical import CycleNotification
from gateway.codec import admin
from gateway.messages import MessageType

TYPE: MessageType = MessageType(
    msg_def="camt.054.001.08",
    title="debit/credit notification",
    root="BkToCstmrDbtCdtNtfctn",
    decode=admin.decode_notification,
    encode=admin.encode_notification,  # type: ignore[arg-type]
    matches=lambda body: isinstance(body, CycleNotification),
    paths={"msg_id": "GrpHdr/MsgId"},
    sender="gateway",
)
