"""Settlement calendars: a cross-border settlement date must be a business day on both sides.

Each side's calendar is a data file (data/calendars/<side>.toml): weekend days, holidays, and
adjusted working weekend days (Mainland China moves working days around its long holidays).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from gateway.packaged import packaged
from gateway.sides import SIDES, Side

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class CalendarError(ValueError):
    pass


@dataclass(frozen=True)
class Calendar:
    name: str
    weekend: frozenset[int]
    holidays: frozenset[date]
    working_weekends: frozenset[date]

    def is_business_day(self, day: date) -> bool:
        if day in self.holidays:
            return False
        if day.weekday() in self.weekend:
            return day in self.working_weekends
        return True


def default_dir() -> Path:
    return packaged("data", "calendars")


def load_calendar(path: Path) -> Calendar:
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
        weekend = frozenset(_WEEKDAYS.index(d) for d in raw.get("weekend", []))
        holidays = frozenset(date.fromisoformat(d) for d in raw.get("holidays", []))
        working = frozenset(date.fromisoformat(d) for d in raw.get("working_weekends", []))
    except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise CalendarError(f"calendar {path}: {exc}") from None
    if holidays & working:
        raise CalendarError(
            f"calendar {path}: days both holiday and working: {sorted(holidays & working)}"
        )
    return Calendar(str(raw.get("name", path.stem)), weekend, holidays, working)


@dataclass(frozen=True)
class Calendars:
    onshore: Calendar
    offshore: Calendar

    @classmethod
    def load(cls, directory: Path | None = None) -> Calendars:
        base = directory or default_dir()
        return cls(*(load_calendar(base / f"{side}.toml") for side in SIDES))

    def side(self, side: Side) -> Calendar:
        return self.onshore if side == "onshore" else self.offshore

    def is_common_business_day(self, day: date) -> bool:
        return self.onshore.is_business_day(day) and self.offshore.is_business_day(day)

    def next_common_business_day(self, day: date, limit: int = 31) -> date | None:
        """The first common business day after `day`, within `limit` days."""
        for step in range(1, limit + 1):
            candidate = day + timedelta(days=step)
            if self.is_common_business_day(candidate):
                return candidate
        return None

    def closed_on(self, day: date) -> list[str]:
        return [self.side(s).name for s in SIDES if not self.side(s).is_business_day(day)]
