"""The one clock of the gateway. Both cities are UTC+8; every time the gateway writes carries it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

UTC8 = timezone(timedelta(hours=8), "UTC+8")

Clock = Callable[[], datetime]


def now_utc8() -> datetime:
    return datetime.now(UTC8)
