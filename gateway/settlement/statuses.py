"""What state a thing of the settlement domain is in, as enums rather than bare strings.

StrEnum: each member is the very string the store keeps and the events and reports carry, so
rows, JSON and SQL need no conversion, and a misspelt status is a name error, not a silent
mismatch.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class ObligationStatus(StrEnum):
    OPEN = "open"  # booked into its cycle, netted at its close
    VOID = "void"  # undone while its cycle was open (rejected, cancelled): never netted
    REVERSED = "reversed"  # undone once netted: a reversing obligation in the open cycle


class CycleStatus(StrEnum):
    OPEN = "open"  # obligations join it
    CLOSING = "closing"  # frozen at its cut-off, being netted
    INSTRUCTED = "instructed"  # its settlement instruction(s) sent, awaiting the RTGS
    SETTLED = "settled"  # every instruction confirmed (or nothing to settle)
    FAILED = "failed"  # the RTGS refused an instruction: nothing reopens


class HeldStatus(StrEnum):
    QUEUED = "queued"  # waiting for room under its payer's cap
    RELEASED = "released"  # booked and forwarded once room appeared
    REFUSING = "refusing"  # refused for the cap: its reject being queued
    REFUSED = "refused"  # refused, its reject queued
    CANCELLED = "cancelled"  # rejected or cancelled while held: never booked


class RecordOutcome(StrEnum):
    """What the pipeline did with one input record: for metrics and events."""

    TRANSLATED = "translated"
    REJECTED = "rejected"
    RETRY = "retry"
    RESEND = "resend"  # a PssblDplct resend answered again
    ANSWERED = "answered"  # the RTGS's answer to a settlement instruction: nothing published
    CANCELLED = "cancelled"  # a request whose payment was still held: cancelled here


class SettlementAnswer(NamedTuple):
    """The RTGS's answer to one of a cycle's settlement instructions."""

    cycle: str
    # CycleStatus.SETTLED (ACSC) or FAILED (RJCT), else the interim ISO status as given
    status: str
    reason: str
    instruction: str  # the instruction's MsgId
