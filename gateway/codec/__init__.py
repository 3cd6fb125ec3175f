"""Decode a validated message into the canonical model; encode the model into a dialect.

One module per message family (payments, status, securities, admin); which type uses which is
declared in `gateway/messages/` (the registry decodes and encodes). `Dialect` (defined by each
adapter) carries what differs between the sides.
"""

from __future__ import annotations

from gateway.canonical import Header
from gateway.iso20022.reader import BusinessMessage


def decode_header(msg: BusinessMessage) -> Header | None:
    if msg.header is None:
        return None
    return Header(
        sender=msg.header_text("Fr/FIId/FinInstnId/BICFI") or "",
        receiver=msg.header_text("To/FIId/FinInstnId/BICFI"),
        biz_msg_idr=msg.header_text("BizMsgIdr") or "",
        msg_def=msg.header_text("MsgDefIdr") or msg.msg_def,
        created=msg.header_text("CreDt") or "",
        possible_duplicate=msg.header_text("PssblDplct") in ("true", "1"),
        biz_svc=msg.header_text("BizSvc"),
    )
