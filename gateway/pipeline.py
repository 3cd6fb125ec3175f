"""The gateway service: <side>.inbound -> validate, deduplicate, translate -> outbox -> outbound.

Per batch of polled records (from the inbound topics, and from the retry topics once due):
  1. read and validate each record, extract its keys          (worker thread: CPU)
  2. load the claims and correlations those keys need          (state store)
  3. decide each record: new, redelivered, resend, duplicate   (worker thread: CPU)
     and translate the new ones, or build their rejects
  4. write all effects in one transaction: claims, outbox rows, obligations, voids, correlations
  5. commit the consumer offsets: the batch is accepted once step 4 is durable
and, beside the batches, the relay publishes the outbox in order and marks the rows sent (at
start, after each batch, and at stop until it is empty; at most a few batches behind).
A crash anywhere repeats at most steps 1-5 for the batch: step 4 skips records whose claim
exists (their effects were applied once), the relay republishes unsent rows with their stable
keys and BizMsgIdr. So every accepted input has its output published at least once and its
obligation recorded exactly once. Correctness does not depend on Kafka transactions.

Faults, by kind:
- permanent (unreadable, invalid, refused, a defect of ours): reject to the sender and a copy
  of the record to the DLQ at once, in the batch transaction; never retried.
- may pass (a status report that overtook its original): the record goes, through the outbox,
  to <retry prefix>.1, .2, ... with growing delays; after the last, reject + DLQ. A retry
  partition whose head is not due yet is paused, so it never blocks the inbound partitions.
- transient (broker or state store unavailable): the step is retried with exponential backoff
  and jitter for kafka.transient_retry_seconds; then the service stops with an error, having
  committed nothing it had not finished, for its supervisor to restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from gateway.clock import Clock, now_utc8
from gateway.config import Config
from gateway.iso20022 import errors
from gateway.iso20022.keys import IdempotencyKeys, extract_keys
from gateway.iso20022.reader import BusinessMessage, payload_ref, refusal
from gateway.kafka_clients import connection_options
from gateway.messages.registry import CAPPED
from gateway.reading import Reading, init_worker, read_in_worker, read_records, warm_up
from gateway.settlement.cycles import rules_for
from gateway.settlement.schedule import Schedule, parse_cut_offs
from gateway.sides import SIDES, Side
from gateway.state.base import ClaimState, Effects, OutboxRow, StateStore
from gateway.topics import ensure_topics
from gateway.translation import MemoryCorrelations, Outcome, Translator

if TYPE_CHECKING:
    from gateway.ops.operations import Operations

log = logging.getLogger(__name__)

RELAY_POLL_SECONDS = 0.5
COMMIT_WAIT_SECONDS = 15
STOP_WAIT_SECONDS = 45
# On stop: how long the relay may keep publishing what is left, and the producer flushing.
STOP_RELAY_SECONDS = 15
PRODUCER_STOP_SECONDS = 10
# New payment instructions, held to their payer's net debit cap.


@dataclass
class Prepared:
    record: Any  # aiokafka ConsumerRecord
    source: Side
    attempt: int = 1  # 2 and up: read from a retry topic
    source_headers: tuple[tuple[str, bytes], ...] = ()  # where the record first came in
    reading: Reading = field(default_factory=Reading)
    msg: BusinessMessage | None = None  # read again in this process, only when needed

    @property
    def origin(self) -> str:
        return f"{self.record.topic}:{self.record.partition}:{self.record.offset}"

    @property
    def keys(self) -> IdempotencyKeys | None:
        return self.reading.keys

    @property
    def fingerprint(self) -> str:
        return self.reading.fingerprint


def _ascii(text: str, limit: int = 500) -> bytes:
    return text.encode("ascii", "backslashreplace")[:limit]


class Pipeline:
    def __init__(
        self,
        config: Config,
        store: StateStore,
        bootstrap: str,
        translator: Translator | None = None,
        clock: Clock = now_utc8,
    ) -> None:
        self.config = config
        self.store = store
        self.bootstrap = bootstrap
        self.clock = clock
        self.translator = translator or Translator(config, clock)
        self.schedule = Schedule(
            parse_cut_offs(config.settlement.cut_offs), self.translator.calendars
        )
        self.side_of = {config.side(s).inbound_topic: s for s in SIDES}
        self.retry_topics = set(config.kafka.retry_topics)
        self.paused: dict[TopicPartition, float] = {}  # retry partition -> when its head is due
        self._lock = asyncio.Lock()  # one batch at a time; a rebalance waits for it
        self._outbox_ready = asyncio.Event()
        self._relayed = asyncio.Condition()
        self._behind = 0  # batches committed that the relay may not have published yet
        self._relay_task: asyncio.Task[None] | None = None
        self._topics_task: asyncio.Task[None] | None = None
        self._relay_stopped = False
        self._stopping = False
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.workers: ProcessPoolExecutor | None = None
        self.processed = 0
        self.telemetry: Operations | None = None  # metrics and events, when operated
        self.paused_sides: set[Side] = set()
        # Set while the consumer holds an assignment from its group (cleared while a
        # rebalance moves partitions): what readiness and the "gateway ready" line mean.
        self.joined = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        kafka = self.config.kafka
        count = self.config.gateway.workers
        # Every profile compiled and the transliteration loaded before the first record: a
        # broken profile stops the start, and the first batch waits for nothing.
        await asyncio.to_thread(self.translator.prepare)
        if count:
            # forkserver: never fork this process, whose threads may hold locks.
            self.workers = ProcessPoolExecutor(
                count,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=init_worker,
                initargs=(self.config, os.getpid()),
            )
            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(loop.run_in_executor(self.workers, warm_up) for _ in range(count))
            )
        # Records somewhat over the message limit must still be fetched (to be rejected as too
        # large instead of blocking their partition) and their DLQ copies published.
        room = 2 * self.config.gateway.max_message_bytes + (1 << 20)
        options = connection_options(kafka)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=f"{kafka.client_id}-relay",
            acks="all",
            enable_idempotence=kafka.idempotent_producer,
            transactional_id=kafka.transactional_id or None,
            # Without linger a pass went out sooner (17 -> 12 ms at 1,000 msg/s) but throughput
            # fell 3-8% in interleaved runs: the sender wakes for every few rows.
            linger_ms=5,
            max_request_size=room,
            metadata_max_age_ms=kafka.metadata_max_age_ms,
            **options,
        )
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=kafka.group_id,
            client_id=kafka.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=kafka.batch_max_records,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            max_partition_fetch_bytes=room,
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=kafka.heartbeat_interval_ms,
            # A refresh that shows more partitions of an inbound topic makes the group
            # rebalance onto them (aiokafka's coordinator watches the partition counts).
            metadata_max_age_ms=kafka.metadata_max_age_ms,
            **options,
        )
        self.consumer.subscribe(
            [*self.side_of, *sorted(self.retry_topics)], listener=_DrainOnRevoke(self)
        )
        await self.consumer.start()
        await self._refuse_over_cap()  # whatever a previous run left half-refused
        await self.relay()  # whatever a previous run left unsent
        self._relay_task = asyncio.create_task(self._relay_loop(), name="outbox-relay")
        if kafka.topic_check_seconds:
            self._topics_task = asyncio.create_task(self._check_topics(), name="topic-check")

    async def stop(self) -> None:
        # Let the batch in flight finish and commit, within a bound: a batch stuck on the
        # broker (an endless rebalance) is abandoned. Nothing is lost or doubled: its store
        # transaction committed or not as a whole, and its offsets were not committed, so its
        # records come again and their claims make that harmless.
        try:
            await asyncio.wait_for(self._lock.acquire(), STOP_WAIT_SECONDS)
        except TimeoutError:
            log.warning("abandoning the batch in flight after %d s", STOP_WAIT_SECONDS)
        else:
            self._lock.release()
        self._stopping = True
        self.joined.clear()
        if self._topics_task is not None:
            self._topics_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._topics_task
        # Not under the lock: leaving the group may run a rebalance, whose revocation
        # callback must not wait for a lock held by the stop that waits for it.
        if self.consumer is not None:
            await _stop_client(self.consumer, "consumer", 30)  # leaves the group
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
            if self.producer is not None:
                # What the last batches left (bounded: with a shared store, other instances
                # keep adding rows; theirs are theirs to publish). Bounded in time too: with
                # the broker or the database away, rows stay in the outbox for the next start
                # (or another instance) to publish, and the stop still ends.
                try:
                    await asyncio.wait_for(self.relay(max_rows=20_000), STOP_RELAY_SECONDS)
                except Exception as exc:
                    if not (isinstance(exc, TimeoutError) or self._transient(exc)):
                        raise
                    log.warning(
                        "stopping with outbox rows unsent (%s); they are published at the "
                        "next start",
                        type(exc).__name__,
                    )
        if self.producer is not None:
            await _stop_client(self.producer, "producer", PRODUCER_STOP_SECONDS)
        if self.workers is not None:
            self.workers.shutdown(wait=True, cancel_futures=True)

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        # With worker processes, the next batch is read while this one is decided and
        # committed. Reading needs no state, so a batch read early is decided exactly as if
        # it had been read late. (In a thread it would only contend for the GIL.)
        overlap = self.workers is not None
        ahead: tuple[list[Any], asyncio.Task[list[Prepared]]] | None = None
        try:
            while not stop.is_set():
                assert self.consumer is not None
                if self._relay_task is not None and self._relay_task.done():
                    self._relay_task.result()  # the relay gave up: stop, with its error
                self._resume_due()
                batch = await self.consumer.getmany(
                    timeout_ms=0 if ahead else 500,
                    max_records=self.config.kafka.batch_max_records,
                )
                records = [r for tp, recs in batch.items() for r in self._due(tp, recs)]
                if self.telemetry is not None:
                    for tp, recs in batch.items():
                        high = self.consumer.highwater(tp)
                        if high is not None and recs:
                            self.telemetry.lag(tp.topic, tp.partition, high - recs[-1].offset - 1)
                if not overlap:
                    if records:
                        await self.process_batch(records)
                    continue
                reading = (
                    (records, asyncio.create_task(self._prepare(records))) if records else None
                )
                if ahead is not None:
                    await self._finish(ahead[0], await ahead[1])
                ahead = reading
            if ahead is not None:
                await self._finish(ahead[0], await ahead[1])
                ahead = None
        finally:
            if ahead is not None:
                ahead[1].cancel()
            await self.stop()

    # -- retry topics: wait without blocking ---------------------------------------------------
    def _due(self, tp: TopicPartition, records: list[Any]) -> list[Any]:
        """The records of `tp` that may be processed now. On a retry partition, the first
        record not due yet and all after it are put back: seek to it and pause the
        partition until it is due (one topic per delay keeps each partition in due order)."""
        if tp.topic not in self.retry_topics:
            return records
        now = time.time()
        for i, r in enumerate(records):
            due = _not_before(r)
            if due > now:
                assert self.consumer is not None
                self.consumer.seek(tp, r.offset)
                self.consumer.pause(tp)
                self.paused[tp] = due
                return records[:i]
        return records

    def pause_side(self, side: Side, pause: bool) -> None:
        """An operator's pause (or resume) of a side's inbound topic. Records wait in Kafka;
        nothing is lost. Retry topics keep flowing: their records were accepted earlier."""
        if pause:
            self.paused_sides.add(side)
        else:
            self.paused_sides.discard(side)
        self._hold_paused_sides()

    def _hold_paused_sides(self) -> None:
        """Pause what belongs to a paused side, resume the rest (assignments move)."""
        if self.consumer is None:
            return
        paused_topics = {self.config.side(s).inbound_topic for s in self.paused_sides}
        for tp in self.consumer.assignment():
            if tp.topic in paused_topics:
                self.consumer.pause(tp)
            elif tp.topic in self.side_of and tp in self.consumer.paused():
                self.consumer.resume(tp)

    def _resume_due(self) -> None:
        if self.paused_sides:
            self._hold_paused_sides()
        if not self.paused:
            return
        assert self.consumer is not None
        now = time.time()
        assigned = self.consumer.assignment()
        for tp, due in list(self.paused.items()):
            if tp not in assigned:
                del self.paused[tp]  # moved to another instance, which decides afresh
            elif due <= now:
                self.consumer.resume(tp)
                del self.paused[tp]

    # -- one batch ------------------------------------------------------------------------------
    async def process_batch(self, records: Sequence[Any]) -> None:
        await self._finish(records, await self._prepare(records))

    async def _finish(self, records: Sequence[Any], prepared: list[Prepared]) -> None:
        """Decide and commit a batch that has been read."""
        async with self._lock:
            keys = [k for p in prepared for k in _claim_keys(p)]
            refs = [r for p in prepared for r in p.reading.refs]
            claims, known = await self._retrying(
                lambda: asyncio.gather(self.store.claims(keys), self.store.correlations(refs))
            )
            decided = await asyncio.to_thread(self._decide_all, prepared, claims, known)
            effects = [e for _, e in decided if e is not None]
            # One clock reading for the whole batch decides which cycle its obligations join.
            rules = rules_for(self.config, self.schedule, self.clock())
            applied = await self._retrying(lambda: self.store.commit_batch(effects, rules))
            # A record the store skipped was applied before (a replay, another instance): it
            # is reported and logged as the copy it is, never a second time as what it was.
            flags = iter(applied)
            decided = [(p, e if e is None or next(flags) else None) for p, e in decided]
            _log_rejects(decided)
            if self.config.settlement.cap_policy == "reject" and any(
                e.cap is not None for e in effects
            ):
                await self._refuse_over_cap()
            async with self._relayed:
                # Back-pressure: a relay that cannot keep up slows the consumer down.
                await self._relayed.wait_for(lambda: self._behind < 4 or self._relay_stopped)
                self._behind += 1
            self._outbox_ready.set()
            await self._commit_offsets(records)
            self.processed += len(records)
            if self.telemetry is not None:
                await self._report(decided)

    async def _prepare(self, records: Sequence[Any]) -> list[Prepared]:
        prepared = []
        for record in records:
            if record.topic in self.retry_topics:
                p = _from_retry_topic(record, self.side_of)
                if p is None:
                    log.error("dropping a record on %s with no origin-topic header", record.topic)
                    continue
            else:
                p = Prepared(record, self.side_of[record.topic])
            prepared.append(p)
        items = [(p.record.value or b"", p.source) for p in prepared]
        if self.workers is None:
            readings = await asyncio.to_thread(read_records, self.translator, items)
        else:
            loop = asyncio.get_running_loop()
            size = -(-len(items) // self.config.gateway.workers)  # one chunk per worker
            chunks = await asyncio.gather(
                *(
                    loop.run_in_executor(self.workers, read_in_worker, items[i : i + size])
                    for i in range(0, len(items), size)
                )
            )
            readings = [r for chunk in chunks for r in chunk]
        for p, reading in zip(prepared, readings, strict=True):
            p.reading = reading
        return prepared

    def _message(self, p: Prepared) -> BusinessMessage:
        """The record read again here, for the few decisions that need the message itself."""
        if p.msg is None:
            p.msg = self.translator.read(p.record.value or b"", p.source)
        return p.msg

    def _decide_all(
        self, prepared: list[Prepared], claims: dict[str, ClaimState], known: list[Any]
    ) -> list[tuple[Prepared, Effects | None]]:
        """Each record and its effects (None: a copy of a record already processed)."""
        correlations = MemoryCorrelations(known)
        self.translator.correlations = correlations
        seen: dict[str, ClaimState] = dict(claims)  # plus what this batch claims as it goes
        decided: list[tuple[Prepared, Effects | None]] = []
        for p in prepared:
            e = self._decide(p, seen)
            if e is not None:
                for key, fp in e.claims:
                    seen.setdefault(key, ClaimState(key, fp, ()))
            decided.append((p, e))
        return decided

    async def _report(self, decided: list[tuple[Prepared, Effects | None]]) -> None:
        """Metrics and events of a committed batch (never its correctness)."""
        assert self.telemetry is not None
        rows = []
        answered: set[str] = set()
        for p, e in decided:
            outcome = p.reading.outcome
            msg_type = (outcome.msg_def if outcome else None) or "unknown"
            key = p.keys.message if p.keys else payload_ref(p.record.value or b"")
            rows.append(
                (
                    p.record,
                    p.source,
                    msg_type,
                    e.outcome if e else "duplicate",
                    e.reason if e else "",
                    key,
                )
            )
            if e is not None:
                answered.update(cycle for cycle, *_ in e.cycle_outcomes)
        self.telemetry.processed(rows)
        if answered:
            await self.telemetry.cycles_answered(answered)

    def _decide(self, p: Prepared, seen: dict[str, ClaimState]) -> Effects | None:
        reading = p.reading
        if reading.error is not None or reading.keys is None:
            error = reading.error or errors.NotWellFormed("unreadable")
            outcome = self.translator.reject(error, p.source, None)
            ref = payload_ref(p.record.value or b"")
            return self._reject_effects(p, outcome, [(f"reject:{p.source}:{ref}", ref)])
        keys = reading.keys
        own = seen.get(keys.message)
        tx_clash = next((seen[k] for k in keys.transactions if k in seen), None)
        earlier = own or tx_clash
        if earlier is not None:
            if earlier.fingerprint != p.fingerprint:
                what = "message id" if own is not None else "transaction id (UETR / TxId)"
                msg = self._message(p)
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
                    outcome="resend",
                )
            return None  # redelivery of a processed record: no second effect
        try:
            if reading.outcome is None:
                raise RuntimeError(reading.failure)  # it failed where it was read
            outcome = reading.outcome
            if reading.needs_correlations:
                # Read where nothing was known: translate again with what the store knows.
                outcome = self.translator.process_message(self._message(p), keys, p.source)
            cap = self._cap(outcome)
            if not reading.needs_correlations and outcome.correlation is not None and cap is None:
                # Later answers in this batch may need it. Not a capped payment's: it may yet
                # be held or refused in this batch's transaction, and nothing may answer what
                # never reached the other side. Its answers wait on the retry topics until
                # its acceptance is committed (or are refused once their retries run out).
                self.translator.correlations.remember(outcome.correlation)
        except Exception as exc:
            log.exception("internal error on %s (%s)", p.origin, keys.message)
            internal = errors.InternalError(
                f"the gateway failed on this message ({type(exc).__name__}); the operator "
                "has been alerted"
            )
            outcome = self.translator.reject(internal, p.source, self._message(p))
            return self._reject_effects(p, outcome, [(f"internal:{p.origin}", p.fingerprint)])
        if not outcome.accepted:
            if isinstance(outcome.error, errors.Uncorrelated) and p.attempt <= len(
                self.config.kafka.retry_delays_ms
            ):
                return self._retry_effects(p, outcome)
            return self._reject_effects(p, outcome, [(keys.message, p.fingerprint)])
        claims = [(keys.message, p.fingerprint)] + [(k, p.fingerprint) for k in keys.transactions]
        if outcome.settlement is not None:
            # The RTGS answering a cycle's instruction: recorded, nothing to publish.
            return Effects(claims, cycle_outcomes=[outcome.settlement], outcome="answered")
        target = self.config.side(outcome.destination).outbound_topic
        row = OutboxRow(
            target, keys.message.encode(), outcome.message, self._headers(p, outcome, keys)
        )
        return Effects(
            claims,
            [row],
            list(outcome.obligations),
            list(outcome.cancels),
            [outcome.correlation] if outcome.correlation else [],
            cap=cap,
            source=p.source,
            value=p.record.value or b"",
        )

    def _cap(self, outcome: Outcome) -> Decimal | None:
        """The payer's net debit cap, for a new payment instruction (returns are not capped:
        they give back what was received)."""
        if outcome.msg_def not in CAPPED or not outcome.obligations:
            return None
        payer = self.translator.directory.current().participant(outcome.obligations[0].payer)
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
        own_type = outcome.reject_def.encode()
        reject = OutboxRow(
            self.config.side(p.source).outbound_topic,
            reject_key,
            outcome.message,
            (
                *((k, own_type if k == "message-type" else v) for k, v in headers),
                ("reject-reason", error.code.encode()),
            ),
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
            claims, [reject, dlq], outcome="rejected", reason=error.code, detail=str(error)
        )

    def _retry_effects(self, p: Prepared, outcome: Outcome) -> Effects:
        """The record again, on the retry topic of its next attempt, due after its delay."""
        error = outcome.error
        assert error is not None and p.keys is not None
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
                ("not-before", f"{time.time() + delay:.3f}".encode()),
                ("error-kind", error.kind.encode()),
                ("error-detail", _ascii(str(error))),
            ),
        )
        # Claimed by the record's own coordinates: a batch replayed after a crash does not
        # queue a second retry.
        return Effects([(f"retry:{p.origin}", p.fingerprint)], [row], outcome="retry")

    # -- payments refused for their cap ----------------------------------------------------------
    async def _refuse_over_cap(self) -> None:
        """Queue the pacs.002 RJCT AM04 of every payment the ledger refused for its payer's
        cap. Decided in the batch transaction; built here, once (the store records it only
        while the payment is still 'refusing', so a crash in between builds it again)."""
        for held in await self._retrying(self.store.refusals):
            rows = await asyncio.to_thread(self._cap_reject, held.source, held.value, held.payer)
            await self._retrying(functools.partial(self.store.finish_refusal, held.id, rows))

    def _cap_reject(self, source: str, value: bytes, payer: str) -> list[OutboxRow]:
        side = cast(Side, source)  # written by _decide from a Side
        msg = self.translator.read(value, side)
        keys = extract_keys(msg)
        error = refusal(msg, "AM04", f"{payer}'s net debit in the open cycle would exceed its cap")
        outcome = self.translator.reject(error, side, msg)
        assert outcome.reject_def is not None
        headers = (
            ("message-type", outcome.reject_def.encode()),  # the reject's own type
            ("idempotency-key", keys.message.encode()),
            ("reject-reason", b"AM04"),
        )
        topic = self.config.side(side).outbound_topic
        return [OutboxRow(topic, keys.message.encode(), outcome.message, headers)]

    # -- the outbox relay ----------------------------------------------------------------------
    async def relay(self, chunk: int = 1000, max_rows: int | None = None) -> int:
        """Publish unsent outbox rows in order, then mark them sent, until a pass finds fewer
        than `chunk` (caught up; with a shared store, other instances may be relaying the
        rest) or `max_rows` are sent. At least once: a failure anywhere repeats the pass from
        the rows still unsent."""
        sent: int = 0
        while True:
            done: int = await self._retrying(lambda: self._relay_pass(chunk))
            sent += done
            if done < chunk or (max_rows is not None and sent >= max_rows):
                return sent

    async def _relay_loop(self) -> None:
        try:
            while True:
                # Woken by each batch; otherwise polls, for rows the batches did not write
                # (a cycle's close, here or from `connect-gateway cycle close`).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._outbox_ready.wait(), RELAY_POLL_SECONDS)
                self._outbox_ready.clear()
                covered = self._behind
                await self.relay()  # until the outbox is empty
                async with self._relayed:
                    self._behind -= covered
                    self._relayed.notify_all()
        finally:
            # Whatever ended it, no batch may wait for it any more.
            self._relay_stopped = True
            async with self._relayed:
                self._relayed.notify_all()

    async def _check_topics(self) -> None:
        """Every kafka.topic_check_seconds: the gateway's topics exist, what is missing created
        (idempotent). A broker that lost its topics (a memory broker restarted) would accept
        writes to them and drop the records; a partner's producer may have auto-created an
        inbound topic with other partitions (followed through the metadata refresh)."""
        kafka = self.config.kafka
        while True:
            await asyncio.sleep(kafka.topic_check_seconds)
            try:
                await ensure_topics(
                    self.bootstrap,
                    self.config.topics(),
                    kafka.topic_partitions,
                    kafka.topic_replication,
                    options=connection_options(kafka),
                )
            except Exception as exc:  # the broker away: the next check tries again
                log.warning(
                    "topic check failed (%s); retried in %d s", exc, kafka.topic_check_seconds
                )

    async def _relay_pass(self, chunk: int) -> int:
        return await self.store.relay(chunk, self._publish)

    async def _publish(self, rows: list[OutboxRow]) -> None:
        producer = self.producer
        assert producer is not None

        async def send_all() -> None:
            futures = [
                await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
                for r in rows
            ]
            await asyncio.gather(*futures)

        if self.telemetry is not None:
            self.telemetry.published(rows)
        if self.config.kafka.transactional_id:
            # All of a pass or none of it, for consumers reading read_committed. Correctness
            # does not need it (stable keys and BizMsgIdr make repeats harmless).
            async with producer.transaction():
                await send_all()
        else:
            await send_all()

    async def _commit_offsets(self, records: Sequence[Any]) -> None:
        assert self.consumer is not None
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        try:
            # Bounded: a commit that waits on a rebalance must not hold the batch lock the
            # rebalance's revocation waits for.
            await asyncio.wait_for(self.consumer.commit(offsets), COMMIT_WAIT_SECONDS)
        except (KafkaError, TimeoutError) as exc:
            # The partition moved meanwhile: the next owner re-reads these records, and the
            # claims make that harmless.
            log.warning(
                "offset commit failed (%s); records will be redelivered", str(exc) or "timed out"
            )

    def _transient(self, exc: BaseException) -> bool:
        """Worth retrying: the broker or the database may be back in a moment."""
        return broker_fault(exc) or self.store.is_transient(exc)

    async def _retrying(self, make: Any) -> Any:
        """Transient faults (broker or database busy) retried with backoff and jitter."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(self._transient),
            wait=wait_exponential_jitter(multiplier=0.1, max=5),
            stop=stop_after_delay(self.config.kafka.transient_retry_seconds),
            reraise=True,
        ):
            with attempt:
                return await make()
        raise AssertionError("unreachable")  # pragma: no cover


class _DrainOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions move, the batch in flight finishes and commits its offsets."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.pipeline.joined.clear()
        for tp in revoked:
            self.pipeline.paused.pop(tp, None)
        if self.pipeline._stopping:
            return  # no batch will run again; stop() is waiting for this rebalance
        async with self.pipeline._lock:
            pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # An empty assignment counts: the group has more members than partitions, and this
        # one is a joined standby.
        if not self.pipeline._stopping:
            self.pipeline.joined.set()


async def _stop_client(client: Any, name: str, seconds: float) -> None:
    """Stop an aiokafka client within `seconds`. With the broker away, aiokafka's stop can
    wait on requests that never return, and its consumer re-raises the CancelledError of
    the fetch tasks it cancels itself: neither may turn a clean stop into a hang or an exit
    1. A cancellation of this task itself still propagates."""
    try:
        await asyncio.wait_for(client.stop(), seconds)
    except TimeoutError:
        log.warning("the %s did not stop within %d s; the broker will drop it", name, seconds)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("the %s stopped with its requests cancelled (broker unreachable)", name)


def _log_rejects(decided: list[tuple[Prepared, Effects | None]]) -> None:
    """One line for every reject the batch committed: which record, whose, why."""
    for p, e in decided:
        if e is None or e.outcome != "rejected":
            continue
        key = p.keys.message if p.keys else payload_ref(p.record.value or b"")
        log.warning(
            "rejected %s from %s (%s): %s; reject to the %s side, record to the DLQ",
            key,
            p.origin,
            e.reason,
            e.detail,
            p.source,
            extra={"idempotency_key": key, "reason": e.reason, "origin": p.origin},
        )


def broker_fault(exc: BaseException) -> bool:
    """Any error the Kafka client reports. A restarting broker answers in-flight requests
    with whatever it has (aiokafka's UnknownError, not marked retriable, was seen ending the
    service), so the class is no guide; and every retried step is safe to repeat (the relay
    republishes the same keys and bytes). A fault that does not pass still ends the service,
    after kafka.transient_retry_seconds."""
    return isinstance(exc, KafkaError)


def _header(record: Any, name: str) -> bytes | None:
    for k, v in record.headers or ():
        if k == name:
            return bytes(v)
    return None


def _not_before(record: Any) -> float:
    raw = _header(record, "not-before")
    try:
        return float(raw) if raw else 0.0
    except ValueError:
        return 0.0


def _from_retry_topic(record: Any, side_of: dict[str, Side]) -> Prepared | None:
    origin = (_header(record, "origin-topic") or b"").decode("ascii", "replace")
    if origin not in side_of:
        return None
    try:
        attempt = int(_header(record, "attempt") or b"2")
    except ValueError:
        attempt = 2
    source = tuple(
        (name, value)
        for name in ("source-topic", "source-partition", "source-offset")
        if (value := _header(record, name)) is not None
    )
    return Prepared(record, side_of[origin], attempt=attempt, source_headers=source)


def _claim_keys(p: Prepared) -> list[str]:
    return [p.keys.message, *p.keys.transactions] if p.keys else []
