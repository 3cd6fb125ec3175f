"""Builders for what the gateway emits: headers, envelopes and rejects.

Rejects:
- admi.002 when a message cannot be read or validated (`MessageError.answer == "admi.002"`);
- pacs.002 RJCT when a readable payment-family message is refused;
- sese.024 Rjctd when a readable securities instruction is refused.
Each carries every original identifier that could be recovered. Free text the gateway writes
into an offshore message is made printable Latin (the offshore profile allows nothing else):
non-Latin characters become \\uXXXX escapes rather than disappearing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree
from lxml.builder import ElementMaker

from gateway.adapters import dialect
from gateway.iso20022 import errors
from gateway.iso20022.ids import derive_id
from gateway.iso20022.namespaces import ENVELOPE_NS, HEAD, ns
from gateway.iso20022.tree import Spec, render, render_text
from gateway.messages.registry import BY_DEF
from gateway.sides import Side


@dataclass(frozen=True)
class Party:
    """Who a header names: a BIC, and optionally a clearing member id for the dialect."""

    bic: str


def fit_text(text: str, max_len: int, side: Side) -> str:
    """Free text written by the gateway, made to fit a field: Latin-only where the side's
    dialect says so, bounded."""
    if dialect(side).latin_only:
        text = text.encode("ascii", "backslashreplace").decode("ascii")
        text = "".join(ch if " " <= ch <= "~" else " " for ch in text)
    else:
        text = "".join(ch if ch >= " " else " " for ch in text)
    text = " ".join(text.split()) or "-"
    return text if len(text) <= max_len else text[: max_len - 3] + "..."


def iso_datetime(moment: datetime) -> str:
    """ISODateTime with an explicit offset (the profiles require one)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the gateway only writes offset-aware times")
    return moment.isoformat(timespec="seconds")


_HEAD_NS = ns(HEAD)


def header_spec(
    *,
    fr: Party,
    to: Party,
    biz_msg_idr: str,
    msg_def: str,
    created: datetime,
    biz_svc: str | None = None,
    possible_duplicate: bool = False,
) -> Spec:
    return [
        ("Fr", [("FIId", [("FinInstnId", [("BICFI", fr.bic)])])]),
        ("To", [("FIId", [("FinInstnId", [("BICFI", to.bic)])])]),
        ("BizMsgIdr", biz_msg_idr),
        ("MsgDefIdr", msg_def),
        ("BizSvc", biz_svc),
        ("CreDt", iso_datetime(created)),
        ("PssblDplct", "true" if possible_duplicate else None),
    ]


def build_header(**fields: Any) -> etree._Element:
    """AppHdr element (same arguments as `header_spec`)."""
    header = etree.Element(f"{{{_HEAD_NS}}}AppHdr", nsmap={None: _HEAD_NS})  # type: ignore[dict-item]
    render(header, header_spec(**fields), _HEAD_NS)
    return header


def envelope_text(header: Spec, document: str) -> str:
    """The gateway's envelope as text, byte for byte what lxml would serialise."""
    out = [
        f"<?xml version='1.0' encoding='UTF-8'?>\n<BizMsg xmlns=\"{ENVELOPE_NS}\">",
        f'<AppHdr xmlns="{_HEAD_NS}">',
    ]
    render_text(header, out)
    out += ["</AppHdr>", document, "</BizMsg>"]
    return "".join(out)


def envelope_element(header: etree._Element, document: etree._Element) -> etree._Element:
    """AppHdr + Document in the gateway's envelope."""
    root = etree.Element(
        etree.QName(ENVELOPE_NS, "BizMsg"),
        nsmap={None: ENVELOPE_NS},  # type: ignore[dict-item]  # lxml-stubs: default namespace
    )
    root.append(header)
    root.append(document)
    return root


def serialise(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def envelope(header: etree._Element, document: etree._Element) -> bytes:
    """AppHdr + Document in the gateway's envelope, serialised as UTF-8 with a declaration."""
    return serialise(envelope_element(header, document))


def _document(msg_def: str) -> tuple[ElementMaker, etree._Element]:
    e = ElementMaker(namespace=ns(msg_def), nsmap={None: ns(msg_def)})
    return e, e.Document()


@dataclass(frozen=True)
class RejectContext:
    """What every reject needs besides the error: who we are, whom to answer, and when."""

    side: Side  # the dialect of the answer: the side the original came from
    gateway: Party
    fallback_to: Party  # that side's system, when the original sender is unknown
    created: datetime
    biz_svc: str | None = None
    # Signs the reject in place (the gateway's key, gateway/signatures.py), when configured.
    sign: Callable[[etree._Element], None] | None = None


def _reject_header(ctx: RejectContext, ids: errors.RecoveredIds, msg_def: str) -> etree._Element:
    to = Party(ids.sender_bic) if ids.sender_bic else ctx.fallback_to
    # Stable per original: a redelivered bad message gets the same reject id.
    biz_id = derive_id("GWRJ", msg_def, ids.reference, ids.payload_ref)
    return build_header(
        fr=ctx.gateway,
        to=to,
        biz_msg_idr=biz_id,
        msg_def=msg_def,
        created=ctx.created,
        biz_svc=ctx.biz_svc,
    )


def _sealed(ctx: RejectContext, header: etree._Element, document: etree._Element) -> bytes:
    root = envelope_element(header, document)
    if ctx.sign is not None:
        ctx.sign(root)
    return serialise(root)


def build_admi002(error: errors.MessageError, ctx: RejectContext) -> bytes:
    """admi.002 for a message that could not be read or validated."""
    ids = error.ids or errors.RecoveredIds("SHA256:UNKNOWN")
    a, doc = _document("admi.002.001.01")
    reason = [a.RjctgPtyRsn(error.code), a.RjctnDtTm(iso_datetime(ctx.created))]
    if error.location:
        reason.append(a.ErrLctn(fit_text(error.location, 350, ctx.side)))
    reason.append(a.RsnDesc(fit_text(f"{error.kind}: {error.detail}", 350, ctx.side)))
    doc.append(a("admi.002.001.01", a.RltdRef(a.Ref(ids.reference)), a.Rsn(*reason)))
    return _sealed(ctx, _reject_header(ctx, ids, "admi.002.001.01"), doc)


def build_pacs002_reject(error: errors.MessageError, ctx: RejectContext) -> bytes:
    """pacs.002 RJCT for a readable message refused for a business reason."""
    ids = error.ids
    if ids is None or ids.msg_def is None:
        raise ValueError("a pacs.002 reject needs the original's message type; use admi.002")
    p, doc = _document("pacs.002.001.10")
    orgnl_def = ids.msg_def
    orgnl_msg_id = ids.msg_id or ids.biz_msg_idr or ids.payload_ref
    status_id = derive_id("GWST", orgnl_msg_id, ids.payload_ref)

    def reason() -> etree._Element:
        info: etree._Element = p.StsRsnInf(
            p.Rsn(p.Cd(error.code)), p.AddtlInf(fit_text(error.detail, 105, ctx.side))
        )
        return info

    group = [p.OrgnlMsgId(orgnl_msg_id), p.OrgnlMsgNmId(orgnl_def)]
    if ids.cre_dt_tm:
        group.append(p.OrgnlCreDtTm(ids.cre_dt_tm))
    group += [p.GrpSts("RJCT"), reason()]
    report = p.FIToFIPmtStsRpt(
        p.GrpHdr(p.MsgId(status_id), p.CreDtTm(iso_datetime(ctx.created))),
        p.OrgnlGrpInfAndSts(*group),
    )
    if ids.uetr or ids.end_to_end_id:
        tx = [
            p.StsId(status_id),
            p.OrgnlGrpInf(p.OrgnlMsgId(orgnl_msg_id), p.OrgnlMsgNmId(orgnl_def)),
        ]
        for tag, value in (
            ("OrgnlInstrId", ids.instr_id),
            ("OrgnlEndToEndId", ids.end_to_end_id),
            ("OrgnlTxId", ids.tx_id),
            ("OrgnlUETR", ids.uetr),
        ):
            if value:
                tx.append(p(tag, value))
        tx += [p.TxSts("RJCT"), reason()]
        report.append(p.TxInfAndSts(*tx))
    doc.append(report)
    return _sealed(ctx, _reject_header(ctx, ids, "pacs.002.001.10"), doc)


# ExternalStatusReason1Code -> the closest securities RejectionReason code.
_SECURITIES_REASON = {
    "DU01": "REFE",
    "DUPL": "REFE",
    "RC01": "ICAG",
    "AC01": "SAFE",
    "TM01": "LATE",
    "AM02": "CASH",
    "AM03": "CASH",
    "AG01": "ICAG",
}


def build_sese024_reject(error: errors.MessageError, ctx: RejectContext, tx_id: str) -> bytes:
    """sese.024 Rjctd for a readable securities instruction refused for a business reason."""
    ids = error.ids or errors.RecoveredIds("SHA256:UNKNOWN")
    s, doc = _document("sese.024.001.10")
    code = _SECURITIES_REASON.get(error.code, "OTHR")
    doc.append(
        s.SctiesSttlmTxStsAdvc(
            s.TxId(s.AcctOwnrTxId(tx_id)),
            s.PrcgSts(
                s.Rjctd(
                    s.Rsn(
                        s.Cd(s.Cd(code)),
                        s.AddtlRsnInf(fit_text(f"{error.code}: {error.detail}", 210, ctx.side)),
                    )
                )
            ),
        )
    )
    return _sealed(ctx, _reject_header(ctx, ids, "sese.024.001.10"), doc)


def reject_definition(error: errors.MessageError, *, sese_tx_id: str | None = None) -> str:
    """Which reject answers an error: admi.002, pacs.002 or (securities) sese.024."""
    msg_def = error.ids.msg_def if error.ids else None
    # Refused instructions are answered in their own business language (each type declares
    # which); anything else refused, and whatever could not be read, gets an admi.002.
    if error.answer == "admi.002" or msg_def is None:
        return "admi.002.001.01"
    refusal = BY_DEF[msg_def].refusal if msg_def in BY_DEF else "admi.002.001.01"
    if refusal == "sese.024.001.10" and not sese_tx_id:
        return "admi.002.001.01"  # a sese.024 names the instruction's TxId: none, no sese.024
    return refusal


def build_reject(
    error: errors.MessageError, ctx: RejectContext, *, sese_tx_id: str | None = None
) -> bytes:
    """The reject `reject_definition` chooses, built."""
    kind = reject_definition(error, sese_tx_id=sese_tx_id)
    if kind == "sese.024.001.10":
        assert sese_tx_id is not None
        return build_sese024_reject(error, ctx, sese_tx_id)
    if kind == "pacs.002.001.10":
        return build_pacs002_reject(error, ctx)
    return build_admi002(error, ctx)
