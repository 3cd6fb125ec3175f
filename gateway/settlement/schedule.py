"""When cycles close: configured cut-off times (UTC+8) on the days both calendars open.

A cycle's cut-off is fixed when the cycle opens (`next_cut_off(opened_at)`) and recorded with
it, so every instance compares its clock with the same recorded instant: an obligation whose
batch commits at or after the cut-off belongs to the next cycle.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from gateway.calendars import Calendars
from gateway.clock import UTC8


class ScheduleError(ValueError):
    pass


def parse_cut_offs(values: tuple[str, ...]) -> tuple[time, ...]:
    """ "HH:MM" strings (UTC+8), strictly increasing."""
    parsed: list[time] = []
    for value in values:
        try:
            hour, minute = (int(part) for part in value.split(":"))
            parsed.append(time(hour, minute, tzinfo=UTC8))
        except ValueError:
            raise ScheduleError(f"cut-off {value!r} is not HH:MM (00:00 to 23:59)") from None
    if any(a >= b for a, b in itertools.pairwise(parsed)):
        raise ScheduleError(f"cut-offs must be strictly increasing, got {list(values)}")
    return tuple(parsed)


@dataclass(frozen=True)
class Schedule:
    cut_offs: tuple[time, ...]  # UTC+8; empty: cycles close only on command
    calendars: Calendars

    def next_cut_off(self, after: datetime) -> datetime | None:
        """The first scheduled cut-off strictly after `after`, on a common business day
        (within a year; None when nothing is scheduled)."""
        if not self.cut_offs:
            return None
        local = after.astimezone(UTC8)
        day = local.date()
        for _ in range(366):
            if self.calendars.is_common_business_day(day):
                for cut in self.cut_offs:
                    instant = datetime.combine(day, cut)
                    if instant > local:
                        return instant
            day += timedelta(days=1)
        return None
