"""pacs.029: multilateral settlement request, a cycle's net positions, issued by the gateway
to the RTGS side (settlement.rtgs_side) only."""

from __future__ import annotations

from gateway.canonical import NetSettlement
from gateway.codec import admin
from gateway.messages import MessageType

TYPE: MessageType = MessageType(
    msg_def="pacs.029.001.01",
    title="net settlement request",
    root="MulSttlmReq",
    decode=admin.decode_net_settlement,
    encode=admin.encode_net_settlement,  # type: ignore[arg-type]
    matches=lambda body: isinstance(body, NetSettlement),
    paths={"msg_id": "GrpHdr/MsgId"},
    sender="gateway",
)
