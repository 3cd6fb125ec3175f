"""Decode a validated message into the canonical model; encode the model into a dialect.

One module per message family; `Dialect` (defined by each adapter) carries what differs
between the sides.
"""

from __future__ import annotations

from lxml import etree

from gateway.canonical import (
    Business,
    CycleStatement,
    Header,
    MessageReject,
    NetSettlement,
    Payment,
    PaymentReturn,
    SecuritiesConfirmation,
    SecuritiesInstruction,
    SecuritiesStatus,
    StatusReport,
)
from gateway.codec import admin, payments, securities, status
from gateway.codec.context import DecodeContext, EncodeContext
from gateway.iso20022.namespaces import family, ns
from gateway.iso20022.reader import BusinessMessage
from gateway.iso20022.tree import Spec, render_text

MSG_DEF = {
    "pacs.008": "pacs.008.001.08",
    "pacs.009": "pacs.009.001.08",
    "pacs.002": "pacs.002.001.10",
    "pacs.004": "pacs.004.001.09",
    "pacs.029": "pacs.029.001.01",
    "admi.002": "admi.002.001.01",
    "sese.023": "sese.023.001.09",
    "sese.024": "sese.024.001.10",
    "sese.025": "sese.025.001.09",
    "camt.053": "camt.053.001.08",
}


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


def decode(ctx: DecodeContext) -> Business:
    fam = family(ctx.msg.msg_def)
    if fam == "pacs.008":
        return payments.decode(ctx, "customer")
    if fam == "pacs.009":
        return payments.decode(ctx, "institution")
    if fam == "pacs.002":
        return status.decode_status(ctx)
    if fam == "pacs.004":
        return status.decode_return(ctx)
    if fam == "sese.023":
        return securities.decode_instruction(ctx)
    if fam == "sese.024":
        return securities.decode_status(ctx)
    if fam == "sese.025":
        return securities.decode_confirmation(ctx)
    if fam == "admi.002":
        return admin.decode_reject(ctx)
    if fam == "pacs.029":
        return admin.decode_net_settlement(ctx)
    if fam == "camt.053":
        return admin.decode_statement(ctx)
    raise ValueError(f"no codec for {ctx.msg.msg_def}")


def encode(
    ctx: EncodeContext, body: Business, msg_id: str, created: str
) -> tuple[str, etree._Element]:
    """(message definition, Document element): `encode_text`, parsed."""
    msg_def, text = encode_text(ctx, body, msg_id, created)
    return msg_def, etree.fromstring(text)


def encode_text(ctx: EncodeContext, body: Business, msg_id: str, created: str) -> tuple[str, str]:
    """(message definition, Document as XML text) of `body` in the context's dialect.

    `msg_id` and `created` are the new message's group identification (for the families that
    have one); everything else comes from `body`.
    """
    root: str
    spec: Spec
    if isinstance(body, Payment):
        fam = "pacs.008" if body.kind == "customer" else "pacs.009"
        root, spec = payments.encode(ctx, body, msg_id, created)
    elif isinstance(body, StatusReport):
        fam, (root, spec) = "pacs.002", status.encode_status(ctx, body, msg_id, created)
    elif isinstance(body, PaymentReturn):
        fam, (root, spec) = "pacs.004", status.encode_return(ctx, body, msg_id, created)
    elif isinstance(body, SecuritiesInstruction):
        fam, (root, spec) = "sese.023", securities.encode_instruction(ctx, body)
    elif isinstance(body, SecuritiesStatus):
        fam, (root, spec) = "sese.024", securities.encode_status(ctx, body)
    elif isinstance(body, SecuritiesConfirmation):
        fam, (root, spec) = "sese.025", securities.encode_confirmation(ctx, body)
    elif isinstance(body, MessageReject):
        fam, (root, spec) = "admi.002", admin.encode_reject(ctx, body)
    elif isinstance(body, NetSettlement):
        fam, (root, spec) = "pacs.029", admin.encode_net_settlement(ctx, body, msg_id, created)
    elif isinstance(body, CycleStatement):
        fam, (root, spec) = "camt.053", admin.encode_statement(ctx, body, msg_id, created)
    else:  # pragma: no cover - the union is exhaustive
        raise TypeError(type(body))
    msg_def = MSG_DEF[fam]
    out = [f'<Document xmlns="{ns(msg_def)}">']
    render_text([(root, spec)], out)
    out.append("</Document>")
    return msg_def, "".join(out)
