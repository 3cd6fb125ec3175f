"""Builders for what the gateway emits: headers, envelopes and rejects.

Rejects:
- admi.002 when a message cannot be read or validated (`MessageError.answer == "admi.002"`);
- pacs.002 RJCT when a readable payment-family message is refused;
- sese.024 Rjctd when a readable securities instruction is refused;
- camt.029 RJCR when a readable cancellation request is refused (PDCR when another request
  for the payment came first); the same builder answers CNCL when the gateway cancels a held
  payment itself.
Each carries every original identifier that could be recovered. Free text the gateway writes
into an offshore message is made printable Latin (the offshore profile allows nothing else):
non-Latin characters become \\uXXXX escapes rather than disappearing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lxml import etree
from lxml.builder import ElementMaker

from gateway.code_sets import code_sets
from gateway.iso20022 import errors
from gateway.iso20022.ids import derive_id
from gateway.iso20022.namespaces import ENVELOPE_NS, HEAD, ns
from gateway.iso20022.reader import has_markup
from gateway.iso20022.tree import Spec, clone, render, render_text


@dataclass(frozen=True)
class Party:
    """Who a header names: a BIC, and optionally a clearing member id for the dialect."""

    bic: str


def fit_text(text: str, max_len: int, latin_only: bool) -> str:
    """Free text written by the gateway, made to fit a field: printable Latin where the
    receiving dialect allows nothing else, bounded."""
    if latin_only:
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


# AppHdr elements built once per (from, to, definition, service, duplicate flag), copied and
# completed for each message: building one costs four times its copy.
_HEADERS: dict[tuple[object, ...], etree._Element] = {}
_BIZ_MSG_IDR = f"{{{_HEAD_NS}}}BizMsgIdr"
_CRE_DT = f"{{{_HEAD_NS}}}CreDt"


def build_header(
    *,
    fr: Party,
    to: Party,
    biz_msg_idr: str,
    msg_def: str,
    created: datetime,
    biz_svc: str | None = None,
    possible_duplicate: bool = False,
) -> etree._Element:
    """AppHdr element (same arguments as `header_spec`)."""
    key = (fr, to, msg_def, biz_svc, possible_duplicate)
    template = _HEADERS.get(key)
    if template is None:
        template = etree.Element(f"{{{_HEAD_NS}}}AppHdr", nsmap={None: _HEAD_NS})  # type: ignore[dict-item]
        spec = header_spec(
            fr=fr,
            to=to,
            biz_msg_idr="-",
            msg_def=msg_def,
            created=created,
            biz_svc=biz_svc,
            possible_duplicate=possible_duplicate,
        )
        render(template, spec, _HEAD_NS)
        if len(_HEADERS) >= 10_000:  # bounded: senders x receivers x definitions
            _HEADERS.clear()
        _HEADERS[key] = template
    header = clone(template)
    next(header.iterchildren(_BIZ_MSG_IDR)).text = biz_msg_idr
    next(header.iterchildren(_CRE_DT)).text = iso_datetime(created)
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


_DECLARATION = len(b"<?xml version='1.0' encoding='UTF-8'?>")


def plain(data: bytes) -> bytes:
    """An output, checked. One meaning (docs/security.md): what the gateway builds from the
    canonical reading holds no comment and no processing instruction, so no reader downstream
    can see a value other than the one the gateway signed. A scan, not a tree walk."""
    assert not has_markup(data, _DECLARATION), "a comment or PI in an output"
    return data


def serialise(root: etree._Element) -> bytes:
    """Everything the gateway emits from a tree, as bytes."""
    return plain(bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8")))


def envelope(header: etree._Element, document: etree._Element) -> bytes:
    """AppHdr + Document in the gateway's envelope, serialised as UTF-8 with a declaration."""
    return serialise(envelope_element(header, document))


def _document(msg_def: str) -> tuple[ElementMaker, etree._Element]:
    e = ElementMaker(namespace=ns(msg_def), nsmap={None: ns(msg_def)})
    return e, e.Document()


@dataclass(frozen=True)
class RejectContext:
    """What every reject needs besides the error: who we are, whom to answer, and when."""

    latin_only: bool  # the answer's dialect (the source side's) allows printable Latin only
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
        reason.append(a.ErrLctn(fit_text(error.location, 350, ctx.latin_only)))
    reason.append(a.RsnDesc(fit_text(f"{error.kind}: {error.detail}", 350, ctx.latin_only)))
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
            p.Rsn(p.Cd(error.code)), p.AddtlInf(fit_text(error.detail, 105, ctx.latin_only))
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


def build_pacs002_status(
    ctx: RejectContext,
    ids: errors.RecoveredIds,
    uetr: str,
    original: tuple[str, str, str | None] | None,
    status: str,
    info: str,
    reason: str | None = None,
) -> bytes:
    """The gateway's pacs.002 answering a status enquiry (`ids`: the enquiry's) about the
    payment `uetr`, known to the enquirer as `original` (MsgId, MsgNmId, CreDtTm)."""
    p, doc = _document("pacs.002.001.10")
    status_id = derive_id("GWSA", ids.reference, ids.payload_ref)
    group = []
    if original is not None:
        msg_id, msg_def, created = original
        group = [p.OrgnlGrpInf(p.OrgnlMsgId(msg_id), p.OrgnlMsgNmId(msg_def))]
        if created:
            group[0].append(p.OrgnlCreDtTm(created))
    why = [p.Rsn(p.Cd(reason))] if reason else []
    doc.append(
        p.FIToFIPmtStsRpt(
            p.GrpHdr(p.MsgId(status_id), p.CreDtTm(iso_datetime(ctx.created))),
            p.TxInfAndSts(
                p.StsId(status_id),
                *group,
                p.OrgnlUETR(uetr),
                p.TxSts(status),
                p.StsRsnInf(*why, p.AddtlInf(fit_text(info, 105, ctx.latin_only))),
            ),
        )
    )
    to = Party(ids.sender_bic) if ids.sender_bic else ctx.fallback_to
    header = build_header(
        fr=ctx.gateway,
        to=to,
        biz_msg_idr=derive_id("GWSB", ids.reference, ids.payload_ref),
        msg_def="pacs.002.001.10",
        created=ctx.created,
        biz_svc=ctx.biz_svc,
    )
    return _sealed(ctx, header, doc)


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
                        s.AddtlRsnInf(
                            fit_text(f"{error.code}: {error.detail}", 210, ctx.latin_only)
                        ),
                    )
                )
            ),
        )
    )
    return _sealed(ctx, _reject_header(ctx, ids, "sese.024.001.10"), doc)


# A refusal's reason goes in Rsn/Cd when it is an ExternalPaymentCancellationRejection1Code,
# else in Rsn/Prtry (AG01, DU01, RC01 are status reasons, not cancellation rejection codes).
# Looked up when a camt.029 is built: importing the builders reads no data file.
CANCELLATION_REJECTION_SET = "ExternalPaymentCancellationRejection1Code"
# Sts/Conf -> TxCxlSts (CancellationIndividualStatus1Code).
_TRANSACTION_CANCELLATION = {"CNCL": "ACCR", "RJCR": "RJCR", "PDCR": "PDCR"}
_REQUEST_PARTS = ("OrgnlGrpInf", "OrgnlInstrId", "OrgnlEndToEndId", "OrgnlTxId", "OrgnlUETR")


def _renamespaced(el: etree._Element, namespace: str) -> etree._Element:
    """A copy of `el` (from the request's namespace) in the answer's."""
    copied = etree.Element(etree.QName(namespace, etree.QName(el).localname))
    copied.text = el.text
    for key, value in el.attrib.items():
        copied.set(key, value)
    for child in el:
        if isinstance(child.tag, str):
            copied.append(_renamespaced(child, namespace))
    return copied


def build_camt029(
    ctx: RejectContext,
    ids: errors.RecoveredIds,
    request: etree._Element,
    status: str,
    reason: str | None = None,
    detail: str | None = None,
) -> bytes:
    """The gateway's own resolution of a cancellation request (`request`: its camt.056
    Document): CNCL (it cancelled a held payment), RJCR (refused, with `reason`) or PDCR
    (another request for the payment is being resolved)."""
    msg_def = "camt.029.001.09"
    namespace = ns(msg_def)
    c, doc = _document(msg_def)

    def first(*names: str) -> etree._Element | None:
        found = request.xpath("*/" + "/".join(f"*[local-name()='{n}']" for n in names))
        return found[0] if isinstance(found, list) and found else None  # type: ignore[return-value]

    requester = first("Assgnmt", "Assgnr", "Agt")
    assert requester is not None, "a camt.056 names its assigner (profile)"
    case = first("Undrlyg", "TxInf", "Case")
    case = first("Case") if case is None else case
    resolution_id = derive_id("GWCX", status, ids.reference, ids.payload_ref)
    body = [
        c.Assgnmt(
            c.Id(resolution_id),
            c.Assgnr(c.Agt(c.FinInstnId(c.BICFI(ctx.gateway.bic)))),
            c.Assgne(_renamespaced(requester, namespace)),
            c.CreDtTm(iso_datetime(ctx.created)),
        )
    ]
    if case is not None:
        resolved = _renamespaced(case, namespace)
        resolved.tag = etree.QName(namespace, "RslvdCase").text
        body.append(resolved)
    body.append(c.Sts(c.Conf(status)))
    details = [c.CxlStsId(resolution_id)]
    for name in _REQUEST_PARTS:
        part = first("Undrlyg", "TxInf", name)
        if part is not None:
            details.append(_renamespaced(part, namespace))
    details.append(c.TxCxlSts(_TRANSACTION_CANCELLATION.get(status, "RJCR")))
    if reason is not None:
        rejections = code_sets().codes(CANCELLATION_REJECTION_SET)
        code = c.Cd(reason) if reason in rejections else c.Prtry(reason)
        info = [c.Rsn(code)]
        if detail:
            info.append(c.AddtlInf(fit_text(detail, 105, ctx.latin_only)))
        details.append(c.CxlStsRsnInf(*info))
    body.append(c.CxlDtls(c.TxInfAndSts(*details)))
    doc.append(c.RsltnOfInvstgtn(*body))
    return _sealed(ctx, _reject_header(ctx, ids, msg_def), doc)
