"""What a flow is given (`Flow`) and what it gives back (`Result`), and the checks several
families share: who may send it, which sides its agents belong to, its settlement date, the
original it answers."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from gateway.authorisation import From, authorise
from gateway.calendars import Calendars
from gateway.canonical import Business, Header, Obligation, OriginalGroup
from gateway.carry import Rewrite
from gateway.codec.context import DecodeContext
from gateway.config import Config
from gateway.correlations import Correlation, Correlations, Facts, payment_key
from gateway.directory import Directory
from gateway.iso20022 import errors
from gateway.iso20022.reader import BusinessMessage, message_ids
from gateway.sides import Side

if TYPE_CHECKING:
    from gateway.messages import MessageType


@dataclass(frozen=True)
class Answer:
    """The gateway's own answer to a message (a status enquiry): a pacs.002 back to its sender
    about the payment `uetr`, as the sender knows it (`original`)."""

    uetr: str
    original: OriginalGroup | None  # None: the sender did not name it, nor does the gateway
    status: str  # TxSts
    info: str  # StsRsnInf/AddtlInf
    reason: str | None = None  # StsRsnInf/Rsn/Cd


@dataclass
class Result:
    """What a flow decided for a message it accepts."""

    body: Business
    to: str | None = None  # header To; None: the target side's system
    obligations: list[Obligation] = field(default_factory=list)
    correlation: Correlation | None = None
    cancels: list[str] = field(default_factory=list)
    voids_open: list[str] = field(default_factory=list)
    held_cancel: str | None = None
    notes: list[str] = field(default_factory=list)
    # What a carried type's document gets rewritten (gateway/carry.py; which types are carried
    # is declared in gateway/messages/). None for the encoded ones.
    rewrite: Rewrite | None = None
    # The party its sender was authorised for, as `Flow.authorise` returned it: nothing is
    # translated that its sender may not send.
    authorised: str | None = None
    # Answered by the gateway, back to the sender, instead of forwarded: a status (a
    # pacs.002), or a body the gateway issues (a report).
    answer: Answer | None = None
    reply: Business | None = None


@dataclass(frozen=True)
class Flow:
    """One decoded message, who sent it, where it goes, and what a flow may consult: the
    reference data and the correlations handed to this translation."""

    ctx: DecodeContext
    kind: MessageType
    header: Header | None
    sender: From | None  # AppHdr Fr, resolved
    source: Side
    target: Side
    known: Correlations
    config: Config
    calendars: Calendars
    # What the store knew of what a request that reads state asks about, when it was decided
    # ("payment:<UETR>", "account:<BIC>:<cycle>").
    facts: Mapping[str, Facts] = field(default_factory=dict)

    @property
    def msg(self) -> BusinessMessage:
        return self.ctx.msg

    @property
    def directory(self) -> Directory:
        return self.ctx.directory

    def authorise(self, entitled: str | None, named: str | None = None) -> str:
        """The entitled party, once the sender is shown to send this message for it, by the
        type's role; refused otherwise (gateway/authorisation.py). Every flow calls it before
        anything else is decided."""
        return authorise(self.msg, self.kind.sender, entitled, self.sender, named=named)

    def uncorrelated(self, detail: str, reason: str = "NARR") -> errors.Uncorrelated:
        """An answer whose original is not known (yet: it may have overtaken it)."""
        return errors.Uncorrelated(detail, ids=message_ids(self.msg), reason=reason)

    def sides(self, instructing: str, instructed: str) -> None:
        """A payment goes from a participant of its source side to one of the other."""
        directory = self.directory
        payer, payee = directory.participant(instructing), directory.participant(instructed)
        if payer is not None and payer.side != self.source:
            raise self.ctx.refuse(
                "RC01",
                f"InstgAgt {instructing} is an {payer.side} participant: "
                f"{self.source}.inbound takes {self.source} participants' instructions",
            )
        if payee is not None and payee.side != self.target:
            raise self.ctx.refuse(
                "RC01",
                f"InstdAgt {instructed} is an {payee.side} participant: "
                f"the gateway only carries payments to the {self.target} side",
            )

    def settlement_date(self, value: str) -> tuple[str, list[str]]:
        """The settlement date, a business day on both sides, or rolled to one by policy
        (with a note); TM01 otherwise."""
        day = calendar_day(self.ctx, value)
        if self.calendars.is_common_business_day(day):
            return value, []
        closed = ", ".join(self.calendars.closed_on(day))
        if self.config.translation.settlement_date_policy == "roll":
            rolled = self.calendars.next_common_business_day(day)
            if rolled is not None:
                return rolled.isoformat(), [
                    f"settlement date {value} is not a business day ({closed}): rolled to "
                    f"{rolled.isoformat()}"
                ]
        raise self.ctx.refuse(
            "TM01",
            f"settlement date {value} is not a business day on both sides (closed: {closed})",
        )

    def original(self, uetr: str | None, orgnl_msg_id: str | None) -> Correlation:
        """The payment the gateway sent to this message's side that it answers."""
        entry = self.known.find(payment_key(uetr)) if uetr else None
        if entry is None and orgnl_msg_id:
            entry = self.known.find_outbound(orgnl_msg_id)
        if entry is None or entry.source != self.target:
            raise self.uncorrelated(
                f"no payment with UETR {uetr or '-'} / message {orgnl_msg_id or '-'} was "
                f"sent by the gateway to this side",
            )
        return entry


# A family's flow, as its module in gateway/messages/ names it.
FlowFunction = Callable[[Flow, Business], Result]

# xs:date, as the profiles take it: surrounding blanks collapse, and a time zone may follow.
_XS_DATE = re.compile(r"\s*([0-9]{4})-([0-9]{2})-([0-9]{2})(Z|[+-][0-9]{2}:[0-9]{2})?\s*")


def calendar_day(ctx: DecodeContext, value: str) -> date:
    """The business day a settlement date names. Its time zone, if any, qualifies the day and
    does not move it: the scheme's calendars are both UTC+8's. A year beyond 9999, or before
    year 1, which xs:date allows, is no settlement date (DT01)."""
    try:
        return date.fromisoformat(value)  # the usual form, in C
    except ValueError:
        pass
    found = _XS_DATE.fullmatch(value)
    try:
        if found is None:
            raise ValueError(value)
        return date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        raise ctx.refuse("DT01", f"settlement date {value.strip()} is not a usable date") from None
