"""The flow of a credit transfer (pacs.008 customer, pacs.009 institution): sent by its
instructing agent, from its side to the other, settled in the scheme; books its obligation
(none for a pacs.009 advice of a cover settled elsewhere) and remembers it for its answers."""

from __future__ import annotations

import dataclasses

from gateway.canonical import Business, Obligation, Payment
from gateway.carry import Rewrite, unstructured_address
from gateway.correlations import Correlation, payment_key
from gateway.flows.base import Flow, Result


def payment(flow: Flow, body: Business) -> Result:
    p = body
    assert isinstance(p, Payment), type(p).__name__
    ctx, header, source = flow.ctx, flow.header, flow.source
    # The payer is the instructing agent, however the message names it (BIC, member id).
    entitled = flow.authorise(p.instructing.bic, p.instructing.bic)
    flow.sides(p.instructing.bic, p.instructed.bic)
    _settles_in_the_scheme(flow, p)
    settlement_date, notes = flow.settlement_date(p.settlement_date)
    if settlement_date != p.settlement_date:  # rolled (settlement_date_policy = "roll")
        p = dataclasses.replace(p, settlement_date=settlement_date)
    correlation = Correlation(
        key=payment_key(p.uetr),
        source=source,
        sender_bic=header.sender if header else p.instructing.bic,
        biz_msg_idr=header.biz_msg_idr if header else None,
        msg_id=p.msg_id,
        msg_def=ctx.msg.msg_def,
        created=p.created,
        outbound_biz_msg_idr="",
        outbound_msg_id="",
        instructing=p.instructing.bic,
        receiver=p.instructed.bic,
    )
    obligations = [Obligation(p.instructing.bic, p.instructed.bic, p.amount, p.uetr)]
    if p.kind == "institution" and p.settlement_method == "COVE":
        # A pacs.009 ADV: the advice of a transfer settled by cover outside the scheme.
        obligations = []
        notes.append(
            "pacs.009 with SttlmMtd COVE: an advice of a transfer settled by cover outside "
            "the scheme; carried, no obligation booked"
        )
    return Result(
        p,
        obligations=obligations,
        correlation=correlation,
        notes=notes,
        rewrite=Rewrite("", "", settlement_date=settlement_date),
        authorised=entitled,
    )


def _settles_in_the_scheme(flow: Flow, p: Payment) -> None:
    """Business refusals of a payment the profiles accept (pacs.002 RJCT, not FF01)."""
    ctx = flow.ctx
    if p.kind == "customer" and p.settlement_method == "COVE":
        raise ctx.refuse(
            "NARR",
            "SttlmMtd COVE: the connect scheme settles each payment between its instructing "
            "and instructed agents in net cycles; it does not carry a customer transfer "
            "whose cover goes elsewhere (settle it in the scheme: CLRG, INDA or INGA)",
        )
    if flow.config.translation.unstructured_address == "refuse":
        where = unstructured_address(ctx.msg.document)
        if where is not None:
            raise ctx.refuse(
                "NARR",
                f"{where}: an unstructured-only postal address (AdrLine without TwnNm and "
                "Ctry) is not accepted (translation.unstructured_address = refuse); send a "
                "structured or hybrid address",
            )
