"""One inbound message in, one outbound message out: the core the pipeline calls.

    read (hardened) -> validate (source profile) -> keys -> decode (source adapter)
      -> business checks (directory, calendars, correlation) -> encode (target adapter)
      -> validate (target profile) -> envelope

Any `MessageError` on the way becomes the reject for the source side. An accepted instruction
also yields its settlement obligations and a correlation entry (so the answers that come back
from the other side can be routed to the original sender); the pipeline stores both in the same
transaction as the outbox row. Nothing here does I/O except reading the data files at start.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from lxml import etree

from gateway.adapters import dialect
from gateway.authorisation import From, authorise, sender_of
from gateway.canonical import (
    Business,
    CancellationRequest,
    CancellationResolution,
    CashLeg,
    Header,
    MessageReject,
    Obligation,
    OriginalGroup,
    Payment,
    PaymentReturn,
    SecuritiesAccount,
    SecuritiesConfirmation,
    SecuritiesInstruction,
    SecuritiesStatus,
    SettlementParties,
    SettlementParty,
    StatusReport,
)
from gateway.carry import Rewrite, carry, set_aside, unstructured_address
from gateway.clock import Clock, now_utc8
from gateway.codec import decode_header
from gateway.codec.context import DecodeContext
from gateway.config import Config
from gateway.correlations import (
    CYCLE,
    Correlation,
    Correlations,
    MemoryCorrelations,
    cancellation_key,
    payment_key,
    reference,
    securities_key,
)
from gateway.directory import Directory, ReloadingDirectory
from gateway.iso20022 import errors
from gateway.iso20022.builders import (
    Party,
    RejectContext,
    build_camt029,
    build_reject,
    iso_datetime,
    reject_definition,
)
from gateway.iso20022.ids import derive_id
from gateway.iso20022.keys import IdempotencyKeys, extract_keys
from gateway.iso20022.reader import BusinessMessage, message_ids, read_message, refusal
from gateway.issuing import issue, issue_document
from gateway.messages.registry import ISSUED_BY_GATEWAY, decode, message_type
from gateway.reference import ReferenceData
from gateway.settlement.statuses import CycleStatus, SettlementAnswer
from gateway.sides import Side, other_side
from gateway.signatures import verify

log = logging.getLogger(__name__)

SETTLEMENT_REQUEST = "pacs.029.001.01"
# What the gateway sends the RTGS to settle a cycle (settlement.instruction).
GATEWAY_INSTRUCTIONS = (SETTLEMENT_REQUEST, "pacs.009.001.08")


# xs:date, as the profiles take it: surrounding blanks collapse, and a time zone may follow.
_XS_DATE = re.compile(r"\s*([0-9]{4})-([0-9]{2})-([0-9]{2})(Z|[+-][0-9]{2}:[0-9]{2})?\s*")


def _calendar_day(ctx: DecodeContext, value: str) -> date:
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


def _original_def(s: StatusReport) -> str | None:
    if s.group is not None:
        return s.group.original_group.msg_def
    return s.transaction.original_group.msg_def if s.transaction is not None else None


@dataclass(frozen=True)
class Outcome:
    """Either a translation for the other side, or a reject for the source side."""

    accepted: bool
    message: bytes
    destination: Side  # whose outbound topic `message` goes to
    msg_def: str | None
    keys: IdempotencyKeys | None
    error: errors.MessageError | None
    notes: tuple[str, ...] = ()
    obligations: tuple[Obligation, ...] = ()
    correlation: Correlation | None = None
    cancels: tuple[
        str, ...
    ] = ()  # references whose obligations a rejection by the other side voids
    # The RTGS's answer to one of a cycle's settlement instructions. Nothing is published
    # for it.
    settlement: SettlementAnswer | None = None
    # A reject's own definition (admi.002, pacs.002, sese.024); `msg_def` is the input's.
    reject_def: str | None = None
    # References whose obligations are voided only while still in their open cycle (a
    # cancellation accepted by the other side: once netted, only a return gives money back).
    voids_open: tuple[str, ...] = ()
    # A cancellation request for a payment held for its cap when it was read: if the payment
    # is still held when the batch commits, the gateway cancels it and answers the requester
    # with `held_answer` (a camt.029 CNCL) instead of forwarding `message`.
    held_cancel: str | None = None
    held_answer: bytes = b""


@dataclass
class _Result:
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
    # The party its sender was authorised for, as `Translator._authorise` returned it: nothing
    # is translated that its sender may not send.
    authorised: str | None = None


class Translator:
    def __init__(
        self,
        config: Config,
        clock: Clock = now_utc8,
        *,
        directory: ReloadingDirectory | None = None,
        correlations: Correlations | None = None,
        reference: ReferenceData | None = None,
    ) -> None:
        self.config = config
        # Its reference data (loaded from the configuration unless given): read, never set.
        self.reference = reference or ReferenceData.load(config, clock, directory)
        self.clock = self.reference.clock
        self.profiles = self.reference.profiles
        self.directory = self.reference.directory
        self.calendars = self.reference.calendars
        self.charset = self.reference.charset
        self.signer = self.reference.signer
        # The offline CLI's own (it learns originals as it goes); set here only: the pipeline
        # passes the batch's to each call instead.
        self.correlations: Correlations = correlations or MemoryCorrelations()

    def prepare(self) -> Translator:
        """Its reference data made ready now (a service, at start)."""
        self.reference.prepare()
        return self

    # -- the one entry point -------------------------------------------------------------
    def process(
        self, data: bytes, source: Side, correlations: Correlations | None = None
    ) -> Outcome:
        """`correlations`: the originals answers may name (default: the translator's own, which
        the offline CLI fills as it goes)."""
        msg: BusinessMessage | None = None
        try:
            msg = self.read(data, source)
            return self.process_message(msg, extract_keys(msg), source, correlations)
        except errors.MessageError as exc:
            return self.reject(exc, source, msg)

    def read(self, data: bytes, source: Side) -> BusinessMessage:
        """Read and validate against the source profile; raises `MessageError`."""
        msg = read_message(data, max_bytes=self.config.gateway.max_message_bytes)
        self.profiles[source].validate(msg)
        # Who sent it, before anything else is looked at (a refusal here claims only the
        # payload's hash: an unsigned copy cannot take a genuine message's ids).
        verify(
            msg,
            self.directory.current(),
            self.clock(),
            required=self.config.security.require_signatures,
        )
        return msg

    def process_message(
        self,
        msg: BusinessMessage,
        keys: IdempotencyKeys,
        source: Side,
        correlations: Correlations | None = None,
    ) -> Outcome:
        """Translate a message already read and validated (the pipeline reads first, to look up
        its keys and correlations in the state store, and passes them here)."""
        known = correlations if correlations is not None else self.correlations
        try:
            return self._translate(msg, keys, source, known)
        except errors.MessageError as exc:
            return self.reject(exc, source, msg)

    def _answer_context(self, source: Side) -> RejectContext:
        side = self.config.side(source)
        return RejectContext(
            side=source,
            gateway=Party(self.config.gateway.bic),
            fallback_to=Party(side.system_bic),
            created=self.clock(),
            biz_svc=side.biz_svc,
            sign=self.signer.sign if self.signer is not None else None,
        )

    def reject(
        self, error: errors.MessageError, source: Side, msg: BusinessMessage | None = None
    ) -> Outcome:
        ctx = self._answer_context(source)
        if error.ids is None and msg is not None:
            error.ids = message_ids(msg)  # raised below the codecs, which do not know them
        sese_tx = msg.doc_text("SctiesSttlmTxInstr/TxId") if msg is not None else None
        document = msg.document if msg is not None else None
        return Outcome(
            False,
            build_reject(error, ctx, sese_tx_id=sese_tx, document=document),
            source,
            msg.msg_def if msg else None,
            None,
            error,
            reject_def=reject_definition(error, sese_tx_id=sese_tx, readable=document is not None),
        )

    def cancelled_here(self, msg: BusinessMessage, source: Side) -> bytes:
        """The camt.029 CNCL the gateway answers a cancellation request with when it cancels
        the held payment itself."""
        return build_camt029(self._answer_context(source), message_ids(msg), msg.document, "CNCL")

    def prime(self, originals: Iterable[bytes], source: Side) -> list[Outcome]:
        """Process originals only to learn their correlations (offline `translate --original`)."""
        return [self.process(data, source) for data in originals]

    # -- translation ------------------------------------------------------------------------
    def _translate(
        self, msg: BusinessMessage, keys: IdempotencyKeys, source: Side, known: Correlations
    ) -> Outcome:
        target = other_side(source)
        directory = self.directory.current()
        body = decode(DecodeContext(dialect(source), directory, msg))
        if msg.msg_def in ISSUED_BY_GATEWAY:
            kind = message_type(msg.msg_def)
            raise refusal(
                msg,
                "AG01",
                f"{kind.title}s ({kind.family}) are issued by the gateway only, never accepted "
                "from a side",
            )
        sender = sender_of(msg, directory)  # AppHdr Fr, resolved: every branch authorises it
        if isinstance(body, StatusReport) and _original_def(body) in GATEWAY_INSTRUCTIONS:
            entry = self._cycle_entry(body, known)
            if entry is not None or _original_def(body) == SETTLEMENT_REQUEST:
                return self._settlement_answer(msg, body, keys, source, entry, sender)
        header = decode_header(msg)
        now = self.clock()
        result = self._route(msg, body, header, sender, source, target, directory, known)
        assert result.authorised is not None, f"{msg.msg_def} translated unauthorised"

        msg_id = derive_id("GWM", keys.message)
        biz_id = derive_id("GW", keys.message)
        if message_type(msg.msg_def).carried:
            rewrite = result.rewrite or Rewrite("", "")
            carried = carry(
                msg,
                dataclasses.replace(rewrite, msg_id=msg_id, created=iso_datetime(now)),
                source=dialect(source),
                target=dialect(target),
                directory=directory,
                charset=self.charset,
                text_limits=self.profiles[target].text_limits(msg.msg_def),
            )
            if self.config.translation.uncarried == "supplementary":
                set_aside(
                    carried.document, self.profiles[target].schema(msg.msg_def), carried.notes
                )
            data = issue_document(
                carried.document,
                msg.msg_def,
                side=target,
                biz_msg_idr=biz_id,
                created=now,
                config=self.config,
                to=result.to,
                check=lambda msg_def, root: self._check_output(msg, msg_def, root, target),
            )
            issued_notes: tuple[str, ...] = tuple(carried.notes)
        else:
            assert result.rewrite is None, f"{msg.msg_def} is not carried: nothing to rewrite"
            issued = issue(
                result.body,
                side=target,
                to=result.to,
                msg_id=msg_id,
                biz_msg_idr=biz_id,
                created=now,
                config=self.config,
                directory=directory,
                charset=self.charset,
                profiles=self.profiles[target],
                source=msg,
                check=lambda msg_def, root: self._check_output(msg, msg_def, root, target),
            )
            data, issued_notes = issued.data, issued.notes
        correlation = result.correlation
        if correlation is not None:
            correlation = dataclasses.replace(
                correlation,
                outbound_biz_msg_idr=biz_id,
                outbound_msg_id=msg_id,
                outbound_created=iso_datetime(now),
            )
            if result.held_cancel is None:
                # A request for a held payment is forwarded only if the payment was released
                # by the time its batch commits: nothing may answer it before then.
                known.remember(correlation)
        held_answer = self.cancelled_here(msg, source) if result.held_cancel else b""
        return Outcome(
            True,
            data,
            target,
            msg.msg_def,
            keys,
            None,
            (*result.notes, *issued_notes),
            tuple(result.obligations),
            correlation,
            tuple(result.cancels),
            voids_open=tuple(result.voids_open),
            held_cancel=result.held_cancel,
            held_answer=held_answer,
        )

    def _check_output(
        self, msg: BusinessMessage, msg_def: str, root: etree._Element, target: Side
    ) -> None:
        """The output must be valid in the target dialect; if not, it is not sent."""
        try:
            self.profiles[target].validate_built(msg_def, root)
        except errors.MessageError as exc:
            log.error(
                "translation of %s produced an invalid %s message: %s", msg.msg_def, target, exc
            )
            raise refusal(
                msg, "NARR", f"cannot be represented in the {target} dialect: {exc.detail}"
            ) from None

    def _route(
        self,
        msg: BusinessMessage,
        body: Business,
        header: Header | None,
        sender: From | None,
        source: Side,
        target: Side,
        directory: Directory,
        known: Correlations,
    ) -> _Result:
        ctx = DecodeContext(dialect(source), directory, msg)
        # Each branch authorises its sender (`_authorise`) before anything else about the
        # message is decided, once it knows who is entitled.
        if isinstance(body, Payment):
            return self._payment(ctx, body, header, sender, source, target, directory)
        if isinstance(body, PaymentReturn):
            return self._return(ctx, body, sender, source, target, directory, known)
        if isinstance(body, StatusReport):
            return self._status(ctx, body, sender, target, known)
        if isinstance(body, SecuritiesInstruction):
            return self._securities(ctx, body, header, sender, source, target, directory)
        if isinstance(body, SecuritiesStatus | SecuritiesConfirmation):
            return self._securities_answer(ctx, body, sender, target, known)
        if isinstance(body, CancellationRequest):
            return self._cancellation(ctx, body, header, sender, source, known)
        if isinstance(body, CancellationResolution):
            return self._resolution(ctx, body, sender, target, known)
        if isinstance(body, MessageReject):
            entry = known.find_outbound(body.reference)
            if entry is None or entry.source != target:
                raise self._uncorrelated(
                    msg, f"admi.002 refers to {body.reference}, which the gateway did not send"
                )
            entitled = self._authorise(msg, entry.receiver, sender)
            fixed = dataclasses.replace(body, reference=entry.biz_msg_idr or entry.msg_id)
            return _Result(fixed, to=entry.sender_bic, authorised=entitled)
        raise AssertionError(f"{msg.msg_def} is registered but not routed")

    def _authorise(
        self,
        msg: BusinessMessage,
        entitled: str | None,
        sender: From | None,
        named: str | None = None,
    ) -> str:
        """The entitled party, once `sender` is shown to send `msg` for it; refused otherwise
        (gateway/authorisation.py)."""
        return authorise(msg, message_type(msg.msg_def).sender, entitled, sender, named=named)

    def _cycle_entry(self, s: StatusReport, known: Correlations) -> Correlation | None:
        """The correlation of the gateway's settlement instruction `s` answers, if it does."""
        original = s.group.original_group if s.group else None
        if original is None and s.transaction is not None:
            original = s.transaction.original_group
        entry = known.find_outbound(original.msg_id) if original else None
        return entry if entry is not None and entry.key.startswith(CYCLE) else None

    def _settlement_answer(
        self,
        msg: BusinessMessage,
        s: StatusReport,
        keys: IdempotencyKeys,
        source: Side,
        entry: Correlation | None,
        sender: From | None,
    ) -> Outcome:
        """A status report on one of a cycle's settlement instructions: the cycle's outcome."""
        rtgs = self.config.settlement.rtgs_side
        if source != rtgs:
            raise refusal(
                msg, "AG01", f"settlement instructions are answered by the {rtgs} side only"
            )
        # Only the configured RTGS system confirms or fails a cycle.
        self._authorise(msg, self.config.side(rtgs).system_bic, sender)
        if entry is None:
            raise self._uncorrelated(
                msg, "no settlement instruction with that message id was sent by the gateway"
            )
        status = (s.group.status if s.group else None) or (
            s.transaction.status if s.transaction else None
        )
        reasons = (s.group.reasons if s.group else ()) + (
            s.transaction.reasons if s.transaction else ()
        )
        text = "; ".join(
            " ".join(filter(None, (r.code or r.proprietary, *r.info))) for r in reasons
        )
        outcome = {"ACSC": CycleStatus.SETTLED, "RJCT": CycleStatus.FAILED}.get(
            status or "", status or "unknown"
        )
        reason = f"{status}: {text}" if text else str(status)
        cycle = entry.key.split(":")[1]
        return Outcome(
            True,
            b"",
            source,
            msg.msg_def,
            keys,
            None,
            settlement=SettlementAnswer(cycle, outcome, reason, entry.outbound_msg_id),
        )

    def _uncorrelated(
        self, msg: BusinessMessage, detail: str, reason: str = "NARR"
    ) -> errors.Uncorrelated:
        return errors.Uncorrelated(detail, ids=message_ids(msg), reason=reason)

    def _sides(
        self,
        ctx: DecodeContext,
        directory: Directory,
        source: Side,
        target: Side,
        instructing: str,
        instructed: str,
    ) -> None:
        payer, payee = directory.participant(instructing), directory.participant(instructed)
        if payer is not None and payer.side != source:
            raise ctx.refuse(
                "RC01",
                f"InstgAgt {instructing} is an {payer.side} participant: "
                f"{source}.inbound takes {source} participants' instructions",
            )
        if payee is not None and payee.side != target:
            raise ctx.refuse(
                "RC01",
                f"InstdAgt {instructed} is an {payee.side} participant: "
                f"the gateway only carries payments to the {target} side",
            )

    def _settlement_date(self, ctx: DecodeContext, value: str) -> tuple[str, list[str]]:
        day = _calendar_day(ctx, value)
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
        raise ctx.refuse(
            "TM01",
            f"settlement date {value} is not a business day on both sides (closed: {closed})",
        )

    def _payment(
        self,
        ctx: DecodeContext,
        p: Payment,
        header: Header | None,
        sender: From | None,
        source: Side,
        target: Side,
        directory: Directory,
    ) -> _Result:
        # The payer is the instructing agent, however the message names it (BIC, member id).
        entitled = self._authorise(ctx.msg, p.instructing.bic, sender, p.instructing.bic)
        self._sides(ctx, directory, source, target, p.instructing.bic, p.instructed.bic)
        self._settles_in_the_scheme(ctx, p)
        settlement_date, notes = self._settlement_date(ctx, p.settlement_date)
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
        return _Result(
            p,
            obligations=obligations,
            correlation=correlation,
            notes=notes,
            rewrite=Rewrite("", "", settlement_date=settlement_date),
            authorised=entitled,
        )

    def _settles_in_the_scheme(self, ctx: DecodeContext, p: Payment) -> None:
        """Business refusals of a payment the profiles accept (pacs.002 RJCT, not FF01)."""
        if p.kind == "customer" and p.settlement_method == "COVE":
            raise ctx.refuse(
                "NARR",
                "SttlmMtd COVE: the connect scheme settles each payment between its instructing "
                "and instructed agents in net cycles; it does not carry a customer transfer "
                "whose cover goes elsewhere (settle it in the scheme: CLRG, INDA or INGA)",
            )
        if self.config.translation.unstructured_address == "refuse":
            where = unstructured_address(ctx.msg.document)
            if where is not None:
                raise ctx.refuse(
                    "NARR",
                    f"{where}: an unstructured-only postal address (AdrLine without TwnNm and "
                    "Ctry) is not accepted (translation.unstructured_address = refuse); send a "
                    "structured or hybrid address",
                )

    def _original(
        self,
        msg: BusinessMessage,
        uetr: str | None,
        orgnl_msg_id: str | None,
        target: Side,
        known: Correlations,
    ) -> Correlation:
        entry = known.find(payment_key(uetr)) if uetr else None
        if entry is None and orgnl_msg_id:
            entry = known.find_outbound(orgnl_msg_id)
        if entry is None or entry.source != target:
            raise self._uncorrelated(
                msg,
                f"no payment with UETR {uetr or '-'} / message {orgnl_msg_id or '-'} was "
                f"sent by the gateway to this side",
            )
        return entry

    def _status(
        self,
        ctx: DecodeContext,
        s: StatusReport,
        sender: From | None,
        target: Side,
        known: Correlations,
    ) -> _Result:
        t = s.transaction
        group = s.group
        if t is None and group is None:
            raise ctx.refuse("NARR", "a pacs.002 needs a group or a transaction status")
        if t is not None and not t.status:
            raise ctx.refuse("NARR", "TxInfAndSts without TxSts: the status is the answer")
        for status in (t.status if t else None, group.status if group else None):
            if status is not None and status not in message_type(ctx.msg.msg_def).codes:
                raise ctx.refuse(
                    "NARR", f"TxSts/GrpSts {status} is not an ISO 20022 payment status code"
                )
        uetr = t.original_uetr if t else None
        orgnl_msg = (t.original_group.msg_id if t else None) or (
            group.original_group.msg_id if group else None
        )
        entry = self._original(ctx.msg, uetr, orgnl_msg, target, known)
        # The payment's receiver reports on it, and no one else.
        named = t.instructing.bic if t is not None and t.instructing is not None else None
        entitled = self._authorise(ctx.msg, entry.receiver, sender, named)
        original = OriginalGroup(entry.msg_id, entry.msg_def, entry.created)
        if t is not None:
            t = dataclasses.replace(t, original_group=original)
        if group is not None:
            group = dataclasses.replace(group, original_group=original)
        rejected = (t is not None and t.status == "RJCT") or (
            group is not None and group.status == "RJCT"
        )
        cancels = [reference(entry)] if rejected else []
        return _Result(
            dataclasses.replace(s, transaction=t, group=group),
            to=entry.sender_bic,
            cancels=cancels,
            rewrite=Rewrite("", "", original=original),
            authorised=entitled,
        )

    def _return(
        self,
        ctx: DecodeContext,
        r: PaymentReturn,
        sender: From | None,
        source: Side,
        target: Side,
        directory: Directory,
        known: Correlations,
    ) -> _Result:
        entry = self._original(ctx.msg, r.original_uetr, r.original_group.msg_id, target, known)
        # The payment's receiver returns it, to the payment's instructing agent.
        entitled = self._authorise(ctx.msg, entry.receiver, sender, r.instructing.bic)
        if entry.instructing is not None and r.instructed.bic != entry.instructing:
            raise ctx.refuse(
                "RC01",
                f"InstdAgt {r.instructed.bic}: a return goes back to the payment's instructing "
                f"agent, {entry.instructing}",
            )
        self._sides(ctx, directory, source, target, r.instructing.bic, r.instructed.bic)
        settlement_date, notes = self._settlement_date(ctx, r.settlement_date)
        original = OriginalGroup(entry.msg_id, entry.msg_def, entry.created)
        r = dataclasses.replace(r, settlement_date=settlement_date, original_group=original)
        obligation = Obligation(
            r.instructing.bic, r.instructed.bic, r.returned_amount, f"return:{r.original_uetr}"
        )
        return _Result(
            r,
            to=entry.sender_bic,
            obligations=[obligation],
            notes=notes,
            rewrite=Rewrite("", "", settlement_date=settlement_date, original=original),
            authorised=entitled,
        )

    # -- Bond Connect -------------------------------------------------------------------------
    def _securities(
        self,
        ctx: DecodeContext,
        s: SecuritiesInstruction,
        header: Header | None,
        sender: From | None,
        source: Side,
        target: Side,
        directory: Directory,
    ) -> _Result:
        flow = dialect(source).securities_flow
        owner = directory.participant(s.owner_bic)
        if owner is None or owner.side != source:
            raise ctx.refuse("RC01", f"account owner {s.owner_bic} is not a {source} participant")
        # The account owner instructs on its account, and no one else.
        entitled = self._authorise(ctx.msg, owner.bic, sender, owner.bic)
        own_side, other = (
            (s.receiving, s.delivering) if s.movement == "RECE" else (s.delivering, s.receiving)
        )
        # The depository where this trade settles in the target market, named by either leg.
        market = next(
            (
                blk.depository
                for blk in (own_side, other)
                if blk is not None
                and (dep := directory.depositories.get(blk.depository)) is not None
                and dep.side == target
            ),
            None,
        )
        nominee = directory.nominee(flow, market) if market else None
        if nominee is None or market is None:
            raise ctx.refuse(
                "RC01",
                f"no {flow} nominee account for a {target} depository in "
                "this instruction (delivering/receiving Dpstry)",
            )
        settlement_date, notes = self._settlement_date(ctx, s.settlement_date)
        obligations = []
        if s.payment == "APMT":
            obligations.append(self._cash_leg(ctx, s, other, directory))
        beneficial = SettlementParty(s.owner_bic, s.owner_lei, s.account)
        moved = SettlementParties(
            market,
            SettlementParty(nominee.owner_bic, None, SecuritiesAccount(nominee.account)),
            beneficial,
        )
        translated = dataclasses.replace(
            s,
            settlement_date=settlement_date,
            owner_bic=nominee.owner_bic,
            owner_lei=None,
            account=SecuritiesAccount(nominee.account),
            receiving=moved if s.movement == "RECE" else s.receiving,
            delivering=moved if s.movement == "DELI" else s.delivering,
        )
        notes.append(
            f"{flow}: account owner {s.owner_bic} held through nominee "
            f"{nominee.owner_bic} account {nominee.account} at {market}"
        )
        correlation = Correlation(
            key=securities_key(s.tx_id),
            source=source,
            sender_bic=header.sender if header else s.owner_bic,
            biz_msg_idr=header.biz_msg_idr if header else None,
            msg_id=s.tx_id,
            msg_def=ctx.msg.msg_def,
            created=None,
            outbound_biz_msg_idr="",
            outbound_msg_id="",
            owner_bic=s.owner_bic,
            owner_lei=s.owner_lei,
            account=s.account,
            instructing=owner.bic,
            receiver=market,  # the depository where it settles answers it
        )
        return _Result(
            translated,
            obligations=obligations,
            correlation=correlation,
            notes=notes,
            authorised=entitled,
        )

    def _cash_leg(
        self,
        ctx: DecodeContext,
        s: SecuritiesInstruction,
        counterparty_block: SettlementParties | None,
        directory: Directory,
    ) -> Obligation:
        cash: CashLeg | None = s.cash
        if cash is None:
            raise ctx.refuse(
                "AM02",
                "a delivery against payment (Pmt APMT) needs SttlmAmt: its "
                "cash leg is settled in the net cycle",
            )
        counterparty = counterparty_block.party1 if counterparty_block else None
        if counterparty is None or directory.participant(counterparty.bic) is None:
            raise ctx.refuse(
                "RC01",
                "the counterparty (Pty1 of the other leg) of a delivery "
                "against payment must be a participant: it pays or is paid",
            )
        payer, payee = (
            (s.owner_bic, counterparty.bic)
            if cash.direction == "DBIT"
            else (counterparty.bic, s.owner_bic)
        )
        return Obligation(payer, payee, cash.amount, securities_key(s.tx_id))

    def _securities_answer(
        self,
        ctx: DecodeContext,
        body: SecuritiesStatus | SecuritiesConfirmation,
        sender: From | None,
        target: Side,
        known: Correlations,
    ) -> _Result:
        entry = known.find(securities_key(body.owner_tx_id))
        if entry is None or entry.source != target:
            raise self._uncorrelated(
                ctx.msg,
                f"no securities instruction {body.owner_tx_id} "
                "was sent by the gateway to this side",
            )
        entitled = self._authorise(ctx.msg, entry.receiver, sender)
        account = entry.account or SecuritiesAccount("")
        restored: Business
        if isinstance(body, SecuritiesConfirmation):
            restored = dataclasses.replace(
                body, owner_bic=entry.owner_bic, owner_lei=entry.owner_lei, account=account
            )
        else:
            details = body.details
            if details is not None:
                details = dataclasses.replace(
                    details, owner_bic=entry.owner_bic, owner_lei=entry.owner_lei, account=account
                )
            restored = dataclasses.replace(body, details=details)
        cancels = (
            [reference(entry)] if isinstance(body, SecuritiesStatus) and not body.accepted else []
        )
        return _Result(restored, to=entry.sender_bic, cancels=cancels, authorised=entitled)

    # -- cancellations ------------------------------------------------------------------------
    def _cancellation(
        self,
        ctx: DecodeContext,
        req: CancellationRequest,
        header: Header | None,
        sender: From | None,
        source: Side,
        known: Correlations,
    ) -> _Result:
        """A camt.056: forwarded to the payment's receiver, or (the payment still held for its
        cap) answered CNCL by the gateway, which the batch's transaction decides."""
        uetr = req.original_uetr
        entry = known.find(payment_key(uetr))
        held = entry is None and (entry := known.find_held(payment_key(uetr))) is not None
        if entry is None:
            # Retried first (it may have overtaken its payment), then refused RJCR NOOR.
            raise self._uncorrelated(
                ctx.msg,
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
        entitled = self._authorise(ctx.msg, entry.instructing, sender, req.assigner.bic)
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
        return _Result(
            req,
            correlation=correlation,
            held_cancel=uetr if held else None,
            notes=notes,
            rewrite=Rewrite("", "", original=original),
            authorised=entitled,
        )

    def _resolution(
        self,
        ctx: DecodeContext,
        r: CancellationResolution,
        sender: From | None,
        target: Side,
        known: Correlations,
    ) -> _Result:
        """A camt.029 answering a request the gateway forwarded: back to the requester. CNCL
        voids the payment's obligation while its cycle is open; anything else changes
        nothing (once netted, the money comes back by a pacs.004 return)."""
        uetr = r.original_uetr
        entry = known.find(cancellation_key(uetr))
        if entry is None or entry.source != target:
            raise self._uncorrelated(
                ctx.msg,
                f"no cancellation request for payment {uetr} was sent by the gateway to this side",
            )
        assigner = r.assigner.bic if r.assigner is not None else None
        entitled = self._authorise(ctx.msg, entry.receiver, sender, assigner)
        # No Sts/Conf: a duplicate of another case (DplctOf), a refused modification, an
        # assignment cancelled: carried back, with no effect.
        if r.status and r.status not in message_type(ctx.msg.msg_def).codes:
            raise ctx.refuse(
                "NARR", f"Sts/Conf {r.status} is not an ISO 20022 investigation status code"
            )
        original = OriginalGroup(entry.msg_id, entry.msg_def, entry.created)
        return _Result(
            r,
            to=entry.sender_bic,
            voids_open=[uetr] if r.status == "CNCL" else [],
            rewrite=Rewrite("", "", original=original),
            authorised=entitled,
        )
