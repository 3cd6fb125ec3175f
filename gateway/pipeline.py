"""The gateway service: <side>.inbound -> validate, deduplicate, translate -> outbox -> outbound.

Per batch of polled records (from the inbound topics, and from the retry topics once due),
cut before a status enquiry and before an answer to a capped payment earlier in it (each
segment then goes through steps 2-4 in turn: such a record sees what came before it, as if it
came alone; gateway/decisions.py, `segments`):
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
  Later answers from its side about its payment wait behind it (gateway/ordering.py).
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
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from gateway.clock import Clock, now_utc8
from gateway.config import Config
from gateway.cycles import rules_for
from gateway.decisions import Decider, Prepared, enquired, header, prepare_record, segments
from gateway.iso20022.reader import payload_ref
from gateway.kafka_clients import connection_options
from gateway.reading import init_worker, read_in_worker, read_records, warm_up
from gateway.relay import Relay
from gateway.retrying import broker_fault, retrying
from gateway.settlement.schedule import Schedule, parse_cut_offs
from gateway.sides import SIDES, Side
from gateway.state.base import Effects, StateStore
from gateway.telemetry import Telemetry
from gateway.topics import ensure_topics
from gateway.translation import Translator

T = TypeVar("T")
log = logging.getLogger(__name__)

COMMIT_WAIT_SECONDS = 15
STOP_WAIT_SECONDS = 45
# On stop: how long the producer may take to flush.
PRODUCER_STOP_SECONDS = 10


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
        self.reference = self.translator.reference  # one value, shared with the cycle manager
        self.schedule = Schedule(
            parse_cut_offs(config.settlement.cut_offs), self.reference.calendars
        )
        self.side_of = {config.side(s).inbound_topic: s for s in SIDES}
        self.retry_topics = set(config.kafka.retry_topics)
        self.paused: dict[TopicPartition, float] = {}  # retry partition -> when its head is due
        self._lock = asyncio.Lock()  # one batch at a time; a rebalance waits for it
        self.decider = Decider(config, self.translator)
        self.relay: Relay | None = None  # once started
        self._topics_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop_asked: asyncio.Event | None = None  # the service's stop, once running
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.workers: ProcessPoolExecutor | None = None
        self.processed = 0
        self.telemetry: Telemetry | None = None  # metrics and events, when operated
        self.paused_sides: set[Side] = set()
        # Set while the consumer holds an assignment from its group (cleared while a
        # rebalance moves partitions): what readiness and the "gateway ready" line mean.
        self.joined = asyncio.Event()
        # Set by a new assignment: its positions are checked against the log before the
        # pipeline says it is joined (_check_positions); how many were (diagnostics, tests).
        self._assigned = False
        self.assignments = 0

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
        self.relay = Relay(kafka, self.store, self.producer, self._transient, self.telemetry)
        await self.relay.start()
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
        if self.relay is not None and self.producer is not None:
            await self.relay.stop()
        if self.producer is not None:
            await _stop_client(self.producer, "producer", PRODUCER_STOP_SECONDS)
        if self.workers is not None:
            self.workers.shutdown(wait=True, cancel_futures=True)

    async def run(self, stop: asyncio.Event) -> None:
        self._stop_asked = stop
        await self.start()
        # With worker processes, the next batch is read while this one is decided and
        # committed. Reading needs no state, so a batch read early is decided exactly as if
        # it had been read late. (In a thread it would only contend for the GIL.)
        overlap = self.workers is not None
        ahead: tuple[list[Any], asyncio.Task[list[Prepared]]] | None = None
        try:
            while not stop.is_set():
                assert self.consumer is not None
                assert self.relay is not None
                self.relay.check()  # the relay gave up: stop, with its error
                if self._assigned:
                    await self._check_positions()
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
        except Abandoned as exc:
            # Nothing of the batch was committed, nor its offsets: its records come again.
            log.warning("stopping: the batch in flight is abandoned (%s)", exc)
        finally:
            if ahead is not None:
                ahead[1].cancel()
            await self.stop()

    async def _check_positions(self) -> None:
        """After an assignment: a position beyond its partition's log end means the broker
        lost records it had (a memory broker restarted), and a commit of a batch read before
        that reached the new one. Kafka answers such a fetch OFFSET_OUT_OF_RANGE and the
        consumer starts over; a broker that does not would have the gateway skip whatever is
        published there next. Read such a partition from its start instead: claims make the
        repeats harmless. Then the pipeline is joined (readiness)."""
        consumer = self.consumer
        assert consumer is not None
        assigned = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        try:
            ends = await consumer.end_offsets(assigned) if assigned else {}
            for tp in assigned:
                position = await consumer.position(tp)
                if position > ends.get(tp, position):
                    log.warning(
                        "%s:%d: position %d is beyond the log end %d (the broker lost records);"
                        " reading it from its start",
                        tp.topic,
                        tp.partition,
                        position,
                        ends[tp],
                    )
                    await consumer.seek_to_beginning(tp)
        except KafkaError as exc:
            log.warning("positions not checked yet (%s); checked again next turn", exc)
            return
        self._assigned = False
        self.assignments += 1
        # The Kafka client's own line on an assignment is quiet by default
        # (ops.kafka_client_log_level): the gateway says it, once per assignment.
        log.info(
            "consuming %d partitions: %s",
            len(assigned),
            ", ".join(f"{tp.topic}:{tp.partition}" for tp in assigned) or "none",
        )
        if not self._stopping:
            self.joined.set()

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
            decided = []
            # A status enquiry starts a segment of its own: what came before it is committed
            # first (gateway/decisions.py, `segments`).
            for segment in segments(prepared):
                decided += await self._decide_and_commit(segment)
            _log_rejects(decided)
            # Back-pressure: a relay that cannot keep up slows the consumer down.
            assert self.relay is not None
            await self.relay.batch_committed()
            await self._commit_offsets(records)
            self.processed += len(records)
            if self.telemetry is not None:
                await self._report(decided)

    async def _decide_and_commit(
        self, prepared: list[Prepared]
    ) -> list[tuple[Prepared, Effects | None]]:
        """Load what the records need, decide them in order, commit them in one transaction."""
        keys = [k for p in prepared for k in p.claim_keys]
        refs = [r for p in prepared for r in p.reading.refs]
        about = [p.keys.correlation for p in prepared if p.reading.deferred and p.keys]
        claims, known, waiting, facts = await self._retrying(
            lambda: asyncio.gather(
                self.store.claims(keys),
                self.store.correlations(refs),
                self.store.waiting([c for c in about if c]),
                self.store.facts(enquired(prepared)),
            )
        )
        decisions = await asyncio.to_thread(
            self.decider.decide_batch, prepared, claims, known, waiting, time.time(), facts
        )
        effects = [e for e in decisions if e is not None]
        # One clock reading for the whole batch decides which cycle its obligations join.
        rules = rules_for(self.config, self.schedule, self.clock())
        applied = await self._retrying(lambda: self.store.commit_batch(effects, rules))
        # A record the store skipped was applied before (a replay, another instance): it is
        # reported and logged as the copy it is, never a second time as what it was.
        flags = iter(applied)
        decided = [
            (p, e if e is None or next(flags) else None)
            for p, e in zip(prepared, decisions, strict=True)
        ]
        if self.config.settlement.cap_policy == "reject" and any(
            e.cap is not None for e in effects
        ):
            await self._refuse_over_cap()
        return decided

    async def _prepare(self, records: Sequence[Any]) -> list[Prepared]:
        prepared = []
        for record in records:
            p = prepare_record(record, self.side_of)
            if p is None:
                log.error("dropping a record on %s with no origin-topic header", record.topic)
                continue
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

    async def _report(self, decided: list[tuple[Prepared, Effects | None]]) -> None:
        """Metrics and events of a committed batch (never its correctness)."""
        assert self.telemetry is not None
        rows = []
        answered: set[str] = set()
        for p, e in decided:
            msg_type = p.reading.msg_def or "unknown"
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

    # -- payments refused for their cap ----------------------------------------------------------
    async def _refuse_over_cap(self) -> None:
        """Queue the pacs.002 RJCT AM04 of every payment the ledger refused for its payer's
        cap. Decided in the batch transaction; built here, once (the store records it only
        while the payment is still 'refusing', so a crash in between builds it again)."""
        for held in await self._retrying(self.store.refusals):
            rows = await asyncio.to_thread(
                self.decider.cap_reject, held.source, held.value, held.payer
            )
            await self._retrying(functools.partial(self.store.finish_refusal, held.id, rows))

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

    async def _retrying(self, make: Callable[[], Awaitable[T]]) -> T:
        """`make()`, its transient faults retried; once a stop is asked, a fault is no longer
        waited out: the step is abandoned (Abandoned), as nothing of it was committed."""

        def asked() -> bool:
            return self._stop_asked is not None and self._stop_asked.is_set()

        try:
            return await retrying(
                make,
                lambda exc: self._transient(exc) and not asked(),
                self.config.kafka.transient_retry_seconds,
            )
        except Exception as exc:
            if asked() and self._transient(exc):
                raise Abandoned(f"{type(exc).__name__} at the stop") from exc
            raise


class Abandoned(Exception):
    """A step given up at a stop while it waited out a broker or database fault."""


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
        # Joined once the run loop has checked the positions (Pipeline._check_positions). An
        # empty assignment counts: the group has more members than partitions, and this one
        # is a joined standby.
        self.pipeline._assigned = True


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


def _not_before(record: Any) -> float:
    raw = header(record, "not-before")
    try:
        return float(raw) if raw else 0.0
    except ValueError:
        return 0.0
