"""camt.056 cancellation request and camt.029 resolution of investigation: read into the
canonical model. Both are carried whole (gateway/carry.py), so nothing here encodes them; the
gateway's own camt.029 answers are built in gateway/iso20022/builders.py."""

from __future__ import annotations

from gateway.canonical import (
    CancellationRequest,
    CancellationResolution,
    OriginalGroup,
)
from gateway.codec.context import DecodeContext
from gateway.codec.status import original_group, reasons
from gateway.iso20022.tree import Map, many, one, txt


def _original(m: Map | None) -> OriginalGroup | None:
    return original_group(m) if m is not None else None


def decode_request(ctx: DecodeContext) -> CancellationRequest:
    root = one(ctx.msg.doc_map, "FIToFIPmtCxlReq")
    assignment = one(root, "Assgnmt")
    tx = one(one(root, "Undrlyg"), "TxInf")  # one, with its UETR (profile)
    case = one(tx, "Case") or one(root, "Case")
    return CancellationRequest(
        assignment_id=txt(assignment, "Id") or "",
        created=txt(assignment, "CreDtTm") or "",
        assigner=ctx.agent(one(one(assignment, "Assgnr"), "Agt"), "Assgnr"),
        assignee=ctx.agent(one(one(assignment, "Assgne"), "Agt"), "Assgne"),
        original_uetr=txt(tx, "OrgnlUETR") or "",
        original_group=_original(one(tx, "OrgnlGrpInf")),
        case_id=txt(case, "Id"),
        reasons=reasons(many(tx, "CxlRsnInf")),
    )


def decode_resolution(ctx: DecodeContext) -> CancellationResolution:
    root = one(ctx.msg.doc_map, "RsltnOfInvstgtn")
    assignment = one(root, "Assgnmt")
    tx = one(one(root, "CxlDtls"), "TxInfAndSts")  # one, with its UETR (profile)
    case = one(tx, "RslvdCase") or one(root, "RslvdCase")
    assigner = one(one(assignment, "Assgnr"), "Agt")
    return CancellationResolution(
        assignment_id=txt(assignment, "Id") or "",
        created=txt(assignment, "CreDtTm") or "",
        status=txt(one(root, "Sts"), "Conf") or "",
        original_uetr=txt(tx, "OrgnlUETR") or "",
        transaction_status=txt(tx, "TxCxlSts"),
        original_group=_original(one(tx, "OrgnlGrpInf")),
        case_id=txt(case, "Id"),
        reasons=reasons(many(tx, "CxlStsRsnInf")),
        assigner=ctx.agent(assigner, "Assgnr") if assigner is not None else None,
    )
