"""pacs.002 payment status report and pacs.004 payment return."""

from __future__ import annotations

from gateway.canonical import (
    GroupStatus,
    OriginalGroup,
    PaymentReturn,
    Reason,
    StatusReport,
    StatusRequest,
    TransactionStatus,
)
from gateway.codec.context import DecodeContext, EncodeContext, amount_leaf, decode_amount
from gateway.iso20022.tree import Map, Node, Spec, leaf, many, one, txt


def original_group(m: Map | None) -> OriginalGroup:
    return OriginalGroup(
        txt(m, "OrgnlMsgId") or "", txt(m, "OrgnlMsgNmId") or "", txt(m, "OrgnlCreDtTm")
    )


def reasons(items: list[Node]) -> tuple[Reason, ...]:
    """Reason blocks (Rsn/Cd or Rsn/Prtry, AddtlInf): a status's, a return's, a
    cancellation's."""
    out = []
    for item in items:
        if isinstance(item, dict):
            info = tuple(x for x in many(item, "AddtlInf") if isinstance(x, str))
            out.append(Reason(txt(item, "Rsn", "Cd"), txt(item, "Rsn", "Prtry"), info))
    return tuple(out)


def decode_status(ctx: DecodeContext) -> StatusReport:
    root = one(ctx.msg.doc_map, "FIToFIPmtStsRpt")
    grp_hdr, grp, tx = one(root, "GrpHdr"), one(root, "OrgnlGrpInfAndSts"), one(root, "TxInfAndSts")
    group = None
    if grp is not None:
        group = GroupStatus(
            original_group(grp), txt(grp, "GrpSts"), reasons(many(grp, "StsRsnInf"))
        )
    transaction = None
    if tx is not None:
        instg, instd = one(tx, "InstgAgt"), one(tx, "InstdAgt")
        transaction = TransactionStatus(
            original_group=original_group(one(tx, "OrgnlGrpInf")),
            status=txt(tx, "TxSts") or "",
            status_id=txt(tx, "StsId"),
            original_instr_id=txt(tx, "OrgnlInstrId"),
            original_end_to_end_id=txt(tx, "OrgnlEndToEndId"),
            original_tx_id=txt(tx, "OrgnlTxId"),
            original_uetr=txt(tx, "OrgnlUETR"),
            reasons=reasons(many(tx, "StsRsnInf")),
            accepted_at=txt(tx, "AccptncDtTm"),
            effective_settlement_date=txt(tx, "FctvIntrBkSttlmDt", "Dt"),
            clr_sys_ref=txt(tx, "ClrSysRef"),
            instructing=ctx.agent(instg, "InstgAgt") if instg is not None else None,
            instructed=ctx.agent(instd, "InstdAgt") if instd is not None else None,
        )
    return StatusReport(
        txt(grp_hdr, "MsgId") or "", txt(grp_hdr, "CreDtTm") or "", group, transaction
    )


def _reason_specs(ctx: EncodeContext, reasons: tuple[Reason, ...]) -> list[tuple[str, object]]:
    return [
        (
            "StsRsnInf",
            [
                ("Rsn", [("Cd", r.code), ("Prtry", r.proprietary)]),
                *(("AddtlInf", ctx.text("status.info", line, 105)) for line in r.info),
            ],
        )
        for r in reasons
    ]


def _group_spec(g: OriginalGroup) -> list[tuple[str, object]]:
    return [("OrgnlMsgId", g.msg_id), ("OrgnlMsgNmId", g.msg_def), ("OrgnlCreDtTm", g.created)]


def encode_status(
    ctx: EncodeContext, s: StatusReport, msg_id: str, created: str
) -> tuple[str, Spec]:
    spec: list[tuple[str, object]] = [("GrpHdr", [("MsgId", msg_id), ("CreDtTm", created)])]
    if s.group is not None:
        spec.append(
            (
                "OrgnlGrpInfAndSts",
                [
                    *_group_spec(s.group.original_group),
                    ("GrpSts", s.group.status),
                    *_reason_specs(ctx, s.group.reasons),
                ],
            )
        )
    t = s.transaction
    if t is not None:
        spec.append(
            (
                "TxInfAndSts",
                [
                    ("StsId", t.status_id),
                    ("OrgnlGrpInf", _group_spec(t.original_group)),
                    ("OrgnlInstrId", t.original_instr_id),
                    ("OrgnlEndToEndId", t.original_end_to_end_id),
                    ("OrgnlTxId", t.original_tx_id),
                    ("OrgnlUETR", t.original_uetr),
                    ("TxSts", t.status),
                    *_reason_specs(ctx, t.reasons),
                    ("AccptncDtTm", t.accepted_at),
                    ("FctvIntrBkSttlmDt", [("Dt", t.effective_settlement_date)]),
                    ("ClrSysRef", t.clr_sys_ref),
                    ("InstgAgt", ctx.agent(t.instructing, "InstgAgt")),
                    ("InstdAgt", ctx.agent(t.instructed, "InstdAgt")),
                ],
            )
        )
    return "FIToFIPmtStsRpt", spec


def decode_return(ctx: DecodeContext) -> PaymentReturn:
    root = one(ctx.msg.doc_map, "PmtRtr")
    grp, tx = one(root, "GrpHdr"), one(root, "TxInf")
    rsn = one(tx, "RtrRsnInf")
    original_amount = leaf(tx, "OrgnlIntrBkSttlmAmt")
    return PaymentReturn(
        msg_id=txt(grp, "MsgId") or "",
        created=txt(grp, "CreDtTm") or "",
        settlement_method=txt(grp, "SttlmInf", "SttlmMtd") or "",
        return_id=txt(tx, "RtrId") or "",
        original_group=original_group(one(tx, "OrgnlGrpInf")),
        original_instr_id=txt(tx, "OrgnlInstrId"),
        original_end_to_end_id=txt(tx, "OrgnlEndToEndId") or "",
        original_tx_id=txt(tx, "OrgnlTxId"),
        original_uetr=txt(tx, "OrgnlUETR") or "",
        original_amount=decode_amount(original_amount) if original_amount else None,
        original_settlement_date=txt(tx, "OrgnlIntrBkSttlmDt"),
        returned_amount=decode_amount(leaf(tx, "RtrdIntrBkSttlmAmt")),
        settlement_date=txt(tx, "IntrBkSttlmDt") or "",
        charge_bearer=txt(tx, "ChrgBr"),
        instructing=ctx.agent(one(tx, "InstgAgt"), "InstgAgt"),
        instructed=ctx.agent(one(tx, "InstdAgt"), "InstdAgt"),
        reason=Reason(
            txt(rsn, "Rsn", "Cd"),
            txt(rsn, "Rsn", "Prtry"),
            tuple(x for x in many(rsn, "AddtlInf") if isinstance(x, str)),
        ),
    )


def encode_return(
    ctx: EncodeContext, r: PaymentReturn, msg_id: str, created: str
) -> tuple[str, Spec]:
    return "PmtRtr", [
        (
            "GrpHdr",
            [
                ("MsgId", msg_id),
                ("CreDtTm", created),
                ("NbOfTxs", "1"),
                ("SttlmInf", [("SttlmMtd", r.settlement_method)]),
            ],
        ),
        (
            "TxInf",
            [
                ("RtrId", r.return_id),
                ("OrgnlGrpInf", _group_spec(r.original_group)),
                ("OrgnlInstrId", r.original_instr_id),
                ("OrgnlEndToEndId", r.original_end_to_end_id),
                ("OrgnlTxId", r.original_tx_id),
                ("OrgnlUETR", r.original_uetr),
                ("OrgnlIntrBkSttlmAmt", amount_leaf(r.original_amount)),
                ("OrgnlIntrBkSttlmDt", r.original_settlement_date),
                ("RtrdIntrBkSttlmAmt", amount_leaf(r.returned_amount)),
                ("IntrBkSttlmDt", r.settlement_date),
                ("ChrgBr", r.charge_bearer),
                ("InstgAgt", ctx.agent(r.instructing, "InstgAgt")),
                ("InstdAgt", ctx.agent(r.instructed, "InstdAgt")),
                (
                    "RtrRsnInf",
                    [
                        ("Rsn", [("Cd", r.reason.code), ("Prtry", r.reason.proprietary)]),
                        *(
                            ("AddtlInf", ctx.text("return.info", line, 105))
                            for line in r.reason.info
                        ),
                    ],
                ),
            ],
        ),
    ]


def decode_status_request(ctx: DecodeContext) -> StatusRequest:
    """pacs.028: carried whole when forwarded (gateway/carry.py); read for its flow."""
    root = one(ctx.msg.doc_map, "FIToFIPmtStsReq")
    grp = one(root, "GrpHdr")
    tx = one(root, "TxInf")  # one, with its UETR (profile)
    group = one(tx, "OrgnlGrpInf") or one(root, "OrgnlGrpInf")
    asking = one(grp, "InstgAgt")
    return StatusRequest(
        msg_id=txt(grp, "MsgId") or "",
        created=txt(grp, "CreDtTm") or "",
        original_uetr=txt(tx, "OrgnlUETR") or "",
        original_group=original_group(group) if group is not None else None,
        instructing=ctx.agent(asking, "InstgAgt") if asking is not None else None,
        request_id=txt(tx, "StsReqId"),
    )
