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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from lxml import etree

from gateway.adapters import dialect
from gateway.authorisation import sender_of
from gateway.calendars import Calendars
from gateway.canonical import (
    Business,
    Obligation,
    StatusReport,
)
from gateway.carry import Rewrite, carry, set_aside
from gateway.charset import CharsetPolicy
from gateway.clock import Clock, now_utc8
from gateway.code_sets import unknown
from gateway.codec import decode_header
from gateway.codec.context import DecodeContext
from gateway.config import Config
from gateway.correlations import (
    CYCLE,
    Correlation,
    Correlations,
    Facts,
    MemoryCorrelations,
)
from gateway.directory import ReloadingDirectory, bic11
from gateway.flows.base import Answer, Flow
from gateway.idempotency import IdempotencyKeys, extract_keys
from gateway.iso20022 import errors
from gateway.iso20022.builders import (
    Party,
    RejectContext,
    build_camt029,
    build_pacs002_status,
    iso_datetime,
)
from gateway.iso20022.ids import derive_id
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import BusinessMessage, message_ids, read_message, refusal
from gateway.iso20022.tree import one
from gateway.issuing import issue, issue_document
from gateway.messages import PACS002
from gateway.messages.registry import message_type
from gateway.reference import ReferenceData
from gateway.rejects import SESE_TX_ID, Refused, build_reject
from gateway.settlement.statuses import CycleStatus, SettlementAnswer
from gateway.sides import Side, other_side
from gateway.signatures import Signer, read_signed, require_signed

log = logging.getLogger(__name__)

SETTLEMENT_REQUEST = "pacs.029.001.01"
# What the gateway sends the RTGS to settle a cycle (settlement.instruction).
GATEWAY_INSTRUCTIONS = (SETTLEMENT_REQUEST, "pacs.009.001.08")


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
    # The gateway answered the message itself (a status enquiry): the answer's type.
    answer_def: str | None = None


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
        # The offline CLI's own (it learns originals as it goes); set here only: the pipeline
        # passes the batch's to each call instead.
        self.correlations: Correlations = correlations or MemoryCorrelations()

    # Its reference data, read through: one value, held once (gateway/reference.py).
    @property
    def clock(self) -> Clock:
        return self.reference.clock

    @property
    def profiles(self) -> Mapping[Side, ProfileSet]:
        return self.reference.profiles

    @property
    def directory(self) -> ReloadingDirectory:
        return self.reference.directory

    @property
    def calendars(self) -> Calendars:
        return self.reference.calendars

    @property
    def charset(self) -> CharsetPolicy:
        return self.reference.charset

    @property
    def signer(self) -> Signer | None:
        return self.reference.signer

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
        """Read, check who sent it, validate against the source profile; raises
        `MessageError`. Who sent it comes before anything else is looked at (a refusal here
        claims only the payload's hash: an unsigned copy cannot take a genuine message's ids)."""
        msg = read_signed(
            data,
            self.directory.current(),
            self.clock(),
            max_bytes=self.config.gateway.max_message_bytes,
            known=self.profiles[source].messages,
        )
        if self.config.security.require_signatures:
            require_signed(msg)
        self.profiles[source].validate(msg)
        return msg

    def process_message(
        self,
        msg: BusinessMessage,
        keys: IdempotencyKeys,
        source: Side,
        correlations: Correlations | None = None,
        facts: Mapping[str, Facts] | None = None,
    ) -> Outcome:
        """Translate a message already read and validated (the pipeline reads first, to look up
        its keys and correlations in the state store, and passes them here; and, for a status
        enquiry, what the store knows of its payment)."""
        known = correlations if correlations is not None else self.correlations
        try:
            return self._translate(msg, keys, source, known, facts or {})
        except errors.MessageError as exc:
            return self.reject(exc, source, msg)

    def _answer_context(self, source: Side) -> RejectContext:
        side = self.config.side(source)
        return RejectContext(
            latin_only=dialect(source).latin_only,
            gateway=Party(self.config.gateway.bic),
            fallback_to=Party(side.system_bic),
            created=self.clock(),
            biz_svc=side.biz_svc,
            sign=self.signer.sign if self.signer is not None else None,
        )

    def reject(
        self,
        error: errors.MessageError,
        source: Side,
        msg: BusinessMessage | None = None,
        *,
        sese_tx_id: str | None = None,
    ) -> Outcome:
        """The reject of `msg` (None: unreadable, or refused from what was kept of it, with
        its TxId if it is a securities instruction)."""
        ctx = self._answer_context(source)
        if error.ids is None and msg is not None:
            error.ids = message_ids(msg)  # raised below the codecs, which do not know them
        sese_tx = msg.doc_text(SESE_TX_ID) if msg is not None else sese_tx_id
        document = msg.document if msg is not None else None
        reject_def, message = build_reject(Refused(error, ctx, sese_tx, document))
        return Outcome(
            False,
            message,
            source,
            msg.msg_def if msg else None,
            None,
            error,
            reject_def=reject_def,
        )

    def cancelled_here(self, msg: BusinessMessage, source: Side) -> bytes:
        """The camt.029 CNCL the gateway answers a cancellation request with when it cancels
        the held payment itself."""
        return build_camt029(self._answer_context(source), message_ids(msg), msg.document, "CNCL")

    def prime(self, originals: Iterable[bytes]) -> list[Outcome]:
        """Process originals only to learn their correlations (offline `translate --original`).
        Each comes from its sender's side, as it would have on Kafka: a payment from the side
        of its instructing participant, whether what is translated next answers it (a status
        report, from the other side) or asks about it (a cancellation request, from the
        same side)."""
        return [self.process(data, self.side_of(data)) for data in originals]

    def side_of(self, data: bytes) -> Side:
        """The side a message comes from: its sender's (AppHdr Fr, else the group's
        instructing agent), a participant's or depository's in the directory, or the side whose
        system it is. Raises `MessageError` when that cannot be told."""
        msg = read_message(data, max_bytes=self.config.gateway.max_message_bytes)
        bic = msg.header_text("Fr/FIId/FinInstnId/BICFI") or message_ids(msg).sender_bic or ""
        found = self.directory.current().signatory(bic)
        side = getattr(found, "side", None)
        for name in ("onshore", "offshore"):
            if side is None and bic11(self.config.side(name).system_bic) == bic11(bic):
                side = name
        if side not in ("onshore", "offshore"):
            raise refusal(msg, "RC01", f"cannot tell which side {bic or 'the sender'} sends from")
        return cast(Side, side)

    # -- translation ------------------------------------------------------------------------
    def _translate(
        self,
        msg: BusinessMessage,
        keys: IdempotencyKeys,
        source: Side,
        known: Correlations,
        facts: Mapping[str, Facts],
    ) -> Outcome:
        target = other_side(source)
        directory = self.directory.current()
        kind = message_type(msg.msg_def)
        ctx = DecodeContext(dialect(source), directory, msg)
        body = kind.decode(ctx)
        if kind.issued_by_gateway:
            raise refusal(
                msg,
                "AG01",
                f"{kind.title}s ({kind.family}) are issued by the gateway only, never accepted "
                "from a side",
            )
        outside = unknown(one(msg.doc_map, kind.root) or {}, kind.codes) if kind.codes else None
        if outside is not None:
            path, code, sets = outside
            raise refusal(msg, "NARR", f"{path} {code} is not an ISO 20022 {sets} code")
        flow = Flow(
            ctx,
            kind,
            decode_header(msg),
            sender_of(msg, directory),  # AppHdr Fr, resolved: every flow authorises it
            source,
            target,
            known,
            self.config,
            self.calendars,
            facts,
        )
        if isinstance(body, StatusReport) and _original_def(body) in GATEWAY_INSTRUCTIONS:
            entry = self._cycle_entry(body, known)
            if entry is not None or _original_def(body) == SETTLEMENT_REQUEST:
                return self._settlement_answer(flow, body, keys, entry)
        now = self.clock()
        # The family's own flow (gateway/flows/), as its module names it: no routing here.
        assert kind.flow is not None, f"{msg.msg_def} is accepted from a side but has no flow"
        result = kind.flow(flow, body)
        assert result.authorised is not None, f"{msg.msg_def} translated unauthorised"
        if result.answer is not None:
            return self._answered(msg, keys, source, result.answer)
        if result.reply is not None:
            return self._replied(msg, keys, source, result.reply)

        msg_id = derive_id("GWM", keys.message)
        biz_id = derive_id("GW", keys.message)
        if kind.carried:
            rewrite = result.rewrite or Rewrite("", "")
            carried = carry(
                msg,
                dataclasses.replace(rewrite, msg_id=msg_id, created=iso_datetime(now)),
                source=dialect(source),
                target=dialect(target),
                directory=directory,
                charset=self.charset,
                text_limits=self.profiles[target].text_limits(msg.msg_def),
                identification=kind.identification,
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

    def _answered(
        self, msg: BusinessMessage, keys: IdempotencyKeys, source: Side, answer: Answer
    ) -> Outcome:
        """The gateway's own answer, back to the sender's side (a status enquiry's pacs.002),
        held to that side's profile like everything it issues."""
        o = answer.original
        data = build_pacs002_status(
            self._answer_context(source),
            message_ids(msg),
            answer.uetr,
            (o.msg_id, o.msg_def, o.created) if o is not None else None,
            answer.status,
            answer.info,
            answer.reason,
        )
        self.profiles[source].validate(read_message(data))
        return Outcome(True, data, source, msg.msg_def, keys, None, answer_def=PACS002)

    def _replied(
        self, msg: BusinessMessage, keys: IdempotencyKeys, source: Side, body: Business
    ) -> Outcome:
        """A body the gateway issues back to the sender (a report it asked for), with ids
        derived from the request: the same request gets the same ids."""
        now = self.clock()
        issued = issue(
            body,
            side=source,
            to=msg.header_text("Fr/FIId/FinInstnId/BICFI"),
            msg_id=derive_id("GWM", keys.message),
            biz_msg_idr=derive_id("GW", keys.message),
            created=now,
            config=self.config,
            directory=self.directory.current(),
            charset=self.charset,
            profiles=self.profiles[source],
        )
        return Outcome(
            True, issued.data, source, msg.msg_def, keys, None, answer_def=issued.msg_def
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

    def _cycle_entry(self, s: StatusReport, known: Correlations) -> Correlation | None:
        """The correlation of the gateway's settlement instruction `s` answers, if it does."""
        original = s.group.original_group if s.group else None
        if original is None and s.transaction is not None:
            original = s.transaction.original_group
        entry = known.find_outbound(original.msg_id) if original else None
        return entry if entry is not None and entry.key.startswith(CYCLE) else None

    def _settlement_answer(
        self,
        flow: Flow,
        s: StatusReport,
        keys: IdempotencyKeys,
        entry: Correlation | None,
    ) -> Outcome:
        """A status report on one of a cycle's settlement instructions: the cycle's outcome."""
        msg, source = flow.msg, flow.source
        rtgs = self.config.settlement.rtgs_side
        if source != rtgs:
            raise refusal(
                msg, "AG01", f"settlement instructions are answered by the {rtgs} side only"
            )
        # Only the configured RTGS system confirms or fails a cycle.
        flow.authorise(self.config.side(rtgs).system_bic)
        if entry is None:
            raise flow.uncorrelated(
                "no settlement instruction with that message id was sent by the gateway"
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
