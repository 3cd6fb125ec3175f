"""The flows of a payment's answers: a status report (RJCT voids the payment), a return (books
the money back), a message reject; each sent by whoever received the original, as correlated."""

from __future__ import annotations

import dataclasses

from gateway.canonical import (
    Business,
    MessageReject,
    Obligation,
    OriginalGroup,
    PaymentReturn,
    StatusReport,
)
from gateway.carry import Rewrite
from gateway.correlations import reference
from gateway.flows.base import Flow, Result


def status(flow: Flow, body: Business) -> Result:
    s = body
    assert isinstance(s, StatusReport), type(s).__name__
    ctx = flow.ctx
    t = s.transaction
    group = s.group
    if t is None and group is None:
        raise ctx.refuse("NARR", "a pacs.002 needs a group or a transaction status")
    if t is not None and not t.status:
        raise ctx.refuse("NARR", "TxInfAndSts without TxSts: the status is the answer")
    uetr = t.original_uetr if t else None
    orgnl_msg = (t.original_group.msg_id if t else None) or (
        group.original_group.msg_id if group else None
    )
    entry = flow.original(uetr, orgnl_msg)
    # The payment's receiver reports on it, and no one else.
    named = t.instructing.bic if t is not None and t.instructing is not None else None
    entitled = flow.authorise(entry.receiver, named)
    original = OriginalGroup(entry.msg_id, entry.msg_def, entry.created)
    if t is not None:
        t = dataclasses.replace(t, original_group=original)
    if group is not None:
        group = dataclasses.replace(group, original_group=original)
    rejected = (t is not None and t.status == "RJCT") or (
        group is not None and group.status == "RJCT"
    )
    cancels = [reference(entry)] if rejected else []
    return Result(
        dataclasses.replace(s, transaction=t, group=group),
        to=entry.sender_bic,
        cancels=cancels,
        rewrite=Rewrite("", "", original=original),
        authorised=entitled,
    )


def payment_return(flow: Flow, body: Business) -> Result:
    r = body
    assert isinstance(r, PaymentReturn), type(r).__name__
    ctx = flow.ctx
    entry = flow.original(r.original_uetr, r.original_group.msg_id)
    # The payment's receiver returns it, to the payment's instructing agent.
    entitled = flow.authorise(entry.receiver, r.instructing.bic)
    if entry.instructing is not None and r.instructed.bic != entry.instructing:
        raise ctx.refuse(
            "RC01",
            f"InstdAgt {r.instructed.bic}: a return goes back to the payment's instructing "
            f"agent, {entry.instructing}",
        )
    flow.sides(r.instructing.bic, r.instructed.bic)
    settlement_date, notes = flow.settlement_date(r.settlement_date)
    original = OriginalGroup(entry.msg_id, entry.msg_def, entry.created)
    r = dataclasses.replace(r, settlement_date=settlement_date, original_group=original)
    obligation = Obligation(
        r.instructing.bic, r.instructed.bic, r.returned_amount, f"return:{r.original_uetr}"
    )
    return Result(
        r,
        to=entry.sender_bic,
        obligations=[obligation],
        notes=notes,
        rewrite=Rewrite("", "", settlement_date=settlement_date, original=original),
        authorised=entitled,
    )


# -- Bond Connect -------------------------------------------------------------------------


def message_reject(flow: Flow, body: Business) -> Result:
    """An admi.002 of a message the gateway sent: back to that message's sender."""
    assert isinstance(body, MessageReject), type(body).__name__
    entry = flow.known.find_outbound(body.reference)
    if entry is None or entry.source != flow.target:
        raise flow.uncorrelated(
            f"admi.002 refers to {body.reference}, which the gateway did not send"
        )
    entitled = flow.authorise(entry.receiver)
    fixed = dataclasses.replace(body, reference=entry.biz_msg_idr or entry.msg_id)
    return Result(fixed, to=entry.sender_bic, authorised=entitled)
