"""What each record of a batch does: the pipeline's decisions, with no Kafka and no store.

Given the records of a batch as read (gateway/reading.py), the claims the store holds for
their keys and the correlations their answers need, `Decider.decide_batch` says, record by
record and in order, what each one causes (`Effects`): a translation to publish with its
obligations, voids and correlation; a reject and a DLQ copy; a retry; the same answer again
for a PssblDplct resend; or nothing, for a copy of a record already processed. Each record
sees what the records before it decided, exactly as if it had come in a batch of its own.
The pipeline does the I/O around it (Kafka, the store); tests drive it directly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, cast

from gateway.config import Config
from gateway.correlations import (
    Correlation,
    Correlations,
    Facts,
    LookUpOnly,
    MemoryCorrelations,
)
from gateway.idempotency import IdempotencyKeys, extract_keys
from gateway.iso20022 import errors
from gateway.iso20022.reader import (
    BusinessMessage,
    payload_ref,
    read_message,
    refusal,
)
from gateway.messages import CAMT029
from gateway.messages.registry import CAPPED, READS_STATE, message_type
from gateway.ordering import Lines, Waiting
from gateway.reading import CapRefusal, Reading
from gateway.settlement.statuses import RecordOutcome
from gateway.sides import Side
from gateway.state.base import ClaimState, Effects, OutboxRow
from gateway.translation import Outcome, Translator

log = logging.getLogger(__name__)


class Record(Protocol):
    """What the decisions need of an input record (an aiokafka ConsumerRecord has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass
class Prepared:
    """One input record, read."""

    record: Record
    source: Side
    attempt: int = 1  # 2 and up: read from a retry topic
    source_headers: tuple[tuple[str, bytes], ...] = ()  # where the record first came in
    reading: Reading = field(default_factory=Reading)
    # Read again from its bytes (no validation, no signature check: done where it was
    # read), only when it was read in a worker process and a decision needs the message.
    reparsed: BusinessMessage | None = None

    @property
    def origin(self) -> str:
        return f"{self.record.topic}:{self.record.partition}:{self.record.offset}"

    @property
    def keys(self) -> IdempotencyKeys | None:
        return self.reading.keys

    @property
    def fingerprint(self) -> str:
        return self.reading.fingerprint

    @property
    def claim_keys(self) -> list[str]:
        """The keys the store is asked about before the batch is decided."""
        if self.keys is None:
            return []
        # Its own retry claim too: a record replayed after a crash that had been sent to the
        # retry topics is that decision again, never a second one (`Decider._decide`).
        return [
            self.keys.message,
            *self.keys.transactions,
            *self.keys.outcomes,
            f"retry:{self.origin}",
        ]


def _typed(headers: tuple[tuple[str, bytes], ...], msg_def: str) -> tuple[tuple[str, bytes], ...]:
    """An input's headers on a message of the gateway's own (a reject, an answer): its
    message-type header names that message's type, not the input's."""
    return tuple((k, msg_def.encode() if k == "message-type" else v) for k, v in headers)


def _ascii(text: str, limit: int = 500) -> bytes:
    return text.encode("ascii", "backslashreplace")[:limit]


class Decider:
    """The pipeline's per-record decisions (pure but for the translator it calls)."""

    def __init__(self, config: Config, translator: Translator) -> None:
        self.config = config
        self.translator = translator

    def message(self, p: Prepared) -> BusinessMessage:
        """The message its reading holds, for the few decisions that need it (gateway/reading.py:
        from a worker process, its tree is rebuilt from the bytes already checked)."""
        if p.reading.message is not None:
            return p.reading.message
        if p.reparsed is None:
            max_bytes = self.config.gateway.max_message_bytes
            p.reparsed = read_message(p.record.value or b"", max_bytes=max_bytes)
        return p.reparsed

    def decide_batch(
        self,
        prepared: Sequence[Prepared],
        claims: dict[str, ClaimState],
        known: Sequence[Correlation],
        waiting: Sequence[Waiting],
        wall: float,
        facts: Mapping[str, Facts] | None = None,
    ) -> list[Effects | None]:
        """Each record's effects, in order (None: a copy of a record already processed).
        `claims`, `known` and `waiting`: what the store holds for the batch's keys, answers
        and their payments' answers on the retry topics (gateway/ordering.py); `wall`: the
        time (epoch seconds) a retry's delay counts from; `facts`: what the store knows of the
        payments the batch's status enquiries name (a batch holds one such enquiry at most,
        first: `segments`)."""
        correlations = MemoryCorrelations(list(known))  # and what the batch adds, in order
        seen: dict[str, ClaimState] = dict(claims)  # plus what this batch claims as it goes
        lines = Lines(waiting)  # and the markers the batch adds and removes, in order
        decided: list[Effects | None] = []
        for p in prepared:
            e = self._decide(p, seen, wall, correlations, lines, facts or {})
            if e is not None:
                for key, fp in e.claims:
                    seen.setdefault(key, ClaimState(key, fp, ()))
                _keep_order(p, e, lines)
            decided.append(e)
        return decided

    def _decide(
        self,
        p: Prepared,
        seen: dict[str, ClaimState],
        wall: float,
        known: Correlations,
        lines: Lines,
        facts: Mapping[str, Facts],
    ) -> Effects | None:
        reading = p.reading
        if reading.error is not None or reading.keys is None:
            error = reading.error or errors.NotWellFormed("unreadable")
            outcome = self.translator.reject(error, p.source, None)
            # A readable message by its canonical form's hash: any spelling, one reject.
            ref = error.ids.payload_ref if error.ids else payload_ref(p.record.value or b"")
            return self._reject_effects(p, outcome, [(f"reject:{p.source}:{ref}", ref)])
        keys = reading.keys
        if f"retry:{p.origin}" in seen:
            # Sent to the retry topics when this very record was first decided (the batch is
            # replayed after a crash): decided there, in its turn, and not now, whatever is
            # known now. Deciding it again would apply it ahead of the answers it waited with.
            return None
        own = seen.get(keys.message)
        tx_clash = next((seen[k] for k in keys.transactions if k in seen), None)
        earlier = own or tx_clash
        if earlier is not None:
            if earlier.fingerprint != p.fingerprint:
                msg = self.message(p)
                if own is None and message_type(reading.msg_def).clash == "PDCR":
                    # Whoever may not ask at all is told so (AG01), not that a request of
                    # someone else's is pending.
                    refused = self._refused_anyway(p, msg, keys, known)
                    if refused is not None:
                        return refused
                    resolved = next((seen[k] for k in keys.outcomes if k in seen), None)
                    if resolved is not None:
                        # The first request was resolved: this one gets that outcome.
                        return Effects(
                            [(f"resend:{p.origin}", p.fingerprint)],
                            replay_key=resolved.key,
                            outcome=RecordOutcome.RESEND,
                        )
                    error = refusal(
                        msg,
                        "PDCR",
                        "another cancellation request for this payment came first: it is "
                        "being resolved, or was",
                    )
                else:
                    what = "message id" if own is not None else "transaction id (UETR / TxId)"
                    error = refusal(
                        msg, "DU01", f"duplicate {what}: already used for a different message"
                    )
                outcome = self.translator.reject(error, p.source, msg)
                return self._reject_effects(
                    p, outcome, [(f"duplicate:{keys.message}:{p.fingerprint}", p.fingerprint)]
                )
            if keys.possible_duplicate:
                # A resend flagged PssblDplct: answered again with the same result.
                return Effects(
                    [(f"resend:{p.origin}", p.fingerprint)],
                    replay_key=earlier.key,
                    outcome=RecordOutcome.RESEND,
                )
            return None  # redelivery of a processed record: no second effect
        ahead = self._ahead(p, lines)
        if ahead is not None:
            # An earlier answer from its side about its payment waits on the retry topics:
            # this one waits behind it, so the two are decided in the order they were sent.
            behind = Outcome(False, b"", p.source, reading.msg_def, keys, None)
            detail = f"waits behind {ahead}, sent earlier about {keys.correlation}"
            return self._retry_effects(p, behind, "waiting", detail, wall)
        try:
            if reading.deferred:
                # An answer: translated now, once, with what the store and the records
                # before it in this batch know.
                outcome = self.translator.process_message(
                    self.message(p), keys, p.source, known, facts
                )
            elif reading.outcome is None:
                raise RuntimeError(reading.failure)  # it failed where it was read
            else:
                outcome = reading.outcome
            cap = self._cap(outcome)
            if not reading.deferred and outcome.correlation is not None and cap is None:
                # Later answers in this batch may need it. Not a capped payment's: it may yet
                # be held or refused in this batch's transaction, and nothing may answer what
                # never reached the other side. Its answers wait on the retry topics until
                # its acceptance is committed (or are refused once their retries run out).
                known.remember(outcome.correlation)
        except Exception as exc:
            log.exception("internal error on %s (%s)", p.origin, keys.message)
            internal = errors.InternalError(
                f"the gateway failed on this message ({type(exc).__name__}); the operator "
                "has been alerted"
            )
            outcome = self.translator.reject(internal, p.source, self.message(p))
            return self._reject_effects(p, outcome, [(f"internal:{p.origin}", p.fingerprint)])
        if not outcome.accepted:
            if isinstance(outcome.error, errors.Uncorrelated) and p.attempt <= len(
                self.config.kafka.retry_delays_ms
            ):
                error = outcome.error
                return self._retry_effects(p, outcome, error.kind, str(error), wall)
            return self._reject_effects(p, outcome, [(keys.message, p.fingerprint)])
        claims = [(keys.message, p.fingerprint)] + [(k, p.fingerprint) for k in keys.transactions]
        if outcome.settlement is not None:
            # The RTGS answering a cycle's instruction: recorded, nothing to publish.
            return Effects(
                claims, cycle_outcomes=[outcome.settlement], outcome=RecordOutcome.ANSWERED
            )
        target = self.config.side(outcome.destination).outbound_topic
        headers = self._headers(p, outcome, keys)
        if outcome.answer_def is not None:  # the gateway's own answer: its type, not the input's
            input_type = ("input-type", (outcome.msg_def or "").encode())
            headers = (*_typed(headers, outcome.answer_def), input_type)
        row = OutboxRow(target, keys.message.encode(), outcome.message, headers)
        held_outbox = []
        if outcome.held_cancel is not None:
            # The answer if its payment is still held at commit (gateway/state/plan.py).
            held_outbox.append(
                OutboxRow(
                    self.config.side(p.source).outbound_topic,
                    keys.message.encode(),
                    outcome.held_answer,
                    _typed(headers, CAMT029),
                )
            )
        return Effects(
            claims,
            [row],
            list(outcome.obligations),
            list(outcome.cancels),
            [outcome.correlation] if outcome.correlation else [],
            cap=cap,
            source=p.source,
            value=reading.cap_refusal.to_bytes() if reading.cap_refusal else b"",
            voids_open=list(outcome.voids_open),
            cancel_held=outcome.held_cancel,
            held_outbox=held_outbox,
        )

    def _refused_anyway(
        self, p: Prepared, msg: BusinessMessage, keys: IdempotencyKeys, known: Correlations
    ) -> Effects | None:
        """The refusal a record would get on its own merits (not for a missing original),
        found without learning anything from it; None if it would not be refused."""
        outcome = self.translator.process_message(msg, keys, p.source, LookUpOnly(known))
        if outcome.accepted or isinstance(outcome.error, errors.Uncorrelated):
            return None
        return self._reject_effects(p, outcome, [(keys.message, p.fingerprint)])

    def _cap(self, outcome: Outcome) -> Decimal | None:
        """The payer's net debit cap, for a new payment instruction (returns are not capped:
        they give back what was received)."""
        if outcome.msg_def not in CAPPED or not outcome.obligations:
            return None
        payer = self.translator.reference.directory.current().participant(
            outcome.obligations[0].payer
        )
        return payer.net_debit_cap if payer is not None else Decimal(0)

    def _headers(
        self, p: Prepared, outcome: Outcome, keys: IdempotencyKeys | None
    ) -> tuple[tuple[str, bytes], ...]:
        r = p.record
        source = p.source_headers or (
            ("source-topic", r.topic.encode()),
            ("source-partition", str(r.partition).encode()),
            ("source-offset", str(r.offset).encode()),
        )
        # The input's type: as read, else as its header declared it (a message refused while
        # being read still names its MsgDefIdr), else unknown (not XML at all).
        recovered = outcome.error.ids if outcome.error is not None else None
        declared = outcome.msg_def or (recovered.msg_def if recovered else None)
        headers = [
            ("message-type", (declared or "unknown").encode()),
            ("idempotency-key", (keys.message if keys else payload_ref(r.value or b"")).encode()),
            *source,
            ("attempt", str(p.attempt).encode()),
        ]
        if keys is not None and keys.correlation:
            headers.append(("correlation-id", keys.correlation.encode()))
        return tuple(headers)

    def _reject_effects(
        self, p: Prepared, outcome: Outcome, claims: list[tuple[str, str]]
    ) -> Effects:
        """The reject to the source side, and the original record to the DLQ."""
        error = outcome.error
        assert error is not None
        headers = self._headers(p, outcome, p.keys)
        reject_key = (p.keys.message if p.keys else payload_ref(p.record.value or b"")).encode()
        # The reject is a message of its own: its type (admi.002, pacs.002, sese.024) is what
        # its header names, not the input's. The DLQ copy below keeps the input's.
        assert outcome.reject_def is not None, "a reject knows what it is"
        reject = OutboxRow(
            self.config.side(p.source).outbound_topic,
            reject_key,
            outcome.message,
            (*_typed(headers, outcome.reject_def), ("reject-reason", error.code.encode())),
        )
        value = p.record.value or b""
        limit = self.config.gateway.max_message_bytes
        extra: tuple[tuple[str, bytes], ...] = ()
        if len(value) > limit:
            # The DLQ must accept it: keep the head, say so (the payload's SHA-256 is in the
            # idempotency-key header).
            extra = (("truncated-from", str(len(value)).encode()),)
            value = value[:limit]
        dlq = OutboxRow(
            self.config.kafka.dlq_topic,
            p.record.key or reject_key,
            value,
            (
                *headers,
                ("error-kind", error.kind.encode()),
                ("error-code", error.code.encode()),
                ("error-detail", _ascii(str(error))),
                *extra,
            ),
        )
        return Effects(
            claims,
            [reject, dlq],
            outcome=RecordOutcome.REJECTED,
            reason=error.code,
            detail=str(error),
        )

    def _ahead(self, p: Prepared, lines: Lines) -> str | None:
        """The answer on the retry topics that `p` must wait behind, if any (never on its
        last attempt: waiting is bounded by the retry delays)."""
        w = _marker(p)
        if w is None or p.attempt > len(self.config.kafka.retry_delays_ms):
            return None
        return lines.ahead(w)

    def _retry_effects(
        self, p: Prepared, outcome: Outcome, kind: str, detail: str, wall: float
    ) -> Effects:
        """The record again, on the retry topic of its next attempt, due after its delay."""
        assert p.keys is not None
        kafka = self.config.kafka
        delay = kafka.retry_delays_ms[p.attempt - 1] / 1000
        headers = [(k, v) for k, v in self._headers(p, outcome, p.keys) if k != "attempt"]
        row = OutboxRow(
            kafka.retry_topic(p.attempt + 1),
            p.record.key or p.keys.message.encode(),
            p.record.value or b"",
            (
                *headers,
                ("attempt", str(p.attempt + 1).encode()),
                ("origin-topic", self.config.side(p.source).inbound_topic.encode()),
                ("not-before", f"{wall + delay:.3f}".encode()),
                ("error-kind", kind.encode()),
                ("error-detail", _ascii(detail)),
            ),
        )
        # Claimed by the record's own coordinates: a batch replayed after a crash does not
        # queue a second retry.
        return Effects(
            [(f"retry:{p.origin}", p.fingerprint)],
            [row],
            outcome=RecordOutcome.RETRY,
            wait=_marker(p),
        )

    def cap_reject(self, source: str, value: bytes, payer: str) -> list[OutboxRow]:
        """The pacs.002 RJCT AM04 (or the type's own refusal) of a payment the ledger refused
        for its payer's cap, from what its reading kept for it (`CapRefusal`)."""
        side = cast(Side, source)  # written by _decide from a Side
        kept = _kept_refusal(value, self.config.gateway.max_message_bytes)
        error = errors.Refusal(
            f"{payer}'s net debit in the open cycle would exceed its cap",
            ids=kept.ids,
            reason="AM04",
        )
        outcome = self.translator.reject(error, side, sese_tx_id=kept.sese_tx_id)
        assert outcome.reject_def is not None
        headers = (
            ("message-type", outcome.reject_def.encode()),  # the reject's own type
            ("idempotency-key", kept.key.encode()),
            ("reject-reason", b"AM04"),
        )
        topic = self.config.side(side).outbound_topic
        return [OutboxRow(topic, kept.key.encode(), outcome.message, headers)]


def _marker(p: Prepared) -> Waiting | None:
    """What keeps `p` in its payment's line: an answer, about a payment or transaction."""
    keys = p.keys
    if keys is None or not keys.correlation or not p.reading.deferred:
        return None
    return Waiting(keys.message, p.source, keys.correlation)


def _keep_order(p: Prepared, e: Effects, lines: Lines) -> None:
    """The line of `p`'s payment after its decision `e`: joined by a retry, left by any
    other decision (which also removes its stored marker)."""
    w = _marker(p)
    if w is None:
        assert e.wait is None, "only an answer waits on the retry topics"
        return
    if e.outcome == RecordOutcome.RETRY:
        lines.join(w)
    elif lines.holds(w):
        lines.leave(w)
        e.unwait = True


def _kept_refusal(value: bytes, max_bytes: int) -> CapRefusal:
    """What the store kept for a refusal. A version before the reading kept it kept the input
    record itself (a payment refused in the moment between that version's commit and its
    refusal): read once more, structure only, rather than left to fail every batch."""
    if value.lstrip()[:1] == b"{":
        return CapRefusal.from_bytes(value)
    msg = read_message(value, max_bytes=max_bytes)
    return CapRefusal.of(msg, extract_keys(msg).message)


def header(record: Record, name: str) -> bytes | None:
    for k, v in record.headers or ():
        if k == name:
            return bytes(v)
    return None


def retried(record: Record, side_of: dict[str, Side]) -> Prepared | None:
    """A record from a retry topic, as it first came in: its side (from its origin topic),
    its attempt, where it first came from. None: it names no inbound topic of ours."""
    origin = (header(record, "origin-topic") or b"").decode("ascii", "replace")
    if origin not in side_of:
        return None
    try:
        attempt = int(header(record, "attempt") or b"2")
    except ValueError:
        attempt = 2
    source = tuple(
        (name, value)
        for name in ("source-topic", "source-partition", "source-offset")
        if (value := header(record, name)) is not None
    )
    return Prepared(record, side_of[origin], attempt=attempt, source_headers=source)


def prepare_record(record: Record, side_of: dict[str, Side]) -> Prepared | None:
    """A consumed record as the decisions take it: from an inbound topic (`side_of`: inbound
    topic -> side), or from a retry topic as it first came in (`retried`). None: a retry
    record that names no inbound topic of ours."""
    side = side_of.get(record.topic)
    return Prepared(record, side) if side is not None else retried(record, side_of)


def segments(prepared: Sequence[Prepared]) -> list[list[Prepared]]:
    """A batch cut where a record must see what the records before it committed, so that it
    is decided exactly as if it came alone, and the same traffic gives the same answers and
    the same state however it is batched:
    - before a status enquiry (its answer reports what the store holds);
    - before an answer to a capped payment earlier in the segment (whether that payment is
      accepted, held or refused is decided in the transaction that commits it)."""
    out: list[list[Prepared]] = [[]]
    capped: set[str] = set()  # the correlations of the capped instructions in this segment
    for p in prepared:
        keys = p.keys
        answers_capped = p.reading.deferred and keys is not None and keys.correlation in capped
        if out[-1] and (p.reading.msg_def in READS_STATE or answers_capped):
            out.append([])
            capped = set()
        out[-1].append(p)
        if p.reading.msg_def in CAPPED and keys is not None and keys.correlation:
            capped.add(keys.correlation)
    return [s for s in out if s]


def enquired(segment: Sequence[Prepared]) -> list[str]:
    """What a segment's request that reads state asks about (its first record, if it is
    one): "payment:<UETR>", "account:<BIC>:<cycle>"."""
    first = segment[0] if segment else None
    if first is None or first.reading.msg_def not in READS_STATE or first.keys is None:
        return []
    return list(first.keys.asks)
