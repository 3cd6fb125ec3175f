"""The gateway service: <side>.inbound -> validate, deduplicate, translate -> outbox -> outbound.

Per batch of polled records:
  1. read and validate each record, extract its keys          (worker thread: CPU)
  2. load the claims and correlations those keys need          (state store)
  3. decide each record: new, redelivered, resend, duplicate   (worker thread: CPU)
     and translate the new ones, or build their rejects
  4. write all effects in one transaction: claims, outbox rows, obligations, voids, correlations
  5. publish the outbox (the relay) and mark the rows sent
  6. commit the consumer offsets
A crash anywhere repeats at most steps 1-6 for the batch: step 4 skips records whose claim
exists (their effects were applied once), step 5 republishes unsent rows with their stable
keys and BizMsgIdr. So every accepted input has its output published at least once and its
obligation recorded exactly once. Correctness does not depend on Kafka transactions.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from gateway.config import Config
from gateway.iso20022 import errors
from gateway.iso20022.keys import IdempotencyKeys, extract_keys, fingerprint
from gateway.iso20022.reader import BusinessMessage, payload_ref, refusal
from gateway.sides import SIDES, Side
from gateway.state.base import ClaimState, Effects, OutboxRow, StateStore
from gateway.translation import MemoryCorrelations, Outcome, Translator

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    record: Any  # aiokafka ConsumerRecord
    source: Side
    msg: BusinessMessage | None = None
    keys: IdempotencyKeys | None = None
    fingerprint: str = ""
    error: errors.MessageError | None = None

    @property
    def origin(self) -> str:
        return f"{self.record.topic}:{self.record.partition}:{self.record.offset}"


def _ascii(text: str, limit: int = 500) -> bytes:
    return text.encode("ascii", "backslashreplace")[:limit]


class Pipeline:
    def __init__(
        self,
        config: Config,
        store: StateStore,
        bootstrap: str,
        translator: Translator | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.bootstrap = bootstrap
        self.translator = translator or Translator(config)
        self.side_of = {config.side(s).inbound_topic: s for s in SIDES}
        self._lock = asyncio.Lock()  # one batch at a time; a rebalance waits for it
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.processed = 0

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        kafka = self.config.kafka
        # Records somewhat over the message limit must still be fetched (to be rejected as too
        # large instead of blocking their partition) and their DLQ copies published.
        room = 2 * self.config.gateway.max_message_bytes + (1 << 20)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=f"{kafka.client_id}-relay",
            acks="all",
            enable_idempotence=kafka.idempotent_producer,
            linger_ms=5,
            max_request_size=room,
        )
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=kafka.group_id,
            client_id=kafka.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=kafka.batch_max_records,
            max_partition_fetch_bytes=room,
        )
        self.consumer.subscribe(list(self.side_of), listener=_DrainOnRevoke(self))
        await self.consumer.start()
        await self.relay()  # whatever a previous run left unsent

    async def stop(self) -> None:
        async with self._lock:  # let the batch in flight finish and commit
            if self.consumer is not None:
                await self.consumer.stop()  # leaves the group
            if self.producer is not None:
                await self.producer.stop()

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            while not stop.is_set():
                assert self.consumer is not None
                batch = await self.consumer.getmany(
                    timeout_ms=500, max_records=self.config.kafka.batch_max_records
                )
                records = [r for recs in batch.values() for r in recs]
                if records:
                    await self.process_batch(records)
        finally:
            await self.stop()

    # -- one batch ------------------------------------------------------------------------------
    async def process_batch(self, records: Sequence[Any]) -> None:
        async with self._lock:
            prepared = await asyncio.to_thread(self._prepare, records)
            keys = [k for p in prepared for k in _claim_keys(p)]
            refs = [r for p in prepared for r in _correlation_refs(p)]
            claims, known = await self._retrying(
                lambda: asyncio.gather(self.store.claims(keys), self.store.correlations(refs))
            )
            effects = await asyncio.to_thread(self._decide_all, prepared, claims, known)
            await self._retrying(lambda: self.store.commit_batch(effects))
            await self.relay()
            await self._commit_offsets(records)
            self.processed += len(records)

    def _prepare(self, records: Sequence[Any]) -> list[Prepared]:
        out = []
        for record in records:
            p = Prepared(record, self.side_of[record.topic])
            try:
                p.msg = self.translator.read(record.value or b"", p.source)
                p.keys = extract_keys(p.msg)
                p.fingerprint = fingerprint(p.msg)
            except errors.MessageError as exc:
                p.error = exc
            out.append(p)
        return out

    def _decide_all(
        self, prepared: list[Prepared], claims: dict[str, ClaimState], known: list[Any]
    ) -> list[Effects]:
        correlations = MemoryCorrelations(known)
        self.translator.correlations = correlations
        seen: dict[str, ClaimState] = dict(claims)  # plus what this batch claims as it goes
        effects = []
        for p in prepared:
            e = self._decide(p, seen)
            if e is not None:
                for key, fp in e.claims:
                    seen.setdefault(key, ClaimState(key, fp, ()))
                effects.append(e)
        return effects

    def _decide(self, p: Prepared, seen: dict[str, ClaimState]) -> Effects | None:
        if p.error is not None or p.msg is None or p.keys is None:
            error = p.error or errors.NotWellFormed("unreadable")
            outcome = self.translator.reject(error, p.source, None)
            ref = payload_ref(p.record.value or b"")
            return self._reject_effects(p, outcome, [(f"reject:{p.source}:{ref}", ref)])
        keys = p.keys
        own = seen.get(keys.message)
        tx_clash = next((seen[k] for k in keys.transactions if k in seen), None)
        earlier = own or tx_clash
        if earlier is not None:
            if earlier.fingerprint != p.fingerprint:
                what = "message id" if own is not None else "transaction id (UETR / TxId)"
                error = refusal(
                    p.msg, "DU01", f"duplicate {what}: already used for a different message"
                )
                outcome = self.translator.reject(error, p.source, p.msg)
                return self._reject_effects(
                    p, outcome, [(f"duplicate:{keys.message}:{p.fingerprint}", p.fingerprint)]
                )
            if keys.possible_duplicate:
                # A resend flagged PssblDplct: answered again with the same result.
                return Effects([(f"resend:{p.origin}", p.fingerprint)], replay_key=earlier.key)
            return None  # redelivery of a processed record: no second effect
        outcome = self.translator.process_message(p.msg, keys, p.source)
        if not outcome.accepted:
            return self._reject_effects(p, outcome, [(keys.message, p.fingerprint)])
        target = self.config.side(outcome.destination).outbound_topic
        row = OutboxRow(
            target, keys.message.encode(), outcome.message, self._headers(p, outcome, keys)
        )
        claims = [(keys.message, p.fingerprint)] + [(k, p.fingerprint) for k in keys.transactions]
        return Effects(
            claims,
            [row],
            list(outcome.obligations),
            list(outcome.cancels),
            [outcome.correlation] if outcome.correlation else [],
        )

    def _headers(
        self, p: Prepared, outcome: Outcome, keys: IdempotencyKeys | None
    ) -> tuple[tuple[str, bytes], ...]:
        r = p.record
        headers = [
            ("message-type", (outcome.msg_def or "unknown").encode()),
            ("idempotency-key", (keys.message if keys else payload_ref(r.value or b"")).encode()),
            ("source-topic", r.topic.encode()),
            ("source-partition", str(r.partition).encode()),
            ("source-offset", str(r.offset).encode()),
            ("attempt", b"1"),
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
        reject = OutboxRow(
            self.config.side(p.source).outbound_topic,
            reject_key,
            outcome.message,
            (*headers, ("reject-reason", error.code.encode())),
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
        return Effects(claims, [reject, dlq])

    # -- the outbox relay ----------------------------------------------------------------------
    async def relay(self, chunk: int = 1000) -> int:
        """Publish unsent outbox rows in order, then mark them sent. At least once: a failure
        anywhere repeats the pass from the rows still unsent."""
        sent = 0
        while True:
            done = await self._retrying(lambda: self._relay_pass(chunk))
            if not done:
                return sent
            sent += done

    async def _relay_pass(self, chunk: int) -> int:
        assert self.producer is not None
        rows = await self.store.unsent(chunk)
        if not rows:
            return 0
        futures = [
            await self.producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
            for r in rows
        ]
        await asyncio.gather(*futures)
        await self.store.mark_sent([r.id for r in rows if r.id is not None])
        return len(rows)

    async def _commit_offsets(self, records: Sequence[Any]) -> None:
        assert self.consumer is not None
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            # The partition moved meanwhile: the next owner re-reads these records, and the
            # claims make that harmless.
            log.warning("offset commit failed (%s); records will be redelivered", exc)

    async def _retrying(self, make: Any) -> Any:
        """Transient faults (broker or database busy) retried with backoff and jitter."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_transient),
            wait=wait_exponential_jitter(multiplier=0.1, max=5),
            stop=stop_after_delay(120),
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
        async with self.pipeline._lock:
            pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


def _transient(exc: BaseException) -> bool:
    """Worth retrying: the broker or the database may be back in a moment."""
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or "Connection" in type(exc).__name__
    return isinstance(exc, OSError | TimeoutError | sqlite3.OperationalError)


def _claim_keys(p: Prepared) -> list[str]:
    return [p.keys.message, *p.keys.transactions] if p.keys else []


# Where an answer names the gateway's own message (admi.002, a group-level status report).
_ANSWER_REFERENCES = (
    "admi.002.001.01/RltdRef/Ref",
    "FIToFIPmtStsRpt/TxInfAndSts/OrgnlGrpInf/OrgnlMsgId",
    "FIToFIPmtStsRpt/OrgnlGrpInfAndSts/OrgnlMsgId",
    "PmtRtr/TxInf/OrgnlGrpInf/OrgnlMsgId",
)


def _correlation_refs(p: Prepared) -> list[str]:
    if p.keys is None or p.msg is None:
        return []
    refs = []
    c = p.keys.correlation
    if c:
        refs += [c, f"uetr:{c}", f"sese:{c}"]
    for path in _ANSWER_REFERENCES:
        value = p.msg.doc_text(path)
        if value:
            refs.append(value)
    return refs
