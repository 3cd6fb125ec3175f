"""The flow of an account reporting request (camt.060): a participant asks for its own
account's report, and the gateway answers it from what the store holds (`AccountFacts`):
- ReqdMsgNmId camt.052.001.08: the open cycle, intraday: its position (ITBD), what it received
  and paid, its payments held for its cap (entries, PDNG), its headroom under the cap (ITAV);
- ReqdMsgNmId camt.053.001.08: the statement of the closed cycle it names in RptgSeq/EQSeq,
  as the close issued it (the same statement id, the same figures).
Only its own account: the owner it names is the participant the sender is or sends for
(AG01), of the side it sends from (RC01), and an account it names must be that participant's
(AG01). Anything else is refused with a reason, with no effect.
"""

from __future__ import annotations

import json
from decimal import Decimal

from gateway.canonical import (
    AccountReport,
    Business,
    CycleStatement,
    HeldEntry,
    Money,
    ReportRequest,
)
from gateway.correlations import AccountFacts, OpenAccount
from gateway.directory import Participant
from gateway.flows.base import Flow, Result
from gateway.iso20022.ids import derive_id
from gateway.settlement.netting import from_minor
from gateway.settlement.statement_text import statement_id, statement_info

INTRADAY = "camt.052.001.08"
STATEMENT = "camt.053.001.08"


def account_request(flow: Flow, body: Business) -> Result:
    req = body
    assert isinstance(req, ReportRequest), type(req).__name__
    ctx = flow.ctx
    owner = req.owner.bic
    participant = flow.directory.participant(owner)
    if participant is None:
        raise ctx.refuse("RC01", f"AcctOwnr {owner} is not a participant of the scheme")
    if participant.side != flow.source:
        raise ctx.refuse(
            "RC01",
            f"AcctOwnr {owner} is an {participant.side} participant: "
            f"{flow.source}.inbound takes {flow.source} participants' requests",
        )
    # Its own account only: the sender is the owner, or sends for it.
    entitled = flow.authorise(owner, owner)
    if req.account and req.account != participant.settlement_account:
        raise ctx.refuse(
            "AG01",
            f"{owner} may ask only for its own account ({participant.settlement_account}), "
            f"not {req.account}",
        )
    found = flow.facts.get(f"account:{owner}:{req.cycle or ''}")
    facts = found if isinstance(found, AccountFacts) else AccountFacts(owner)
    if req.requested == INTRADAY:
        reply: Business = _intraday(flow, req, participant, facts)
    elif req.requested == STATEMENT:
        reply = _statement(flow, req, participant, facts)
    else:
        raise ctx.refuse(
            "NARR",
            f"ReqdMsgNmId {req.requested}: the gateway reports as {INTRADAY} (the open cycle) "
            f"or {STATEMENT} (a closed cycle)",
        )
    return Result(req, reply=reply, authorised=entitled)


def _intraday(
    flow: Flow, req: ReportRequest, participant: Participant, facts: AccountFacts
) -> AccountReport:
    currency = flow.config.settlement.cap_currency
    account = next((a for a in facts.open if a.currency == currency), None)
    if account is None:
        account = OpenAccount(currency, "", 0, (0, 0), (0, 0), ())
    position = from_minor(account.position, currency)
    cap = participant.net_debit_cap
    info = (
        f"Open cycle {account.cycle}; net debit cap {cap} {currency}"
        if account.cycle
        else f"No {currency} cycle open yet; net debit cap {cap} {currency}"
    )
    return AccountReport(
        msg_id="",  # set when issued
        created="",
        report_id=derive_id("RP", req.msg_id, participant.bic),
        cycle=account.cycle,
        participant=participant.bic,
        name=participant.name,
        account=participant.settlement_account,
        position=Money(abs(position), currency),
        direction="DBIT" if position < 0 else "CRDT",
        received=(account.received[0], from_minor(account.received[1], currency)),
        paid=(account.paid[0], from_minor(account.paid[1], currency)),
        held=tuple(
            HeldEntry(reference, Money(from_minor(units, currency), currency))
            for reference, units in account.held
        ),
        headroom=Money(cap + position, currency),
        request=(req.msg_id, "camt.060.001.05"),
        info=info,
    )


def _statement(
    flow: Flow, req: ReportRequest, participant: Participant, facts: AccountFacts
) -> CycleStatement:
    closed = facts.closed
    if closed is None or closed.summary is None or closed.status not in ("instructed", "settled"):
        raise flow.ctx.refuse(
            "NARR", f"no closed cycle {req.cycle or '(none named in RptgSeq/EQSeq)'} to state"
        )
    report = json.loads(closed.summary)
    currency = str(report["currency"])
    rows = {str(r["participant"]): r for r in report["participants"]}
    row = rows.get(participant.bic, {})
    position = Decimal(str(row.get("position", "0")))
    cut_off = closed.cut_off or ""
    return CycleStatement(
        msg_id="",  # set when issued
        created=cut_off,
        statement_id=statement_id(closed.id, participant.bic),  # as the close issued it
        cycle=closed.id,
        participant=participant.bic,
        name=participant.name,
        account=participant.settlement_account,
        position=Money(abs(position), currency),
        direction="DBIT" if position < 0 else "CRDT",
        cut_off_date=cut_off[:10],
        received=(int(row.get("received_count", 0)), Decimal(str(row.get("received", "0")))),
        paid=(int(row.get("paid_count", 0)), Decimal(str(row.get("paid", "0")))),
        info=statement_info(closed.id, closed.instruction),
        opened=closed.opened,
        cut_off=cut_off or None,
    )
