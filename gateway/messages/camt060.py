"""camt.060: a participant's request for a report of its own account, answered by the gateway
(gateway/flows/reports.py): a camt.052 of the open cycle, or the camt.053 of a closed cycle it
names (RptgSeq/EQSeq)."""

from __future__ import annotations

from gateway.canonical import ReportRequest
from gateway.codec import admin
from gateway.flows import reports
from gateway.messages import Get, MessageType


def _asks(get: Get) -> tuple[str, ...]:
    owner = get("agent")
    return (f"account:{owner}:{get('cycle') or ''}",) if owner else ()


TYPE: MessageType = MessageType(
    msg_def="camt.060.001.05",
    title="account reporting request",
    root="AcctRptgReq",
    decode=admin.decode_report_request,
    encode=None,
    matches=lambda body: isinstance(body, ReportRequest),
    paths={
        "msg_id": "GrpHdr/MsgId",
        "agent": "RptgReq/AcctOwnr/Agt/FinInstnId/BICFI",  # the owner, by BIC (profile)
        "cycle": "RptgReq/RptgSeq/EQSeq",
    },
    reads_state=True,
    asks=_asks,
    # Only a participant asks for its own account's report.
    sender="instructing",
    flow=reports.account_request,
)
