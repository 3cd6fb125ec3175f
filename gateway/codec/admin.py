"""admi.002 message reject and pacs.029 multilateral settlement request."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, cast

from gateway.canonical import MessageReject, Money, MovementRecord, NetSettlement
from gateway.codec.context import DecodeContext, EncodeContext, amount_leaf, decode_amount
from gateway.iso20022.tree import Spec, leaf, many, one, txt


def decode_reject(ctx: DecodeContext) -> MessageReject:
    root = one(ctx.msg.doc_map, "admi.002.001.01")
    rsn = one(root, "Rsn")
    return MessageReject(
        reference=txt(root, "RltdRef", "Ref") or "",
        reason=txt(rsn, "RjctgPtyRsn") or "",
        rejected_at=txt(rsn, "RjctnDtTm") or "",
        location=txt(rsn, "ErrLctn"),
        description=txt(rsn, "RsnDesc") or "",
    )


def encode_reject(ctx: EncodeContext, r: MessageReject) -> tuple[str, Spec]:
    return "admi.002.001.01", [
        ("RltdRef", [("Ref", r.reference)]),
        (
            "Rsn",
            [
                ("RjctgPtyRsn", r.reason),
                ("RjctnDtTm", r.rejected_at),
                ("ErrLctn", ctx.text("reject.text", r.location, 350)),
                ("RsnDesc", ctx.text("reject.text", r.description, 350)),
            ],
        ),
    ]


def decode_net_settlement(ctx: DecodeContext) -> NetSettlement:
    root = one(ctx.msg.doc_map, "MulSttlmReq")
    grp, req = one(root, "GrpHdr"), one(root, "SttlmReq")
    records = []
    for rec in many(req, "MvmntRcrd"):
        if not isinstance(rec, dict):
            continue
        money: Money = decode_amount(leaf(rec, "Amt", "Amt"))
        records.append(
            MovementRecord(
                id=txt(rec, "Id") or "",
                sequence=int(txt(rec, "SeqNb") or "0"),
                amount=money,
                direction=cast(Literal["CRDT", "DBIT"], txt(rec, "Amt", "CdtDbt")),
                participant=txt(rec, "Ptcpt", "Id", "OrgId", "AnyBIC") or "",
                account=txt(rec, "PtcptAcct", "Id", "Othr", "Id"),
            )
        )
    ctrl = txt(grp, "CtrlSum")
    return NetSettlement(
        msg_id=txt(grp, "MsgId") or "",
        created=txt(grp, "CreDtTm") or "",
        instruction_id=txt(req, "InstrId") or "",
        cycle=txt(req, "SttlmCycl") or "",
        records=tuple(records),
        control_sum=Decimal(ctrl) if ctrl else None,
    )


def encode_net_settlement(
    ctx: EncodeContext, n: NetSettlement, msg_id: str, created: str
) -> tuple[str, Spec]:
    return "MulSttlmReq", [
        (
            "GrpHdr",
            [
                ("MsgId", msg_id),
                ("CreDtTm", created),
                ("NbOfSttlmReqs", "1"),
                ("CtrlSum", None if n.control_sum is None else str(n.control_sum)),
            ],
        ),
        (
            "SttlmReq",
            [
                ("InstrId", n.instruction_id),
                ("SttlmCycl", n.cycle),
                ("NbOfMvmntRcrds", str(len(n.records))),
                *(
                    (
                        "MvmntRcrd",
                        [
                            ("Id", r.id),
                            ("SeqNb", str(r.sequence)),
                            ("Amt", [("Amt", amount_leaf(r.amount)), ("CdtDbt", r.direction)]),
                            ("Ptcpt", [("Id", [("OrgId", [("AnyBIC", r.participant)])])]),
                            (
                                "PtcptAcct",
                                None
                                if r.account is None
                                else [("Id", [("Othr", [("Id", r.account)])])],
                            ),
                        ],
                    )
                    for r in n.records
                ),
            ],
        ),
    ]
