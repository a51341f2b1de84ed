"""What the calendar says about one day of a market: for diagnosis' report context (a dip on a
public holiday, a surge in a festival's pre-sale) and anything else that reads a day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from shared.calendar.festivals import FestivalDef, festivals_between
from shared.calendar.working import CalendarOverride, WorkingCalendar


@dataclass(frozen=True)
class FestivalOnDay:
    key: str
    name: str
    phase: str | None  # the phase the day falls in; None between phases
    main_date: dt.date
    days_to_main: int  # negative once the main date has passed


@dataclass(frozen=True)
class DayContext:
    market: str
    day: dt.date
    working_day: bool
    holiday: str | None
    makeup_working_day: bool
    festivals: tuple[FestivalOnDay, ...]


def day_context(
    market: str,
    day: dt.date,
    *,
    festivals: Iterable[FestivalDef] = (),
    override: CalendarOverride | None = None,
) -> DayContext:
    cal = WorkingCalendar(market.upper(), override or CalendarOverride())
    found = []
    for occ in festivals_between(market.upper(), day, day, festivals):
        phase = next((p.name for p in occ.phases if p.start <= day <= p.end), None)
        found.append(FestivalOnDay(occ.key, occ.name, phase, occ.date, (occ.date - day).days))
    return DayContext(
        market=market.upper(),
        day=day,
        working_day=cal.is_working_day(day),
        holiday=cal.holiday_name(day),
        makeup_working_day=cal.is_makeup_day(day),
        festivals=tuple(found),
    )
