"""Baselines on local dates (missing is missing, never zero) and the market-relative change."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.diagnosis.engine.baselines import PhaseWindow, compute_baseline, same_phase_last_year
from services.diagnosis.engine.market import compare, kpi, relative_change

D = date(2025, 11, 20)  # a Thursday


def series(days: int = 40, value: float = 100.0) -> dict[date, float | None]:
    return {D - timedelta(days=i): value + i for i in range(1, days)}


def test_previous_day_and_same_weekday() -> None:
    s = series()
    assert compute_baseline(s, D, "previous_day").value == 101
    b = compute_baseline(s, D, "same_weekday_last_week")
    assert b.value == 107 and b.dates == (D - timedelta(days=7),)


def test_trailing_baselines_are_medians_and_robust_to_one_outlier() -> None:
    s = series()
    s[D - timedelta(days=3)] = 10_000.0
    assert compute_baseline(s, D, "trailing_7d").value == 105
    assert compute_baseline(s, D, "trailing_28d").value == pytest.approx(115.5)


def test_missing_days_are_reported_not_read_as_zero() -> None:
    s = series()
    del s[D - timedelta(days=1)]
    s[D - timedelta(days=2)] = None
    b = compute_baseline(s, D, "previous_day")
    assert b.value is None and b.missing == (D - timedelta(days=1),)
    t = compute_baseline(s, D, "trailing_7d")
    assert t.missing == (D - timedelta(days=1), D - timedelta(days=2))
    assert t.value == 105  # median of days 3..7, no zeros in it
    sparse = {D - timedelta(days=1): 5.0}
    assert compute_baseline(sparse, D, "trailing_28d").value is None  # 1 of 28: not a baseline


def test_same_phase_last_year_is_day_k_of_the_phase_not_the_calendar_date() -> None:
    phases = [
        PhaseWindow("double_11", "presale", date(2025, 10, 24), date(2025, 10, 30)),
        PhaseWindow("double_11", "presale", date(2024, 10, 21), date(2024, 10, 27)),
        PhaseWindow("618", "presale", date(2024, 5, 20), date(2024, 5, 31)),
    ]
    day = date(2025, 10, 26)  # day 2 of this year's pre-sale
    assert same_phase_last_year(day, phases) == date(2024, 10, 23)
    s = {date(2024, 10, 23): 777.0, date(2024, 10, 26): 1.0}
    assert compute_baseline(s, day, "same_phase_last_year", phases=phases).value == 777.0
    # outside a phase: 52 weeks back, same weekday
    assert same_phase_last_year(date(2025, 3, 5), phases) == date(2024, 3, 6)


def test_seed_case_rise_below_the_market_is_a_decline() -> None:
    m = compare(0.012, 0.011, 0.014, 0.011)
    assert m.change == pytest.approx(0.0909, abs=1e-4)
    assert m.market_change == pytest.approx(0.2727, abs=1e-4)
    assert m.relative_change == pytest.approx(1.2 / 1.4 - 1)
    assert m.direction == "down" and m.attribution == "store"
    k = kpi("cvr", 0.012, 0.011, 0.014, 0.011)
    assert k.direction == "down" and k.relative_change is not None and k.relative_change < -0.14


def test_a_move_the_whole_market_made_is_the_markets() -> None:
    m = compare(0.020, 0.025, 0.016, 0.020)
    assert m.change == pytest.approx(-0.2)
    assert abs(m.relative_change or 1) < 0.01
    assert m.attribution == "market" and m.direction == "flat"


def test_competitors_and_undefined_changes() -> None:
    m = compare(110, 100, competitors={"a": (130, 100), "b": (None, 100)})
    assert m.competitors["a"] == pytest.approx(110 / 130 - 1)
    assert m.competitors["b"] is None
    assert compare(5, 0).change is None and relative_change(0.1, None) is None
    assert kpi("gmv", 5.0, None).direction == "flat"
