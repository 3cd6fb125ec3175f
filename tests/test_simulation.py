"""A deterministic simulation of the whole decision path, message by message: any batching and
any interleaving of the partitions, with crashes and replays, ends in the same state as the
same records delivered one at a time, on SQLite and PostgreSQL.

The traffic is real messages (the bundled samples, given new ids and amounts): payments both
ways, the other side's status reports (ACSC, RJCT), returns, a DVP instruction and its
rejection, exact copies, PssblDplct resends and reused ids. Each record is read as the service
reads it (gateway/reading.py), decided by the pure decision core (gateway/decisions.py) with
the claims and correlations the store gives, and committed by the store. A simulated broker
keeps each partition's order, interleaves the partitions at random, cuts batches at random,
replays a committed batch after a crash (its offsets never committed), and feeds the retry
topics back once the inbound partitions are drained, as their delays would. Answers therefore
arrive before their originals, in their batch, or after it. Then the operator closes the
cycle and the RTGS confirms its settlement instruction.

The state compared: every obligation and its status, the cycles' positions and statuses, the
held queue, and every output written, the pacs.029 and camt.053 statements included (topic,
key and bytes; retry-topic rows aside, since how often an answer waits depends on delivery by
design). tests/test_batching.py checks the settlement
rules themselves against a sequential model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.clock import UTC8
from gateway.config import Config, StateSection
from gateway.cycles import CycleManager
from gateway.decisions import Decider, enquired, prepare_record, segments
from gateway.reading import read_records
from gateway.settlement.ledger import Rules
from gateway.sides import Side, other_side
from gateway.state import StateStore, store_for
from gateway.state.base import OutboxRow
from gateway.translation import Translator
from tests.conftest import SAMPLES
from tests.harness import Record, as_capped_out, capped_directory, sample

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC8)
PARTITIONS = 2  # per inbound topic


def simulation_config(tmp: Path, policy: str) -> Config:
    # JADBCNBJXXX's cap (0.00 here) leaves no room: each of its payments is held (policy
    # queue) or refused (policy reject), whatever the order, since it is never credited.
    directory = capped_directory(tmp, {"JADBCNBJXXX": "0.00"})
    base = Config()
    return dataclasses.replace(
        base,
        translation=dataclasses.replace(base.translation, directory=directory),
        settlement=dataclasses.replace(base.settlement, cap_policy=policy),
    )


CONFIG = Config()
SIDE_OF = {CONFIG.side(s).inbound_topic: s for s in ("onshore", "offshore")}
UETRS = {
    "onshore": b"0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01",
    "offshore": b"5e9d2a7b-3c84-4f1e-a6b2-8d0c4e7f1a22",
}


def _uetr(side: Side, n: int) -> str:
    digest = uuid.uuid5(uuid.NAMESPACE_URL, f"{side}/{n}").bytes
    return str(uuid.UUID(bytes=digest, version=4))  # UETRs are version 4


def _numbered(msg: bytes, side: Side, n: int, amount: str, capped_out: bool = False) -> bytes:
    """A sample made payment `n` of `side` (or an answer to it): its ids, UETR and amount;
    `capped_out`: instructed by the onshore participant with no room under its cap."""
    uetr = _uetr(side, n).encode()
    msg = (
        msg.replace(b"-0001<", f"-{n:04d}<".encode())
        .replace(UETRS[side], uetr)
        .replace(b">1250000.00<", f">{amount}<".encode())
    )
    return as_capped_out(msg) if capped_out else msg


def _refused_cancellation(resolution: bytes) -> bytes:
    return resolution.replace(b"<Conf>CNCL</Conf>", b"<Conf>RJCR</Conf>").replace(
        b"<TxCxlSts>ACCR</TxCxlSts>",
        b"<TxCxlSts>RJCR</TxCxlSts><CxlStsRsnInf><Rsn><Cd>ARDT</Cd></Rsn></CxlStsRsnInf>",
    )


def _rejected(status: bytes) -> bytes:
    return status.replace(
        b"<TxSts>ACSC</TxSts>",
        b"<TxSts>RJCT</TxSts><StsRsnInf><Rsn><Cd>AC04</Cd></Rsn></StsRsnInf>",
    )


@dataclass(frozen=True)
class Traffic:
    partitions: dict[tuple[Side, int], list[bytes]]
    booked: frozenset[str]  # UETRs of the payments with room: each must be booked
    reused: int  # each must be refused DU01
    unanswerable: int  # answers to payments held or refused for their cap: refused at last
    held: frozenset[str]  # UETRs of the payments held or refused for their cap
    cancelled: frozenset[str]  # UETRs of the held ones their payer asked to cancel
    enquired: frozenset[str]  # UETRs of the held ones their payer asked about
    refused_reports: int  # statements asked of a cycle not closed yet: refused NARR


@st.composite
def traffic(draw: st.DrawFn) -> Traffic:
    """Per inbound partition, its records in order; and what a correct gateway must accept."""
    partitions: dict[tuple[Side, int], list[bytes]] = {
        (s, p): [] for s in ("onshore", "offshore") for p in range(PARTITIONS)
    }
    booked: set[str] = set()
    held: set[str] = set()
    cancelled: set[str] = set()
    enquired: set[str] = set()
    reused = unanswerable = refused_reports = 0
    for n in range(1, draw(st.integers(1, 6)) + 1):
        side: Side = draw(st.sampled_from(["onshore", "offshore"]))
        other = other_side(side)
        amount = f"{draw(st.integers(2, 99_999))}.{draw(st.integers(0, 99)):02d}"
        capped_out = side == "onshore" and draw(st.booleans())
        (held if capped_out else booked).add(_uetr(side, n))
        payment = _numbered(sample(side, "pacs.008.001.08"), side, n, amount, capped_out)
        mine, theirs = partitions[(side, n % PARTITIONS)], partitions[(other, n % PARTITIONS)]
        mine.append(payment)
        resolution: list[bytes] = []
        for extra in draw(
            st.lists(
                st.sampled_from(["copy", "resend", "reused", "cancel", "enquiry", "report"]),
                max_size=2,
                unique=True,
            )
        ):
            if extra == "cancel":
                # Its payer asks to cancel it, on either of its side's partitions: after it,
                # or (on the other one) possibly before it. The other side may answer.
                request = _numbered(sample(side, "camt.056.001.08"), side, n, amount, capped_out)
                partitions[(side, draw(st.integers(0, PARTITIONS - 1)))].append(request)
                if capped_out:
                    cancelled.add(_uetr(side, n))
                answer = _numbered(sample(other, "camt.029.001.09"), side, n, amount, capped_out)
                resolution = {
                    "none": [],
                    "CNCL": [answer],
                    "RJCR": [_refused_cancellation(answer)],
                }[draw(st.sampled_from(["none", "CNCL", "RJCR"]))]
                # Never forwarded (held and cancelled here, or refused for the cap): the
                # request's resolution is refused; under policy reject, so is the request.
                unanswerable += len(resolution) if capped_out else 0
            elif extra == "enquiry":
                # Its payer asks where it is, on either of its side's partitions: answered by
                # the gateway from what it knows then, or forwarded to the receiver.
                enquiry = _numbered(sample(side, "pacs.028.001.03"), side, n, amount, capped_out)
                partitions[(side, draw(st.integers(0, PARTITIONS - 1)))].append(enquiry)
                if capped_out:
                    enquired.add(_uetr(side, n))
            elif extra == "report":
                # The payer asks for its account's report: onshore, an intraday camt.052 of the
                # open cycle; offshore, the camt.053 of CNY-000001, not closed yet: refused.
                # (The capped-out payer's sample would ask for another's account.)
                if not capped_out:
                    asked = sample(side, "camt.060.001.05").replace(
                        b"-0001<", f"-{n:04d}<".encode()
                    )
                    partitions[(side, draw(st.integers(0, PARTITIONS - 1)))].append(asked)
                    refused_reports += side == "offshore"
            elif extra == "copy":
                mine.append(payment)
            elif extra == "resend":
                mine.append(
                    payment.replace(b"</CreDt>", b"</CreDt>\n    <PssblDplct>true</PssblDplct>")
                )
            else:
                mine.append(payment.replace(f">{amount}<".encode(), b">1.00<", 1))  # DU01
                reused += 1
        status = _numbered(sample(other, "pacs.002.001.10"), side, n, amount, capped_out)
        back = _numbered(sample(other, "pacs.004.001.09"), side, n, amount, capped_out)
        answers = {
            "none": [],
            "accepted": [status],
            "rejected": [_rejected(status)],
            "returned": [status, back],
        }[draw(st.sampled_from(["none", "accepted", "rejected", "returned"]))]
        theirs.extend(answers + resolution)
        unanswerable += len(answers) if capped_out else 0
    if draw(st.booleans()):
        # A DVP instruction from offshore, and onshore's rejection of it.
        partitions[("offshore", 0)].append(sample("offshore", "sese.023.001.09"))
        if draw(st.booleans()):
            partitions[("onshore", 0)].append(sample("onshore", "sese.024.001.10"))
    return Traffic(
        partitions,
        frozenset(booked),
        reused,
        unanswerable,
        frozenset(held),
        frozenset(cancelled),
        frozenset(enquired),
        refused_reports,
    )


@dataclass
class Broker:
    """The inbound partitions and the retry topics, with offsets."""

    config: Config
    records: dict[tuple[str, int], list[Record]] = field(default_factory=dict)

    def load(self, traffic: dict[tuple[Side, int], list[bytes]]) -> None:
        for (side, partition), values in traffic.items():
            topic = self.config.side(side).inbound_topic
            self.records[(topic, partition)] = [
                Record(topic, partition, offset, value) for offset, value in enumerate(values)
            ]

    def confirmation(self) -> Record:
        """The RTGS's ACSC of cycle CNY-000001's settlement instruction."""
        topic = self.config.offshore.inbound_topic
        value = SAMPLES / "offshore" / "rtgs" / "pacs.002.001.10-settles-CNY-000001.xml"
        queue = self.records.setdefault((topic, PARTITIONS), [])
        queue.append(Record(topic, PARTITIONS, len(queue), value.read_bytes()))
        return queue[-1]

    def retry(self, rows: Sequence[OutboxRow]) -> list[Record]:
        """Rows written to the retry topics, as the records they become."""
        out = []
        for row in rows:
            queue = self.records.setdefault((row.topic, 0), [])
            out.append(Record(row.topic, 0, len(queue), row.value, row.headers, row.key))
            queue.append(out[-1])
        return out


@dataclass
class Gateway:
    """The service's batch path, without Kafka: read, load, decide, commit; then the relay."""

    store: StateStore
    config: Config
    outputs: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.translator = Translator(self.config, clock=lambda: T0)
        self.decider = Decider(self.config, self.translator)

    async def batch(self, records: Sequence[Record]) -> None:
        prepared = []
        for r in records:
            p = prepare_record(r, SIDE_OF)
            assert p is not None
            prepared.append(p)
        readings = read_records(
            self.translator, [(r.value, p.source) for r, p in zip(records, prepared, strict=True)]
        )
        for p, reading in zip(prepared, readings, strict=True):
            p.reading = reading
        # As the pipeline does: a status enquiry after the records before it are committed.
        for segment in segments(prepared):
            claims = await self.store.claims([k for p in segment for k in p.claim_keys])
            known = await self.store.correlations([r for p in segment for r in p.reading.refs])
            about = [p.keys.correlation for p in segment if p.reading.deferred and p.keys]
            waiting = await self.store.waiting([c for c in about if c])
            facts = await self.store.facts(enquired(segment))
            decisions = self.decider.decide_batch(
                segment, claims, known, waiting, wall=0.0, facts=facts
            )

            rules = Rules(T0, policy=self.config.settlement.cap_policy)
            await self.store.commit_batch([e for e in decisions if e is not None], rules)
            # As the pipeline does after a commit: the rejects of payments refused for their
            # cap.
            for held in await self.store.refusals():
                rows = self.decider.cap_reject(held.source, held.value, held.payer)
                assert await self.store.finish_refusal(held.id, rows)

    async def relay(self) -> list[OutboxRow]:
        """What the relay publishes now; the retry rows among them returned."""
        retry: list[OutboxRow] = []

        async def publish(rows: list[OutboxRow]) -> None:
            for row in rows:
                if row.topic.startswith(self.config.kafka.retry_topic_prefix):
                    retry.append(row)
                else:
                    self.outputs.append((row.topic, row.key, row.value))

        while await self.store.relay(1000, publish):
            pass
        return retry

    async def state(self) -> tuple[object, ...]:
        obligations = sorted(
            (o.reference, str(o.amount.amount), status)
            for o, status in await self.store.obligations()
        )
        positions = {c.id: await self.store.positions(c.id) for c in await self.store.cycles()}
        # Which payment is which, not the order they were held in: that follows the
        # interleaving of partitions.
        held = sorted((h.payer, h.status, h.value) for h in await self.store.held())
        cycles = [(c.id, c.status, c.reason) for c in await self.store.cycles()]
        return obligations, positions, held, cycles, sorted(self.outputs)


async def deliver(
    gateway: Gateway,
    broker: Broker,
    order: Sequence[tuple[str, int]],
    cuts: Sequence[int],
    crashes: Sequence[bool],
    picks: Sequence[int] = (0,),
) -> None:
    """Deliver the inbound partitions in the interleaving `order` (one partition name per
    record), cut into batches of the sizes in `cuts` (cycled); after a batch whose `crashes`
    flag is set, the same records come again with the next batch (its offsets were never
    committed). Then the retry topics, until nothing waits: the records of the shortest delay
    first (the lowest attempt), but among them in any order (`picks`, cycled: which one
    next), since the retry topics and their partitions keep no order between each other."""
    heads = {tp: 0 for tp in broker.records}
    stream = []
    for tp in order:
        stream.append(broker.records[tp][heads[tp]])
        heads[tp] += 1
    assert all(heads[tp] == len(broker.records[tp]) for tp in heads)
    replay: list[Record] = []
    waiting: list[Record] = []  # on the retry topics
    i = n = 0
    while i < len(stream) or replay:
        size = cuts[n % len(cuts)]
        batch = replay + stream[i : i + size]
        i += size
        await gateway.batch(batch)
        replay = list(batch) if crashes[n % len(crashes)] and i < len(stream) else []
        n += 1
        waiting += broker.retry(await gateway.relay())
    # The retry topics, once their delays pass: whatever waits there, until nothing does.
    turn = 0  # counted from the retry topics' first record: the same picks, however batched
    while waiting:
        lowest = min(_attempt(r) for r in waiting)
        due = [i for i, r in enumerate(waiting) if _attempt(r) == lowest]
        record = waiting.pop(due[picks[turn % len(picks)] % len(due)])
        turn += 1
        await gateway.batch([record])
        waiting += broker.retry(await gateway.relay())
    # Every answer that waited was decided at last, and nothing waits behind it any more.
    assert await gateway.store.waiting() == []


def _attempt(record: Record) -> int:
    return int(dict(record.headers)["attempt"])


def sequential_order(broker: Broker) -> list[tuple[str, int]]:
    """Each partition whole, in turn: every original before the answers to it."""
    return [tp for tp in sorted(broker.records) for _ in broker.records[tp]]


async def run_once(
    config: Config,
    state: StateSection,
    traffic: dict[tuple[Side, int], list[bytes]],
    order: Callable[[Broker], list[tuple[str, int]]],
    cuts: Sequence[int],
    crashes: Sequence[bool],
    picks: Sequence[int] = (0,),
) -> tuple[object, ...]:
    store = store_for(state)
    await store.open()
    try:
        broker = Broker(config)
        broker.load(traffic)
        gateway = Gateway(store, config)
        await deliver(gateway, broker, order(broker), cuts, crashes, picks)
        # The operator closes the cycle, and the RTGS confirms its settlement instruction
        # (its MsgId is derived from the cycle, so the sample answers it).
        manager = CycleManager(
            config, store, gateway.translator.reference, clock=lambda: T0, owner="sim"
        )
        assert await manager.close_now("CNY") == "CNY-000001"
        assert not broker.retry(await gateway.relay())
        (closed, _) = await store.cycles()
        if closed.status == "instructed":  # else nothing was left to settle
            await gateway.batch([broker.confirmation()])
            assert not broker.retry(await gateway.relay()), "it answers the instruction"
        return await gateway.state()
    finally:
        await store.close()


@st.composite
def interleaving(draw: st.DrawFn, broker: Broker) -> list[tuple[str, int]]:
    """Any merge of the partitions that keeps each one's order."""
    names = [tp for tp in sorted(broker.records) for _ in broker.records[tp]]
    return draw(st.permutations(names))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_delivery_of_real_traffic_ends_as_one_record_at_a_time(
    fresh_state: Callable[[], Awaitable[StateSection]], tmp_path: Path, data: st.DataObject
) -> None:
    sent = data.draw(traffic(), label="traffic")
    policy = data.draw(st.sampled_from(["queue", "reject"]), label="cap policy")
    config = simulation_config(tmp_path, policy)
    probe = Broker(CONFIG)
    probe.load(sent.partitions)
    order = data.draw(interleaving(probe), label="interleaving")
    cuts = data.draw(st.lists(st.integers(1, 12), min_size=1, max_size=6), label="cuts")
    crashes = data.draw(st.lists(st.booleans(), min_size=1, max_size=6), label="crashes")
    picks = data.draw(st.lists(st.integers(0, 5), min_size=1, max_size=6), label="retry order")

    async def run() -> None:
        reference = await run_once(
            config, await fresh_state(), sent.partitions, sequential_order, [1], [False]
        )
        delivered = await run_once(
            config, await fresh_state(), sent.partitions, lambda _: order, cuts, crashes, picks
        )
        # The same interleaving one record at a time, no crash: exactly the same, every
        # output included (a status enquiry's answer tells what was known when it was asked,
        # which batching must not change).
        one_by_one = await run_once(
            config, await fresh_state(), sent.partitions, lambda _: order, [1], [False], picks
        )
        assert delivered == one_by_one
        # The reference itself is right where it is easy to say: every payment with room
        # booked once, every other one held or refused, and nothing else refused but the
        # reused ids and the answers to what never reached the other side.
        obligations, _, held, cycles, outputs = reference
        event(f"held payments cancelled by their payer: {len(sent.cancelled) > 0}")
        event(f"cancellation outputs: {any(b'camt.0' in o[2] for o in outputs)}")
        assert isinstance(obligations, list) and isinstance(outputs, list)
        assert isinstance(held, list)
        references = {o[0] for o in obligations}
        assert sent.booked <= references and not sent.held & references, obligations
        if policy == "queue":
            # A held payment its payer cancels leaves the queue (the gateway answers CNCL).
            statuses = {"queued": len(sent.held - sent.cancelled), "cancelled": len(sent.cancelled)}
        else:
            statuses = {"refused": len(sent.held)}
        assert Counter(h[1] for h in held) == +Counter(statuses), held
        # No payment is both voided (rejected, cancelled) and given back by a return.
        void = {o[0] for o in obligations if o[2] == "void"}
        assert not {f"return:{r}" for r in void} & references, obligations
        assert [(c[0], c[1]) for c in cycles] == [("CNY-000001", "settled"), ("CNY-000002", "open")]
        dead = [key for topic, key, _ in outputs if topic == config.kafka.dlq_topic]
        # Under policy reject, a cancellation of a payment refused for its cap finds nothing
        # (a status enquiry about it is told it was refused).
        refused_requests = len(sent.cancelled) if policy == "reject" else 0
        expected = sent.reused + sent.unanswerable + refused_requests + sent.refused_reports
        assert len(dead) == expected, dead
        # Across interleavings, everything but what a status enquiry was told: that depends
        # on what the other side had said when it was asked, by design.
        for what, one, other in zip(
            ("obligations", "positions", "held", "cycles", "outputs"),
            (*reference[:4], _unasked(reference[4])),
            (*delivered[:4], _unasked(delivered[4])),
            strict=True,
        ):
            assert one == other, what

    asyncio.run(run())


def _unasked(outputs: object) -> list[tuple[str, bytes, bytes]]:
    """Outputs but those about a request that reads state (a status enquiry: its answer, its
    forwarded copy, its reject; a report request: its report)."""
    assert isinstance(outputs, list)
    return [o for o in outputs if b"-P28-" not in o[1] and b"-C60-" not in o[1]]


def test_answers_held_back_by_a_retry_are_decided_in_the_order_their_side_sent_them(
    fresh_state: Callable[[], Awaitable[StateSection]], tmp_path: Path
) -> None:
    """The case the simulation found: a payment comes in one batch with its status and its
    return, which wait on the retry topics (a capped payment's answers wait for its commit).
    The next batch brings its payer's cancellation request and the other side's CNCL, sent
    after the return. The CNCL must not overtake the return: the payment was given back, so
    the cancellation voids nothing, as when each record comes alone."""
    config = simulation_config(tmp_path, "queue")
    amount = "2.00"

    def numbered(side: Side, msg_def: str) -> bytes:
        return _numbered(sample(side, msg_def), "offshore", 1, amount)

    sent = {
        ("offshore", 0): [],
        ("onshore", 0): [],
        ("offshore", 1): [
            numbered("offshore", "pacs.008.001.08"),
            numbered("offshore", "camt.056.001.08"),
        ],
        ("onshore", 1): [
            numbered("onshore", "pacs.002.001.10"),
            numbered("onshore", "pacs.004.001.09"),
            numbered("onshore", "camt.029.001.09"),
        ],
    }
    off, on = ("offshore.inbound", 1), ("onshore.inbound", 1)
    order = [off, on, on, off, on]

    async def run() -> None:
        reference = await run_once(
            config, await fresh_state(), sent, sequential_order, [1], [False]
        )
        delivered = await run_once(
            config, await fresh_state(), sent, lambda _: order, [3, 2], [False]
        )
        obligations = reference[0]
        assert isinstance(obligations, list)
        uetr = _uetr("offshore", 1)
        assert (uetr, amount, "open") in obligations and (
            f"return:{uetr}",
            amount,
            "open",
        ) in obligations
        assert delivered == reference

    asyncio.run(run())
