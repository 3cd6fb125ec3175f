"""A cycle's close interrupted at any step, then redone by another instance: one settlement
instruction, one report and, once the RTGS confirms, one camt.054 per moving participant, byte
for byte what an uninterrupted close emits (hypothesis)."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.canonical import Money, Obligation
from gateway.clock import UTC8
from gateway.config import Config, NotificationsSection, StateSection
from gateway.cycles import CycleManager
from gateway.settlement.ledger import Rules
from gateway.settlement.statuses import SettlementAnswer
from gateway.state import StateStore, store_for
from gateway.state.base import Effects, OutboxRow
from gateway.translation import Translator

BICS = ["HPCBCNSHXXX", "JADBCNBJXXX", "VHBKHKHHXXX", "KLBKHKHHXXX"]
T0 = datetime(2026, 11, 23, 9, 30, tzinfo=UTC8)
CUT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC8)
# Every store call a close makes, crashed before it runs or after it has run.
STEPS = [
    (name, when)
    for name in (
        "take_close",
        "net_cycle",
        "positions",
        "cycle_obligations",
        "finish_close",
        "release_held",
    )
    for when in ("before", "after")
]

obligations = st.lists(
    st.tuples(st.sampled_from(BICS), st.sampled_from(BICS), st.integers(1, 10**12)).filter(
        lambda o: o[0] != o[1]
    ),
    min_size=1,
    max_size=40,
)


class Crash(Exception):
    pass


class Crashing:
    """A store that fails the close at one step, as a killed process would; its lease is
    treated as run out at once, so the next instance may take over."""

    def __init__(self, store: StateStore, step: tuple[str, str]) -> None:
        self._store = store
        self._step = step

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if name not in {s for s, _ in STEPS}:
            return method

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self._step == (name, "before"):
                raise Crash(name)
            if name == "take_close":
                args = (*args[:2], -1.0)
            result = await method(*args, **kwargs)
            if self._step == (name, "after"):
                raise Crash(name)
            return result

        return call


@pytest.fixture(scope="module")
def translator() -> Translator:
    return Translator(Config())


async def booked(path: Path, obs: list[tuple[str, str, int]]) -> StateStore:
    store = store_for(StateSection(sqlite_path=str(path)))
    await store.open()
    effects = [
        Effects(
            [(f"m{n}", "fp")],
            obligations=[Obligation(a, b, Money(Decimal(u).scaleb(-2), "CNY"), f"u{n}")],
        )
        for n, (a, b, u) in enumerate(obs)
    ]
    await store.commit_batch(effects, Rules(T0, lambda _: CUT))
    await store.commit_batch([], Rules(CUT))
    return store


async def emitted(store: StateStore) -> list[OutboxRow]:
    rows: list[OutboxRow] = []

    async def collect(batch: list[OutboxRow]) -> None:
        rows.extend(batch)

    await store.relay(10_000, collect)
    return [r for r in rows if r.topic != "out"]


# Notifications with every obligation listed: the close reads them too (cycle_obligations).
CONFIG = Config(notifications=NotificationsSection(detail="payments"))


async def close(store: Any, translator: Translator, owner: str, minutes: int) -> None:
    """A tick of an instance whose clock reads `minutes` past the cut-off: what it emits
    must depend on the recorded cut-off only."""
    late = CUT + timedelta(minutes=minutes)
    manager = CycleManager(CONFIG, store, translator.reference, lambda: late, owner=owner)
    await manager.tick()


async def confirmed(store: StateStore) -> list[OutboxRow]:
    """What the RTGS's confirmation of the cycle's instruction queues."""
    cycle = (await store.cycles())[0]
    answer = SettlementAnswer(cycle.id, "settled", "ACSC", cycle.instruction_id or "")
    await store.commit_batch([Effects([("acsc", "fp")], cycle_outcomes=[answer])])
    return await emitted(store)


@given(obligations, st.sampled_from(STEPS))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_a_close_crashed_at_any_step_and_redone_emits_the_same_bytes_once(
    translator: Translator, obs: list[tuple[str, str, int]], step: tuple[str, str]
) -> None:
    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            clean = await booked(Path(tmp) / "clean.sqlite3", obs)
            crashed = await booked(Path(tmp) / "crashed.sqlite3", obs)
            try:
                await close(clean, translator, "one", 0)
                expected = await emitted(clean)
                with pytest.raises(Crash):
                    await close(Crashing(crashed, step), translator, "killed", 1)
                await close(crashed, translator, "successor", 7)
                await close(crashed, translator, "another", 9)  # nothing left to do
                assert await emitted(crashed) == expected
                # Nothing moves when every position nets to zero: no instruction, settled.
                moves = any(
                    sum(u for a, _, u in obs if a == p) != sum(u for _, b, u in obs if b == p)
                    for p in BICS
                )
                kinds = [dict(r.headers).get("message-type") for r in expected]
                assert kinds.count(b"pacs.029.001.01") == (1 if moves else 0)
                cycle = (await crashed.cycles())[0]
                assert cycle.status == ("instructed" if moves else "settled")
                assert (await clean.cycles())[0].summary == cycle.summary
                # No camt.054 before the RTGS books the cycle; then one per moving
                # participant, the same bytes on both.
                assert b"camt.054.001.08" not in kinds
                if moves:
                    notices = await confirmed(clean)
                    assert notices and await confirmed(crashed) == notices
                    assert {dict(r.headers)["message-type"] for r in notices} == {
                        b"camt.054.001.08"
                    }
            finally:
                await clean.close()
                await crashed.close()

    asyncio.run(scenario())
