"""The MQTT event buffer: bounded, oldest dropped first and counted, never blocking."""

from __future__ import annotations

import asyncio
from datetime import datetime

from gateway.clock import UTC8
from gateway.ops.events import Events


def clock() -> datetime:
    return datetime(2026, 11, 23, 10, 0, tzinfo=UTC8)


async def test_a_full_buffer_drops_the_oldest_and_counts_them() -> None:
    drops: list[int] = []
    events = Events(3, clock, lambda: drops.append(1))
    for n in range(5):
        events.emit("message/onshore", status="translated", n=n)
    assert events.dropped == 2 and len(drops) == 2 and len(events) == 3
    got = [(await events.next()).payload["n"] for _ in range(3)]
    assert got == [2, 3, 4]


async def test_an_unacknowledged_event_goes_back_to_the_front() -> None:
    events = Events(10, clock)
    events.emit("health", retain=True, status="ready")
    events.emit("cycle/CNY", retain=True, status="settled")
    first = await events.next()
    events.requeue(first)
    assert (await events.next()) is first
    assert first.retain and first.payload == {
        "version": 1,
        "at": "2026-11-23T10:00:00+08:00",
        "status": "ready",
    }


async def test_waiting_for_an_event_does_not_spin() -> None:
    events = Events(10, clock)
    waiter = asyncio.create_task(events.next())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    events.emit("health", status="ready")
    assert (await asyncio.wait_for(waiter, 1)).topic == "health"
