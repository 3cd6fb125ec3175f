"""Any batching of the same records, with crashes and replays, settles exactly as the
sequential reference model (tests/settlement_model.py) does, on SQLite and PostgreSQL.

Traffic: capped and uncapped payments in two currencies, rejections (voids) of payments before
and after them, returns (a second return of one payment included), cancellation requests (each
read as if its payment were held: the transaction finds it held, or released by a credit
earlier in the batch, or booked) and cancellations accepted by the other side, exact copies,
PssblDplct resends, operator closes with the RTGS's confirmations and rejections, payments over their cap
(queue and reject policies). Delivery: batch boundaries at random; after a batch commits, a
crash may replay part of it with what follows. Operator closes happen between batches, as in
the service (they are not records).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.canonical import Money, Obligation
from gateway.clock import UTC8
from gateway.config import StateSection
from gateway.replay.clients import publish as kafka_publish
from gateway.settlement.ledger import Rules
from gateway.sides import Side
from gateway.state import StateStore, store_for
from gateway.state.base import Effects, OutboxRow
from gateway.topics import ensure_topics
from tests.harness import gateway_config, running_gateway, sample
from tests.settlement_model import SettlementModel, instruction_of

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC8)
CAPS = {"A": Decimal("20.00"), "B": Decimal("10.00"), "C": Decimal("1000.00")}
PARTICIPANTS = sorted(CAPS)


@dataclass(frozen=True)
class Close:
    currency: str


Item = Effects | Close


def _row(key: str, value: str) -> tuple[OutboxRow, ...]:
    return (OutboxRow("out", key.encode(), value.encode(), (("k", key.encode()),)),)


@st.composite
def traffic(draw: st.DrawFn) -> list[Item]:
    """A stream of records and closes, answers possibly before what they answer."""
    pays = draw(
        st.lists(
            st.tuples(
                st.sampled_from(PARTICIPANTS),
                st.sampled_from(PARTICIPANTS),
                # Coarse amounts against small caps: holds, releases and refusals are common.
                st.one_of(st.sampled_from([700, 1_200, 1_500, 2_500]), st.integers(1, 4_000)),
                st.sampled_from(["CNY", "CNY", "HKD"]),
                st.sampled_from([True, True, False]),
            ).filter(lambda t: t[0] != t[1]),
            min_size=1,
            max_size=14,
        )
    )
    obligations = [
        Obligation(payer, payee, Money(Decimal(minor) / 100, ccy), f"uetr-{i}")
        for i, (payer, payee, minor, ccy, _) in enumerate(pays)
    ]
    records: list[Effects] = []
    for i, ((_, _, _, _, capped), o) in enumerate(zip(pays, obligations, strict=True)):
        records.append(
            Effects(
                [(f"msg-{i}", f"fp-{i}"), (f"uetr:{o.reference}", f"fp-{i}")],
                list(_row(f"pay-{i}", f"payment {i}")),
                [o],
                cap=CAPS[o.payer] if capped else None,
                source="onshore",
                value=f"<payment {i}/>".encode(),
            )
        )
    answers = draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    ["reject", "return", "cancel", "accept", "copy", "resend", "close", "confirm"]
                ),
                st.integers(0, len(pays) - 1),
                st.sampled_from(["CNY", "HKD"]),
                st.integers(1, 3),
                st.sampled_from(["settled", "failed", "ACSP"]),
            ),
            max_size=16,
        )
    )
    stream: list[Item] = list(records)
    for j, (kind, i, ccy, seq, status) in enumerate(answers):
        o = obligations[i]
        item: Item
        if kind == "reject":
            item = Effects(
                [(f"rjct-{j}", f"fp-rjct-{j}")],
                list(_row(f"rjct-{j}", f"rejection of {i}")),
                voids=[o.reference],
            )
        elif kind == "return":
            back = Obligation(o.payee, o.payer, o.amount, f"return:{o.reference}")
            item = Effects(
                [(f"rtr-{j}", f"fp-rtr-{j}")], list(_row(f"rtr-{j}", f"return of {i}")), [back]
            )
        elif kind == "cancel":
            # Forwarded (`outbox`), unless the payment is still held: then cancelled here and
            # answered with `held_outbox`.
            item = Effects(
                [(f"cxl-{j}", f"fp-cxl-{j}")],
                list(_row(f"cxl-{j}", f"cancellation of {i}, forwarded")),
                cancel_held=o.reference,
                held_outbox=list(_row(f"cxl-{j}", f"payment {i} cancelled here")),
            )
        elif kind == "accept":
            item = Effects(
                [(f"cncl-{j}", f"fp-cncl-{j}")],
                list(_row(f"cncl-{j}", f"cancellation of {i} accepted")),
                voids_open=[o.reference],
            )
        elif kind == "copy":
            item = records[i]
        elif kind == "resend":
            item = Effects([(f"resend-{j}", f"fp-{i}")], replay_key=f"uetr:{o.reference}")
        elif kind == "close":
            item = Close(ccy)
        else:
            cycle = f"{ccy}-{seq:06d}"
            item = Effects(
                [(f"confirm-{j}", f"fp-confirm-{j}")],
                cycle_outcomes=[(cycle, status, "", instruction_of(cycle))],
            )
        stream.insert(draw(st.integers(0, len(stream))), item)
    return stream


@st.composite
def deliveries(draw: st.DrawFn, stream: list[Item]) -> list[list[Item] | Close]:
    """The stream as the store sees it: batches of records between closes; after a batch
    commits, a crash may deliver part of it again with what follows."""
    out: list[list[Item] | Close] = []
    segment: list[Item] = []

    def flush() -> None:
        i = 0
        while i < len(segment):
            j = draw(st.integers(i + 1, len(segment)))
            out.append(segment[i:j])
            # A crash after the commit, before the offsets: redelivered from an earlier offset.
            i = draw(st.sampled_from([j, j, j, draw(st.integers(i, j - 1))]))
        segment.clear()

    for item in stream:
        if isinstance(item, Close):
            flush()
            out.append(item)
        else:
            segment.append(item)
    flush()
    return out


def model_of(stream: list[Item], policy: str, offsetting: str = "multilateral") -> SettlementModel:
    model = SettlementModel(policy=policy, offsetting=offsetting)
    for item in stream:
        if isinstance(item, Close):
            model.close(item.currency)
        else:
            model.apply(item)
    return model


async def settle(store: StateStore, delivery: list[list[Item] | Close], rules: Rules) -> None:
    for step in delivery:
        if isinstance(step, Close):
            frozen = await store.freeze(step.currency, rules)
            if frozen is not None:
                assert await store.take_close(frozen, "sim", 60)
                instruction = instruction_of(frozen)
                assert await store.finish_close(
                    frozen, "sim", "instructed", "{}", instruction, [], [], [instruction]
                )
                await store.release_held(step.currency, rules)
        else:
            batch = [e for e in step if isinstance(e, Effects)]
            await store.commit_batch(batch, rules)


async def compare(store: StateStore, model: SettlementModel) -> None:
    statuses = {o.reference: status for o, status in await store.obligations()}
    assert statuses == model.statuses()
    cycles = await store.cycles()
    assert {c.id: c.status for c in cycles} == model.cycle_status
    for c in cycles:
        expected = model.positions(c.id)
        assert await store.positions(c.id) == expected, c.id
        assert (await store.net_cycle(c.id, c.currency)).positions == expected, c.id
    held = [(h.value, h.status) for h in await store.held()]
    assert held == [(h.record.value, h.status) for h in model.held]
    outputs: dict[bytes, list[bytes]] = defaultdict(list)

    async def collect(rows: list[OutboxRow]) -> None:
        for r in rows:
            outputs[r.key].append(r.value)

    while await store.relay(1000, collect):
        pass
    assert outputs == model.outputs


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_batching_with_crashes_settles_as_the_sequential_model(
    fresh_state: Callable[[], Awaitable[StateSection]], data: st.DataObject
) -> None:
    stream = data.draw(traffic(), label="stream")
    policy = data.draw(st.sampled_from(["queue", "reject"]), label="policy")
    offsetting = data.draw(st.sampled_from(["multilateral", "off"]), label="offsetting")
    delivery = data.draw(deliveries(stream), label="delivery")
    model = model_of(stream, policy, offsetting)
    rules = Rules(T0, policy=policy, offsetting=offsetting)

    async def run() -> None:
        store = store_for(await fresh_state())
        await store.open()
        try:
            await settle(store, delivery, rules)
            await compare(store, model)
        finally:
            await store.close()

    asyncio.run(run())


async def test_a_rejection_in_its_payments_batch_voids_it(state: StateSection) -> None:
    """The reported case, as one batch: a payment and the other side's rejection of it."""
    pay = Effects(
        [("msg-1", "fp")],
        list(_row("pay-1", "payment")),
        [Obligation("A", "B", Money(Decimal("12500.00"), "CNY"), "uetr-1")],
        cap=Decimal("1000000"),
    )
    rjct = Effects([("rjct-1", "fp")], list(_row("rjct-1", "rejection")), voids=["uetr-1"])
    store = store_for(state)
    await store.open()
    try:
        assert await store.commit_batch([pay, rjct], Rules(T0)) == [True, True]
        assert [(o.reference, s) for o, s in await store.obligations()] == [("uetr-1", "void")]
        assert await store.positions("CNY-000001") == {}
    finally:
        await store.close()


async def test_a_payment_released_by_a_rejection_is_published(state: StateSection) -> None:
    """A rejection credits the payer: its held payment is released, booked and published."""

    def pay(n: int, amount: str) -> Effects:
        o = Obligation("A", "B", Money(Decimal(amount), "CNY"), f"uetr-{n}")
        return Effects(
            [(f"msg-{n}", "fp")], list(_row(f"pay-{n}", f"payment {n}")), [o], cap=Decimal(20)
        )

    rjct = Effects([("rjct-1", "fp")], list(_row("rjct-1", "rejection")), voids=["uetr-1"])
    store = store_for(state)
    await store.open()
    try:
        await store.commit_batch([pay(1, "15.00"), pay(2, "10.00")], Rules(T0))
        await store.commit_batch([rjct], Rules(T0))
        assert [h.status for h in await store.held()] == ["released"]
        published: list[bytes] = []

        async def collect(rows: list[OutboxRow]) -> None:
            published.extend(r.value for r in rows)

        await store.relay(100, collect)
        assert published == [b"payment 1", b"rejection", b"payment 2"]
        assert await store.positions("CNY-000001") == {"A": -1000, "B": 1000}
    finally:
        await store.close()


def _scenario() -> list[tuple[Side, bytes]]:
    """The reported reproduction and more, in publication order per side: payments both ways,
    a DVP instruction, the other side's rejections of the onshore payment and of the DVP, a
    status on the offshore payment, an exact copy, a PssblDplct resend and a reused id."""
    payment = sample("onshore", "pacs.008.001.08")
    rjct = sample("offshore", "pacs.002.001.10").replace(
        b"<TxSts>ACSC</TxSts>",
        b"<TxSts>RJCT</TxSts><StsRsnInf><Rsn><Cd>AC04</Cd></Rsn></StsRsnInf>",
    )
    resend = payment.replace(b"</CreDt>", b"</CreDt>\n    <PssblDplct>true</PssblDplct>")
    reused = payment.replace(b">1250000.00<", b">1250000.01<", 1)
    return [
        ("onshore", payment),
        ("offshore", sample("offshore", "sese.023.001.09")),
        ("offshore", rjct),
        ("onshore", sample("onshore", "sese.024.001.10")),  # Rjctd: the DVP is rejected
        ("offshore", sample("offshore", "pacs.008.001.08")),
        ("onshore", sample("onshore", "pacs.002.001.10")),
        ("offshore", sample("offshore", "pacs.008.001.08")),  # an exact copy
        ("onshore", resend),
        ("onshore", reused),  # DU01
    ]


Outputs = dict[str, list[tuple[bytes, bytes | None, bytes | None]]]


async def _final_state(
    kafka_bootstrap: str, state: StateSection, trickle: bool
) -> tuple[list[tuple[str, str, str]], dict[str, int], Outputs]:
    """Publish the scenario (all before the gateway joins, or one record at a time once each
    is processed) and return what it ends in: obligations, positions, outputs by key."""
    config = gateway_config(f"t{uuid.uuid4().hex[:10]}", state)
    scenario = _scenario()
    outputs = {
        config.offshore.outbound_topic: 4,
        config.onshore.outbound_topic: 4,
        config.kafka.dlq_topic: 1,
    }

    async def publish(side: Side, value: bytes) -> None:
        # One key per side: one partition each, so each side's order is kept, as a partner's
        # keyed traffic is; the two sides interleave as the consumer fetches them.
        await kafka_publish(
            kafka_bootstrap, config.side(side).inbound_topic, [(side.encode(), value)]
        )

    if not trickle:
        await ensure_topics(kafka_bootstrap, config.topics())
        for side, value in scenario:
            await publish(side, value)
    async with running_gateway(config, kafka_bootstrap) as gateway:
        if trickle:
            for n, (side, value) in enumerate(scenario, 1):
                await publish(side, value)
                async with asyncio.timeout(60):
                    # The pipeline keeps a count, not an event: polled, bounded by the timeout.
                    while gateway.pipeline.processed < n:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
        got: Outputs = {}
        for topic, count in outputs.items():
            records = await gateway.read(topic, count)
            got[topic.split(".", 1)[1]] = sorted(
                (
                    r.key,
                    dict(r.headers).get("message-type"),
                    dict(r.headers).get("reject-reason"),
                )
                for r in records
            )
        obligations = sorted(
            (o.reference, str(o.amount.amount), s) for o, s in await gateway.store.obligations()
        )
        positions = await gateway.store.positions("CNY-000001")
    return obligations, positions, got


@pytest.mark.kafka
async def test_the_same_traffic_batched_or_trickled_ends_in_the_same_state(
    kafka_bootstrap: str, fresh_state: Callable[[], Awaitable[StateSection]]
) -> None:
    batched = await _final_state(kafka_bootstrap, await fresh_state(), trickle=False)
    trickled = await _final_state(kafka_bootstrap, await fresh_state(), trickle=True)
    for what, one, other in zip(
        ("obligations", "positions", "outputs"), batched, trickled, strict=True
    ):
        if isinstance(one, dict) and isinstance(other, dict):
            for key in sorted({*one, *other}):
                assert one.get(key) == other.get(key), (what, key)
        assert one == other, what
    obligations, positions, _ = batched
    # The rejected payment and the rejected DVP are void; only the offshore payment settles.
    assert obligations == [
        ("0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01", "1250000.00", "void"),
        ("5e9d2a7b-3c84-4f1e-a6b2-8d0c4e7f1a22", "1250000.00", "open"),
        ("sese:OFF-SESE-0001", "10125000.00", "void"),
    ]
    assert sum(positions.values()) == 0 and sorted(positions.values()) == [-125000000, 125000000]


@pytest.mark.parametrize("first", ["credit", "cancel"])
async def test_a_cancellation_racing_a_cap_release_in_one_batch(
    state: StateSection, first: str
) -> None:
    """A's payment 2 is held behind its cap; a credit to A and A's request to cancel 2 come in
    one batch. Credit first: 2 is released and out there, so the request is forwarded. Request
    first: 2 is cancelled here (the gateway's answer instead), and the credit releases
    nothing else. Either way 2 is booked, or cancelled, once: never both."""

    def pay(n: int, payer: str, payee: str, amount: str) -> Effects:
        o = Obligation(payer, payee, Money(Decimal(amount), "CNY"), f"uetr-{n}")
        return Effects(
            [(f"msg-{n}", "fp")], list(_row(f"pay-{n}", f"payment {n}")), [o], cap=Decimal(10)
        )

    cancel = Effects(
        [("cxl-2", "fp")],
        list(_row("cxl-2", "request forwarded")),
        cancel_held="uetr-2",
        held_outbox=list(_row("cxl-2", "cancelled here")),
    )
    credit = pay(3, "B", "A", "8.00")
    store = store_for(state)
    await store.open()
    try:
        await store.commit_batch([pay(1, "A", "B", "5.00"), pay(2, "A", "B", "8.00")], Rules(T0))
        assert [h.status for h in await store.held()] == ["queued"]
        batch = [credit, cancel] if first == "credit" else [cancel, credit]
        await store.commit_batch(batch, Rules(T0))
        published: dict[bytes, bytes] = {}

        async def collect(rows: list[OutboxRow]) -> None:
            published.update((r.key, r.value) for r in rows)

        await store.relay(100, collect)
        statuses = {o.reference: s for o, s in await store.obligations()}
        if first == "credit":
            assert [h.status for h in await store.held()] == ["released"]
            assert published[b"cxl-2"] == b"request forwarded"
            assert statuses == {"uetr-1": "open", "uetr-2": "open", "uetr-3": "open"}
            assert cancel.outcome == "translated"
        else:
            assert [h.status for h in await store.held()] == ["cancelled"]
            assert published[b"cxl-2"] == b"cancelled here"
            assert b"pay-2" not in published
            assert statuses == {"uetr-1": "open", "uetr-3": "open"}
            assert cancel.outcome == "cancelled"
    finally:
        await store.close()
