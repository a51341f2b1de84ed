"""shared/calendar: festival rules and phases per market, public holidays with China's make-up
working days, the working calendar and tenant overrides."""

from __future__ import annotations

import datetime as dt

import pydantic
import pytest

from shared.calendar import (
    CalendarOverride,
    WorkingCalendar,
    festivals_between,
    makeup_working_days,
    next_occurrence,
    parse_definitions,
    public_holidays,
)

D = dt.date


def keys(market: str, year: int) -> set[str]:
    return {o.key for o in festivals_between(market, D(year, 1, 1), D(year, 12, 31))}


def test_each_market_has_its_festivals() -> None:
    assert {
        "womens_day",
        "618",
        "99",
        "double_11",
        "double_12",
        "spring_festival",
        "spring_festival_shipping_cutoff",
    } <= keys("CN", 2025)
    assert {
        "prime_day",
        "back_to_school",
        "black_friday",
        "cyber_monday",
        "christmas_shipping_cutoff",
        "mothers_day",
        "fathers_day",
    } <= keys("US", 2025)
    assert {"prime_day", "black_friday", "cyber_monday", "vatertag"} <= keys("DE", 2025)
    assert {"fete_des_meres"} <= keys("FR", 2025) and "mothers_day" not in keys("FR", 2025)
    assert {"99", "1010", "1111", "1212", "payday_sale"} <= keys("SG", 2025)
    assert {"golden_week", "hatsuuri", "prime_day", "rakuten_super_sale"} <= keys("JP", 2025)
    assert "double_11" not in keys("US", 2025) and "black_friday" not in keys("CN", 2025)


def test_dates_and_phases_follow_the_rules() -> None:
    d11 = next_occurrence("double_11", "CN", D(2025, 1, 1))
    assert d11 is not None and d11.date == D(2025, 11, 11)
    pre = d11.phase("pre_sale")
    assert pre is not None and pre.start == D(2025, 10, 21) and pre.end == D(2025, 11, 10)
    s618 = next_occurrence("618", "CN", D(2026, 1, 1))
    assert s618 is not None and s618.phase("pre_sale").start == D(2026, 5, 31)  # type: ignore[union-attr]
    bf = next_occurrence("black_friday", "US", D(2025, 1, 1))
    cm = next_occurrence("cyber_monday", "US", D(2025, 1, 1))
    assert bf is not None and bf.date == D(2025, 11, 28)
    assert cm is not None and cm.date == D(2025, 12, 1)
    assert next_occurrence("black_friday", "US", D(2026, 1, 1)).date == D(2026, 11, 27)  # type: ignore[union-attr]
    # Prime Day: the announced date where known, the fallback rule (2nd Tuesday of July) else.
    assert next_occurrence("prime_day", "US", D(2025, 1, 1)).date == D(2025, 7, 8)  # type: ignore[union-attr]
    assert next_occurrence("prime_day", "US", D(2026, 1, 1)).date == D(2026, 7, 14)  # type: ignore[union-attr]
    assert next_occurrence("mothers_day", "US", D(2025, 1, 1)).date == D(2025, 5, 11)  # type: ignore[union-attr]
    assert next_occurrence("mothering_sunday", "GB", D(2025, 1, 1)).date == D(2025, 3, 30)  # type: ignore[union-attr]
    cny = next_occurrence("spring_festival", "CN", D(2026, 1, 1))
    cutoff = next_occurrence("spring_festival_shipping_cutoff", "CN", D(2026, 1, 1))
    assert cny is not None and cny.date == D(2026, 2, 17)
    assert cutoff is not None and cutoff.date == D(2026, 2, 7)
    paydays = [
        o for o in festivals_between("MY", D(2025, 1, 1), D(2025, 12, 31)) if o.key == "payday_sale"
    ]
    assert [o.date.month for o in paydays] == list(range(1, 13))
    assert next_occurrence("double_11", "US", D(2025, 1, 1)) is None
    assert next_occurrence("no_such_festival", "CN", D(2025, 1, 1)) is None


def test_china_make_up_working_days_and_substitute_days() -> None:
    cal = WorkingCalendar("CN")
    assert D(2025, 1, 26).weekday() == 6 and cal.is_working_day(D(2025, 1, 26))  # make-up Sunday
    assert cal.is_working_day(D(2025, 2, 8))  # make-up Saturday
    assert not cal.is_working_day(D(2025, 1, 29))  # Spring Festival
    assert not cal.is_working_day(D(2025, 2, 4))  # substitute day off (a Tuesday)
    assert not cal.is_working_day(D(2025, 1, 25))  # ordinary Saturday
    assert D(2025, 9, 28) in makeup_working_days("CN", D(2025, 9, 1), D(2025, 10, 31))
    names = dict(public_holidays("CN", D(2025, 10, 1), D(2025, 10, 8)))
    assert names[D(2025, 10, 1)] == "National Day"
    # Golden Week: Oct 1-8 are all off (holidays, substitute days, the weekend between).
    assert cal.off_days(D(2025, 10, 1), D(2025, 10, 8)) == [D(2025, 10, d) for d in range(1, 9)]


def test_tenant_can_ignore_make_up_days_and_add_its_own() -> None:
    cal = WorkingCalendar(
        "CN",
        CalendarOverride(
            ignore_makeup_days=True,
            extra_off_days=[D(2025, 3, 3)],
            extra_working_days=[D(2025, 1, 29)],
        ),
    )
    assert not cal.is_working_day(D(2025, 1, 26))
    assert not cal.is_working_day(D(2025, 3, 3))
    assert cal.is_working_day(D(2025, 1, 29))


def test_working_day_arithmetic_skips_holidays() -> None:
    us = WorkingCalendar("US")
    # Thanksgiving 2025 is Thu Nov 27: Wed + 1 working day = Fri.
    assert us.add_working_days(D(2025, 11, 26), 1) == D(2025, 11, 28)
    assert us.add_working_days(D(2025, 12, 1), -1) == D(2025, 11, 28)
    wd = us.index(D(2025, 11, 1), D(2025, 12, 31))
    assert wd.date(wd.ceil(D(2025, 11, 27))) == D(2025, 11, 28)
    assert wd.date(wd.floor(D(2025, 11, 30))) == D(2025, 11, 28)


def test_tenant_festivals_add_override_and_disable() -> None:
    defs = parse_definitions(
        [
            {
                "key": "store_anniversary",
                "name": "Our anniversary",
                "markets": ["US"],
                "rule": {"type": "fixed", "month": 4, "day": 2},
                "phases": [{"name": "main", "from": 0, "to": 2}],
            },
            {
                "key": "prime_day",
                "name": "Prime Day",
                "markets": ["US"],
                "rule": {"type": "dates", "dates": {2026: "2026-06-23"}},
                "phases": [],
            },
            {
                "key": "back_to_school",
                "name": "x",
                "markets": ["US"],
                "rule": {"type": "fixed", "month": 8, "day": 1},
                "disabled": True,
            },
        ]
    )
    found = {o.key: o for o in festivals_between("US", D(2026, 1, 1), D(2026, 12, 31), defs)}
    assert found["store_anniversary"].end == D(2026, 4, 4)
    assert found["prime_day"].date == D(2026, 6, 23)
    assert "back_to_school" not in found
    with pytest.raises(pydantic.ValidationError):
        parse_definitions(
            [
                {
                    "key": "Bad Key",
                    "name": "x",
                    "markets": ["US"],
                    "rule": {"type": "fixed", "month": 13, "day": 1},
                }
            ]
        )


def test_day_context_for_diagnosis() -> None:
    from shared.calendar import day_context

    ctx = day_context("CN", D(2025, 10, 30))
    d11 = next(f for f in ctx.festivals if f.key == "double_11")
    assert d11.phase == "pre_sale" and d11.days_to_main == 12 and ctx.working_day
    assert ctx.holiday is None
    holiday = day_context("cn", D(2025, 10, 1))
    assert holiday.holiday == "National Day" and not holiday.working_day
    makeup = day_context("CN", D(2025, 9, 28))
    assert makeup.makeup_working_day and makeup.working_day
    ignored = day_context("CN", D(2025, 9, 28), override=CalendarOverride(ignore_makeup_days=True))
    assert not ignored.working_day
