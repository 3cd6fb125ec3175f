"""The flow of a payment status enquiry (pacs.028): who may ask, and who answers.

Only the payment's instructing party (from the payment's side) or its receiver (from the other
side) may ask, by the payment's correlation; anyone else is refused (AG01), an unknown payment
waits on the retry topics (it may have overtaken its payment), then is refused.

The gateway answers with a pacs.002 of what it knows (`answer_for`): held for the cap, refused,
cancelled, rejected or returned by the receiver, in a cycle being settled, settled in a cycle,
or the receiver's own last status. One case is not the gateway's to tell: a payment forwarded
to its receiver, which has said nothing of it yet, in a cycle still open. Its status is the
receiver's to give: the instructing party's enquiry is forwarded to the receiver, whose
pacs.002 comes back as any status does. The receiver asking about it is told it was accepted
and forwarded to it (ACSP).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.canonical import Business, OriginalGroup, StatusRequest
from gateway.carry import Rewrite
from gateway.correlations import PaymentFacts, payment_key
from gateway.flows.base import Answer, Flow, Result

# The receiver's statuses, most final first: the one an answer repeats.
_FINALITY = ("ACSC", "ACCC", "ACSP", "ACWC", "ACCP", "ACTC", "PDNG", "RCVD")


@dataclass(frozen=True)
class Known:
    status: str  # ExternalPaymentTransactionStatus1Code
    info: str  # AddtlInf: what the gateway knows, in words (105 characters at most)
    reason: str | None = None  # ExternalStatusReason1Code, for a refusal


def answer_for(facts: PaymentFacts, held: bool) -> Known | None:
    """What the gateway tells of a payment (None: the receiver's to tell). Pure: the same
    facts give the same answer."""
    cycle = facts.cycle or "-"
    if facts.held == "queued":
        return Known("PDNG", "held for its payer's net debit cap; released when credits make room")
    if facts.held in ("refusing", "refused"):
        return Known("RJCT", "refused: over its payer's net debit cap", "AM04")
    if facts.held == "cancelled":
        return Known("CANC", "cancelled while held, before it reached its receiver")
    if held:  # held, by a correlation, but its hold not found: said, not guessed
        return Known("PDNG", "held for its payer's net debit cap")
    if facts.returned:
        return Known("ACSC", f"returned by its receiver (pacs.004); booked in cycle {cycle}")
    if "CNCL" in facts.resolutions:
        return Known("CANC", "cancelled by its receiver at the instructing party's request")
    if "RJCT" in facts.statuses or facts.obligation == "void":
        return Known("RJCT", "rejected by its receiver")
    if facts.cycle_status == "settled":
        return Known("ACSC", f"settled in cycle {cycle}")
    if facts.cycle_status in ("closing", "instructed"):
        return Known("ACSP", f"in cycle {cycle}, being settled by the RTGS")
    if facts.cycle_status == "failed":
        return Known("PDNG", f"its cycle {cycle} failed at the RTGS; the operator decides")
    said = [s for s in _FINALITY if s in facts.statuses]
    if said:
        return Known(said[0], f"as its receiver reported; settles in cycle {cycle}")
    return None


def status_request(flow: Flow, body: Business) -> Result:
    req = body
    assert isinstance(req, StatusRequest), type(req).__name__
    uetr = req.original_uetr
    found = flow.facts.get(f"payment:{uetr}")
    facts = found if isinstance(found, PaymentFacts) else PaymentFacts(uetr)
    entry = flow.known.find(payment_key(uetr))
    held = entry is None and (entry := flow.known.find_held(payment_key(uetr))) is not None
    if entry is None and facts.payer is not None:
        # Refused or cancelled while held: it never reached a receiver, and only its payer
        # may ask. Named back as the payer named it.
        entitled = flow.authorise(
            facts.payer, req.instructing.bic if req.instructing is not None else None
        )
        known = answer_for(facts, held=True)
        assert known is not None, "a hold always has an answer"
        answer = Answer(uetr, req.original_group, known.status, known.info, known.reason)
        return Result(req, answer=answer, authorised=entitled)
    if entry is None:
        raise flow.uncorrelated(f"no payment with UETR {uetr} passed through the gateway")
    # The payment's instructing party asks from its side, its receiver from the other.
    by_instructor = flow.source == entry.source
    entitled = flow.authorise(
        entry.instructing if by_instructor else entry.receiver,
        req.instructing.bic if req.instructing is not None else None,
    )
    known = answer_for(facts, held)
    if known is None and by_instructor:
        # Forwarded, not answered yet: the receiver's to tell. It knows the payment by the
        # ids the gateway gave it.
        original = OriginalGroup(entry.outbound_msg_id, entry.msg_def, entry.outbound_created)
        return Result(
            req, to=entry.receiver, rewrite=Rewrite("", "", original=original), authorised=entitled
        )
    if known is None:
        known = Known("ACSP", "accepted by the gateway and forwarded to you")
    # The enquirer knows the payment by the ids it sent (instructing) or received (receiver).
    if by_instructor:
        original = OriginalGroup(entry.msg_id, entry.msg_def, entry.created)
    else:
        original = OriginalGroup(entry.outbound_msg_id, entry.msg_def, entry.outbound_created)
    answer = Answer(uetr, original, known.status, known.info, known.reason)
    return Result(req, answer=answer, authorised=entitled)
