"""camt.053: a participant's statement of a closed cycle, issued by the gateway only."""

from __future__ import annotations

from gateway.canonical import CycleStatement
from gateway.codec import admin
from gateway.messages import MessageType

TYPE: MessageType = MessageType(
    msg_def="camt.053.001.08",
    title="cycle statement",
    root="BkToCstmrStmt",
    decode=admin.decode_statement,
    encode=admin.encode_statement,  # type: ignore[arg-type]
    matches=lambda body: isinstance(body, CycleStatement),
    paths={"msg_id": "GrpHdr/MsgId"},
    sender="gateway",
)
