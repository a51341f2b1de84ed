"""The retail calendar: reference data, pure functions, no I/O beyond reading its own data.

Shopping festivals with their phases (festivals.yaml, tenant overrides merged by key), public
holidays from the `holidays` package with China's make-up working days, and the working calendar
per market that campaign scheduling uses. Diagnosis reads it for context.
"""

from shared.calendar.context import DayContext, FestivalOnDay, day_context
from shared.calendar.festivals import (
    FestivalDef,
    Occurrence,
    Phase,
    definitions,
    festivals_between,
    known_keys,
    lunar_new_year,
    next_occurrence,
    parse_definitions,
)
from shared.calendar.markets import is_market, regions_of
from shared.calendar.working import (
    CalendarOverride,
    WorkDays,
    WorkingCalendar,
    makeup_working_days,
    public_holidays,
)

__all__ = [
    "CalendarOverride",
    "DayContext",
    "FestivalDef",
    "FestivalOnDay",
    "Occurrence",
    "Phase",
    "WorkDays",
    "WorkingCalendar",
    "day_context",
    "definitions",
    "festivals_between",
    "is_market",
    "known_keys",
    "lunar_new_year",
    "makeup_working_days",
    "next_occurrence",
    "parse_definitions",
    "public_holidays",
    "regions_of",
]
