"""The retail calendar: reference data, pure functions, no I/O beyond reading its own data.

Shopping festivals with their phases (festivals.yaml, tenant overrides merged by key), public
holidays from the `holidays` package with China's make-up working days, and the working calendar
per market that campaign scheduling uses. Diagnosis reads it for context.
"""

from shared.calendar.context import DayContext, FestivalOnDay, day_context
from shared.calendar.festivals import (
    ANY_PLATFORM,
    FestivalDef,
    Occurrence,
    Phase,
    definitions,
    festival_markets,
    festivals_between,
    known_keys,
    lunar_new_year,
    markets_of,
    next_occurrence,
    parse_definitions,
)
from shared.calendar.markets import has_public_holidays, is_market, regions_of
from shared.calendar.working import (
    CalendarOverride,
    WorkDays,
    WorkingCalendar,
    makeup_working_days,
    provisional_years,
    public_holidays,
    schedule_published,
)

__all__ = [
    "ANY_PLATFORM",
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
    "festival_markets",
    "festivals_between",
    "has_public_holidays",
    "is_market",
    "known_keys",
    "lunar_new_year",
    "makeup_working_days",
    "markets_of",
    "next_occurrence",
    "parse_definitions",
    "provisional_years",
    "public_holidays",
    "regions_of",
    "schedule_published",
]
