"""The flows of a cancellation (docs/domain.md, "Cancellations"): a request by the payment's
instructing party, forwarded or, for a payment still held, answered here; its resolution by
the payment's receiver, back to the requester (CNCL voids the payment while its cycle is open)."""

from __future__ import annotations

from gateway.canonical import Business, CancellationRequest, CancellationResolution, OriginalGroup
from gateway.carry import Rewrite
from gateway.correlations import Correlation, cancellation_key, payment_key
from gateway.flows.base import Flow, Result


def request(flow: Flow, body: Business) -> Result:
    """A camt.056: forwarded to the payment's receiver, or (the payment still held for its
    cap) answered CNCL by the gateway, which the batch's transaction decides."""
    req = body
    assert isinstance(req, CancellationRequest), type(req).__name__
    ctx, known, header, source = flow.ctx, flow.known, flow.header, flow.source
    uetr = req.original_uetr
    entry = known.find(payment_key(uetr))
    held = entry is None and (entry := known.find_held(payment_key(uetr))) is not None
    if entry is None:
        # Retried first (it may have overtaken its payment), then refused RJCR NOOR.
        raise flow.uncorrelated(
            f"no payment with UETR {uetr} was accepted from this side by the gateway",
            "NOOR",
        )
    if entry.source != source:
        raise ctx.refuse(
            "AG01",
            f"payment {uetr} came from the {entry.source} side: only its instructing "
            "participant may ask to cancel it",
        )
    # Only the payment's instructing party asks to cancel it (or one sending for it).
    entitled = flow.authorise(entry.instructing, req.assigner.bic)
    requester = header.sender if header else req.assigner.bic
    correlation = Correlation(
        key=cancellation_key(uetr),
        source=source,
        sender_bic=requester,
        biz_msg_idr=header.biz_msg_idr if header else None,
        # The payment, as the requester knows it: what the resolution names back to it.
        msg_id=entry.msg_id,
        msg_def=entry.msg_def,
        created=entry.created,
        outbound_biz_msg_idr="",
        outbound_msg_id="",
        instructing=entry.instructing,
        receiver=entry.receiver,  # the payment's receiver resolves the request
    )
    # The other side knows the payment by the ids the gateway gave it.
    original = OriginalGroup(entry.outbound_msg_id, entry.msg_def, entry.outbound_created)
    notes = []
    if req.original_group is not None and req.original_group.created and not original.created:
        notes.append(
            "OrgnlCreDtTm: the payment was forwarded before the gateway kept its creation "
            "time; left out rather than sent wrong"
        )
    return Result(
        req,
        correlation=correlation,
        held_cancel=uetr if held else None,
        notes=notes,
        rewrite=Rewrite("", "", original=original),
        authorised=entitled,
    )


def resolution(flow: Flow, body: Business) -> Result:
    """A camt.029 answering a request the gateway forwarded: back to the requester. CNCL
    voids the payment's obligation while its cycle is open; anything else changes
    nothing (once netted, the money comes back by a pacs.004 return)."""
    r = body
    assert isinstance(r, CancellationResolution), type(r).__name__
    known, target = flow.known, flow.target
    uetr = r.original_uetr
    entry = known.find(cancellation_key(uetr))
    if entry is None or entry.source != target:
        raise flow.uncorrelated(
            f"no cancellation request for payment {uetr} was sent by the gateway to this side",
        )
    assigner = r.assigner.bic if r.assigner is not None else None
    entitled = flow.authorise(entry.receiver, assigner)
    # No Sts/Conf: a duplicate of another case (DplctOf), a refused modification, an
    # assignment cancelled: carried back, with no effect. Any other confirmation than CNCL
    # (an ISO code: gateway/code_sets.py) is carried back with no effect either.
    original = OriginalGroup(entry.msg_id, entry.msg_def, entry.created)
    return Result(
        r,
        to=entry.sender_bic,
        voids_open=[uetr] if r.status == "CNCL" else [],
        rewrite=Rewrite("", "", original=original),
        authorised=entitled,
    )
