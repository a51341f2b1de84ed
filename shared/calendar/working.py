"""Public holidays (the `holidays` package) and the working calendar per market.

An off-day is a public holiday, or a weekend day that is not an official make-up working day
(China moves weekends around its Golden Weeks: `holidays` lists those as `weekend_workdays`).
A tenant can override the calendar of a market: ignore the make-up days (businesses that keep
weekends off), add its own off-days or working days.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

import holidays
from pydantic import BaseModel, ConfigDict, Field

WEEKEND = frozenset({5, 6})


class CalendarOverride(BaseModel):
    """A tenant's override of one market's working calendar."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ignore_makeup_days: bool = False
    extra_off_days: list[dt.date] = Field(default_factory=list, max_length=1000)
    extra_working_days: list[dt.date] = Field(default_factory=list, max_length=1000)


@cache
def _country(market: str, year: int) -> tuple[dict[dt.date, str], frozenset[dt.date]]:
    """(holidays by date, make-up working days) of a market's year; empty when unknown."""
    try:
        h = holidays.country_holidays(market.upper(), years=year)
    except NotImplementedError:
        return {}, frozenset()
    days = {d: name for d, name in h.items() if d.year == year}
    makeup = frozenset(d for d in getattr(h, "weekend_workdays", ()) if d.year == year)
    return days, makeup


def public_holidays(market: str, start: dt.date, end: dt.date) -> list[tuple[dt.date, str]]:
    out: list[tuple[dt.date, str]] = []
    for year in range(start.year, end.year + 1):
        days, _ = _country(market, year)
        out.extend((d, n) for d, n in days.items() if start <= d <= end)
    return sorted(out)


def makeup_working_days(market: str, start: dt.date, end: dt.date) -> list[dt.date]:
    out: list[dt.date] = []
    for year in range(start.year, end.year + 1):
        _, makeup = _country(market, year)
        out.extend(d for d in makeup if start <= d <= end)
    return sorted(out)


# Markets whose holidays and make-up working days are set each year by decree (China's State
# Council publishes the next year's schedule in November or December): until it is out, the
# `holidays` package computes the festival days alone, without the moved weekends.
ANNOUNCED_SCHEDULES = frozenset({"CN"})


def schedule_published(market: str, year: int) -> bool:
    """False while a market's official holiday schedule for a year is not published: its
    holidays are the package's estimate and its make-up working days unknown."""
    if market.upper() not in ANNOUNCED_SCHEDULES:
        return True
    return bool(_country(market.upper(), year)[1])


def provisional_years(market: str, start: dt.date, end: dt.date) -> list[int]:
    return [y for y in range(start.year, end.year + 1) if not schedule_published(market, y)]


@dataclass
class WorkingCalendar:
    """The working days of a market, as scheduling uses them."""

    market: str
    override: CalendarOverride = field(default_factory=CalendarOverride)

    def __post_init__(self) -> None:
        self._off = set(self.override.extra_off_days)
        self._on = set(self.override.extra_working_days)
        self._index_cache: dict[tuple[dt.date, dt.date], WorkDays] = {}

    def holiday_name(self, day: dt.date) -> str | None:
        return _country(self.market, day.year)[0].get(day)

    def is_makeup_day(self, day: dt.date) -> bool:
        return day in _country(self.market, day.year)[1]

    def is_working_day(self, day: dt.date) -> bool:
        if day in self._on:
            return True
        if day in self._off:
            return False
        days, makeup = _country(self.market, day.year)
        if day in days:
            return False
        if day.weekday() in WEEKEND:
            return day in makeup and not self.override.ignore_makeup_days
        return True

    def off_days(self, start: dt.date, end: dt.date) -> list[dt.date]:
        return [d for d in _daterange(start, end) if not self.is_working_day(d)]

    def working_days(self, start: dt.date, end: dt.date) -> list[dt.date]:
        return [d for d in _daterange(start, end) if self.is_working_day(d)]

    def index(self, start: dt.date, end: dt.date) -> WorkDays:
        key = (start, end)
        if key not in self._index_cache:
            self._index_cache[key] = WorkDays(self.working_days(start, end))
        return self._index_cache[key]

    def add_working_days(self, day: dt.date, n: int) -> dt.date:
        """The n-th working day after (n > 0) or before (n < 0) `day`."""
        step = 1 if n >= 0 else -1
        left = abs(n)
        while left:
            day += dt.timedelta(days=step)
            if self.is_working_day(day):
                left -= 1
        return day


class WorkDays:
    """Working days as integer positions: scheduling arithmetic happens on positions."""

    def __init__(self, days: Iterable[dt.date]) -> None:
        self.days = list(days)
        if not self.days:
            raise ValueError("no working day in range")

    def ceil(self, day: dt.date) -> int:
        """Position of the first working day on or after `day`."""
        return bisect.bisect_left(self.days, day)

    def floor(self, day: dt.date) -> int:
        """Position of the last working day on or before `day`."""
        return bisect.bisect_right(self.days, day) - 1

    def date(self, pos: int) -> dt.date:
        if pos < 0:
            return self.days[0] - dt.timedelta(days=-pos)  # outside the range: best effort
        if pos >= len(self.days):
            return self.days[-1] + dt.timedelta(days=pos - len(self.days) + 1)
        return self.days[pos]


def _daterange(start: dt.date, end: dt.date) -> Iterable[dt.date]:
    day = start
    while day <= end:
        yield day
        day += dt.timedelta(days=1)
