"""The settlement ledger's reads and writes in each state store (no broker): cycles, caps,
held payments, voids and closes land the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from gateway.canonical import Money, Obligation
from gateway.clock import UTC8
from gateway.config import StateSection
from gateway.correlations import Correlation
from gateway.settlement.ledger import Rules
from gateway.state import StateStore, store_for
from gateway.state.base import Effects, OutboxRow

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC8)


@pytest.fixture
async def store(state: StateSection) -> AsyncIterator[StateStore]:
    s = store_for(state)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def pay(n: int, payer: str, payee: str, amount: str, cap: str | None = None) -> Effects:
    o = Obligation(payer, payee, Money(Decimal(amount), "CNY"), f"uetr-{n}")
    row = OutboxRow("out", f"k{n}".encode(), f"payment {n}".encode(), (("n", str(n).encode()),))
    return Effects(
        [(f"msg-{n}", f"fp-{n}")],
        [row],
        [o],
        cap=Decimal(cap) if cap else None,
        source="onshore",
        value=f"<payment {n}/>".encode(),
    )


async def published(store: StateStore) -> list[bytes]:
    got: list[bytes] = []

    async def collect(rows: list[OutboxRow]) -> None:
        got.extend(r.value for r in rows)

    await store.relay(1000, collect)
    return got


async def test_caps_hold_in_order_across_batches_and_a_credit_releases(store: StateStore) -> None:
    rules = Rules(T0)
    await store.commit_batch([pay(1, "A", "B", "15.00", cap="20.00")], rules)
    await store.commit_batch(
        [pay(2, "A", "C", "10.00", cap="20.00"), pay(3, "A", "B", "1.00", cap="20.00")], rules
    )
    await store.commit_batch([pay(4, "A", "B", "1.00", cap="20.00")], rules)  # behind too
    assert await published(store) == [b"payment 1"]
    assert [h.status for h in await store.held()] == ["queued"] * 3
    assert await store.positions("CNY-000001") == {"A": -1500, "B": 1500}

    await store.commit_batch([pay(5, "B", "A", "12.00", cap="100.00")], rules)
    assert await published(store) == [b"payment 5", b"payment 2", b"payment 3", b"payment 4"]
    assert [h.status for h in await store.held()] == ["released"] * 3
    assert await store.positions("CNY-000001") == {"A": -1500, "B": 500, "C": 1000}
    netting = await store.net_cycle("CNY-000001", "CNY")
    assert netting.positions == await store.positions("CNY-000001") and netting.count == 5


def correlation(n: int) -> Correlation:
    return Correlation(
        f"uetr:uetr-{n}",
        "onshore",
        None,
        None,
        f"m{n}",
        "pacs.008.001.08",
        None,
        f"ob{n}",
        f"om{n}",
    )


async def test_a_held_payment_can_be_answered_only_once_released(store: StateStore) -> None:
    """Its answers need its correlation, and nothing can answer a payment that has not reached
    the other side: the correlation waits beside the held payment and is stored at release
    (found by the simulation in tests/test_simulation.py: a status was forwarded to the payer
    of a payment still held)."""
    rules = Rules(T0)
    first, second = pay(1, "A", "B", "15.00", cap="20.00"), pay(2, "A", "B", "10.00", cap="20.00")
    first.correlations, second.correlations = [correlation(1)], [correlation(2)]
    await store.commit_batch([first, second], rules)
    assert [h.status for h in await store.held()] == ["queued"]
    # The held one is read only marked held: a cancellation request may see it, nothing
    # else may answer it (correlations.MemoryCorrelations keeps it apart).
    found = await store.correlations(["uetr:uetr-1", "uetr:uetr-2"])
    assert sorted((c.key, c.held) for c in found) == [
        ("uetr:uetr-1", False),
        ("uetr:uetr-2", True),
    ]
    await store.commit_batch([pay(3, "B", "A", "12.00", cap="100.00")], rules)  # room for 2
    assert [h.status for h in await store.held()] == ["released"]
    found = await store.correlations(["uetr:uetr-2", "ob2", "om2"])
    assert found == [correlation(2)]


async def test_refusals_are_recorded_once_and_never_booked(store: StateStore) -> None:
    rules = Rules(T0, policy="reject")
    await store.commit_batch(
        [pay(1, "A", "B", "15.00", cap="20.00"), pay(2, "A", "B", "6.00", cap="20.00")], rules
    )
    (refused,) = await store.refusals()
    assert (refused.value, refused.payer) == (b"<payment 2/>", "A")
    reject = OutboxRow("back", b"k2", b"reject 2", ())
    assert await store.finish_refusal(refused.id, [reject])
    assert not await store.finish_refusal(refused.id, [reject])  # once
    assert await published(store) == [b"payment 1", b"reject 2"]
    assert len(await store.obligations()) == 1


async def test_cut_off_freeze_close_and_outcome(store: StateStore) -> None:
    cut = T0 + timedelta(hours=1)

    def schedule(after: datetime) -> datetime:
        return cut if after < cut else cut + timedelta(hours=4)

    await store.commit_batch([pay(1, "A", "B", "1.00")], Rules(T0, schedule))
    await store.commit_batch([pay(2, "B", "C", "2.00")], Rules(cut, schedule))  # at the cut-off
    first, second = await store.cycles()
    assert (first.status, first.cut_off, second.status) == ("closing", cut.isoformat(), "open")
    assert second.opened_at == cut.isoformat()
    assert second.due_at == (cut + timedelta(hours=4)).isoformat()
    assert [c.id for c in await store.cycles(status="open")] == [second.id]
    assert [c.id for c in await store.cycles("CNY", "closing")] == [first.id]
    assert await store.cycles("HKD") == []
    # A scheduled freeze of a cycle a batch already rolled does nothing.
    assert await store.freeze("CNY", Rules(cut, schedule), first.id) is None

    assert await store.take_close(first.id, "me", 30)
    assert not await store.take_close(first.id, "other", 30)  # held by me
    row = OutboxRow("rtgs", b"CNY-000001", b"instruction", ())
    awaiting = ["MSG1", "MSG2"]  # e.g. two pacs.009 transfers
    assert await store.finish_close(first.id, "me", "instructed", "{}", "REF", [row], [], awaiting)
    assert not await store.finish_close(first.id, "me", "instructed", "{}", "REF", [row], [], [])
    assert await published(store) == [b"payment 1", b"payment 2", b"instruction"]

    def answer(n: int, status: str, reason: str, instruction: str) -> Effects:
        return Effects(
            [(f"answer-{n}", "fp")], cycle_outcomes=[(first.id, status, reason, instruction)]
        )

    await store.commit_batch([answer(1, "settled", "ACSC", "MSG1")])
    await store.commit_batch([answer(2, "ACSP", "ACSP", "MSG2")])  # interim: nothing changes
    assert (await store.cycles())[0].status == "instructed"  # MSG2 still awaited
    await store.commit_batch([answer(3, "settled", "ACSC", "MSG2")])
    await store.commit_batch([answer(4, "failed", "RJCT", "MSG2")])  # too late: stays settled
    (first, second) = await store.cycles()
    assert (first.status, first.reason, first.instruction_id) == ("settled", "ACSC", "REF")


async def test_any_rejected_instruction_fails_the_cycle(store: StateStore) -> None:
    await store.commit_batch([pay(1, "A", "B", "1.00")], Rules(T0))
    cycle = await store.freeze("CNY", Rules(T0))
    assert cycle is not None and await store.take_close(cycle, "me", 30)
    assert await store.finish_close(cycle, "me", "instructed", "{}", "REF", [], [], ["M1", "M2"])
    await store.commit_batch(
        [Effects([("a", "fp")], cycle_outcomes=[(cycle, "settled", "ACSC", "M1")])]
    )
    await store.commit_batch(
        [Effects([("b", "fp")], cycle_outcomes=[(cycle, "failed", "RJCT: AM04", "M2")])]
    )
    failed = (await store.cycles())[0]
    assert (failed.status, failed.reason) == ("failed", "RJCT: AM04")


async def test_a_void_after_the_freeze_reverses_into_the_open_cycle(store: StateStore) -> None:
    await store.commit_batch([pay(1, "A", "B", "3.00")], Rules(T0))
    assert await store.freeze("CNY", Rules(T0)) == "CNY-000001"
    await store.commit_batch([Effects([("status-1", "fp")], voids=["uetr-1"])], Rules(T0))
    assert await store.positions("CNY-000002") == {"A": 300, "B": -300}
    assert (await store.net_cycle("CNY-000001", "CNY")).positions == {"A": -300, "B": 300}
    statuses = {o.reference: s for o, s in await store.obligations()}
    assert statuses == {"uetr-1": "reversed", "uetr-1:reversal": "open"}
    # A second rejection of the same payment undoes nothing twice.
    await store.commit_batch([Effects([("status-2", "fp")], voids=["uetr-1"])], Rules(T0))
    assert await store.positions("CNY-000002") == {"A": 300, "B": -300}


async def test_a_postgres_state_of_the_earlier_schema_is_carried_over(postgres_dsn: str) -> None:
    """Before the store was written once, PostgreSQL kept a claim's results as BIGINT[]. A
    database made then opens, and its claims still name what answered them."""
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(
            "CREATE TABLE claims (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, "
            "results BIGINT[] NOT NULL DEFAULT '{}', created_at TIMESTAMPTZ NOT NULL)"
        )
        await conn.execute(
            "INSERT INTO claims VALUES ('msg:a', 'fp', '{4,7}', now()), ('msg:b', 'fp', '{}', now())"
        )
    finally:
        await conn.close()
    store = store_for(StateSection(backend="postgres", postgres_dsn=postgres_dsn))
    await store.open()
    try:
        found = await store.claims(["msg:a", "msg:b"])
        assert (found["msg:a"].results, found["msg:b"].results) == ((4, 7), ())
        # And new claims are written in the new form beside them.
        await store.commit_batch([Effects([("msg:c", "fp")])])
        assert (await store.claims(["msg:c"]))["msg:c"].results == ()
    finally:
        await store.close()


async def test_offsetting_releases_a_gridlock_once_and_instances_never_release_twice(
    state: StateSection,
) -> None:
    """Two payers over their caps paying each other stay held with offsetting off; then two
    store instances on one database run the tick's release at once: one offsetting run
    releases both, each payment is published once (on SQLite the same, one writer at a
    time)."""
    import asyncio

    first, second = store_for(state), store_for(state)
    await first.open()
    await second.open()
    try:
        off = Rules(T0, offsetting="off")
        await first.commit_batch(
            [pay(1, "A", "B", "15.00", cap="10.00"), pay(2, "B", "A", "12.00", cap="10.00")], off
        )
        assert [h.status for h in await first.held()] == ["queued", "queued"]
        assert await published(first) == []

        on = Rules(T0)
        released = await asyncio.gather(
            first.release_held("CNY", on), second.release_held("CNY", on)
        )
        assert sorted(released) == [0, 2]
        assert [h.status for h in await first.held()] == ["released", "released"]
        assert sorted(await published(first) + await published(second)) == [
            b"payment 1",
            b"payment 2",
        ]
        assert await first.positions("CNY-000001") == {"A": -300, "B": 300}
        backlog = await first.backlog()
        assert (backlog.offset_runs, backlog.offset_released) == (1, 2)
        assert backlog.offset_saved == 2700 - 300
        assert backlog.queues == {} and backlog.unsent == 0  # both published above
        saving = await first.liquidity("CNY-000001")
        assert (saving.runs, saving.payments, saving.gross, saving.net) == (1, 2, 2700, 300)
        assert len(saving.held_seconds) == 2
    finally:
        await first.close()
        await second.close()
