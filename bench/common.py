"""What every benchmark does the same way: one core, medians over rounds, JSON results."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from gateway.embedded_broker import EmbeddedBroker


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def pin_to_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def spread(name: str, values: list[float]) -> dict[str, float]:
    """{name_median, name_min, name_max} over the rounds."""
    return {
        f"{name}_median": statistics.median(values),
        f"{name}_min": min(values),
        f"{name}_max": max(values),
    }


def line(label: str, values: list[float], unit: str, fmt: str = ",.0f", goal: str = "") -> str:
    median = format(statistics.median(values), fmt)
    low, high = format(min(values), fmt), format(max(values), fmt)
    return f"  {label:<26} median {median:>9} {unit}  (min {low}, max {high}){goal}"


def write_json(path: Path | None, result: Mapping[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(result, indent=2))


@contextlib.asynccontextmanager
async def kafka() -> AsyncIterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS, or an embedded broker for the run."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = EmbeddedBroker()
    bootstrap = await asyncio.to_thread(broker.start)
    try:
        yield bootstrap
    finally:
        await asyncio.to_thread(broker.stop)
