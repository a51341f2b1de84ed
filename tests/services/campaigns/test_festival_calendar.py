"""The festival calendar (issue 17, point 2): the festivals operators plan for, each date with
its source and a provisional flag where it is an estimate; unknown markets and events refused
with the real lists."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from support import Harness, campaigns_counts, campaigns_tenant

from shared.calendar import (
    festival_markets,
    festivals_between,
    next_occurrence,
    provisional_years,
    schedule_published,
)

D = dt.date


def occ(key: str, market: str, year: int = 2027) -> Any:
    o = next_occurrence(key, market, D(year, 1, 1))
    assert o is not None, (key, market)
    return o


@pytest.mark.parametrize(
    ("key", "market", "date"),
    [
        ("520", "CN", D(2027, 5, 20)),
        ("qixi", "CN", D(2027, 8, 8)),
        ("valentines_day", "CN", D(2027, 2, 14)),
        ("valentines_day", "US", D(2027, 2, 14)),
        ("july_4th", "US", D(2027, 7, 4)),
        ("labor_day_sales", "US", D(2027, 9, 6)),
        ("halloween", "US", D(2027, 10, 31)),
        ("prime_big_deal_days", "US", D(2027, 10, 12)),
        ("99", "SG", D(2027, 9, 9)),
        ("1010", "MY", D(2027, 10, 10)),
        ("1111", "PH", D(2027, 11, 11)),
        ("1212", "TH", D(2027, 12, 12)),
        ("douyin_818", "CN", D(2027, 8, 18)),
        ("douyin_double_11", "CN", D(2027, 11, 11)),
        ("douyin_new_year_goods", "CN", D(2027, 1, 17)),
    ],
)
def test_the_festivals_operators_plan_for(key: str, market: str, date: dt.date) -> None:
    o = occ(key, market)
    assert o.date == date
    assert o.source, key  # every date says where it comes from


def test_provisional_where_the_date_is_an_estimate() -> None:
    # Amazon announced Prime Day 2025 (July 8); 2027 is the fallback rule's guess.
    p25, p27 = occ("prime_day", "US", 2025), occ("prime_day", "US")
    assert p25.date == D(2025, 7, 8) and not p25.provisional and "press release" in p25.source
    assert p27.provisional and "estimate" in p27.source
    assert occ("prime_big_deal_days", "US", 2025).date == D(2025, 10, 7)
    assert occ("prime_big_deal_days", "US").provisional
    # Douyin announces its own schedule each year; Qixi's almanac dates are certain.
    assert occ("douyin_818", "CN").provisional and not occ("qixi", "CN").provisional
    assert not occ("black_friday", "US").provisional and not occ("double_11", "CN").provisional
    # China's State Council has not published 2027's holidays and make-up days.
    assert schedule_published("CN", 2026) and not schedule_published("CN", 2027)
    assert provisional_years("CN", D(2026, 6, 1), D(2027, 6, 1)) == [2027]
    assert provisional_years("US", D(2026, 6, 1), D(2027, 6, 1)) == []


def test_a_market_gets_only_its_own_festivals() -> None:
    cn = {o.key for o in festivals_between("CN", D(2027, 1, 1), D(2027, 12, 31), platform="*")}
    us = {o.key for o in festivals_between("US", D(2027, 1, 1), D(2027, 12, 31), platform="*")}
    assert {"520", "qixi", "douyin_818"} <= cn and not {"july_4th", "halloween"} & cn
    assert {"july_4th", "labor_day_sales", "halloween", "prime_big_deal_days"} <= us
    assert not {"520", "qixi", "double_11"} & us
    assert {"CN", "US", "SG", "DE", "JP"} <= set(festival_markets())


@pytest.fixture
async def keys(campaigns: Harness) -> dict[str, dict[str, str]]:
    return await campaigns_tenant(campaigns, "acme", ["us-shop"])


async def test_calendar_api_marks_provisional_and_refuses_unknown_markets(
    campaigns: Harness, keys: Any
) -> None:
    c = campaigns.client
    r = await c.get(
        "/v1/calendar?market=CN&start=2026-12-01&end=2027-03-01", headers=keys["viewer"]
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["provisional_years"] == [2027]
    spring = next(h for h in body["holidays"] if h["date"] == "2027-02-06")
    assert spring["provisional"] is True
    assert all(not h["provisional"] for h in body["holidays"] if h["date"] < "2027-01-01")
    cny = next(f for f in body["festivals"] if f["key"] == "spring_festival")
    assert cny["source"] and {p["name"]: p["kind"] for p in cny["phases"]} == {
        "new_year_shopping": "selling",
        "shipping_cutoff": "cutoff",
        "logistics_pause": "pause",
    }
    r = await c.get(
        "/v1/calendar?market=US&start=2027-06-01&end=2027-07-31", headers=keys["viewer"]
    )
    prime = next(f for f in r.json()["festivals"] if f["key"] == "prime_day")
    assert prime["provisional"] is True and prime["platforms"] == []
    # XX is no market: 422 with the real list (today it was a 200 with nothing in it).
    r = await c.get(
        "/v1/calendar?market=XX&start=2027-01-01&end=2027-02-01", headers=keys["viewer"]
    )
    assert r.status_code == 422
    problem = r.json()
    assert problem["errors"][0]["loc"] == ["query", "market"]
    assert (
        "CN" in problem["markets"] and "US" in problem["markets"] and "XX" not in problem["markets"]
    )
    assert "CN, " in problem["detail"]
    # A real country without festivals still has its public holidays.
    r = await c.get(
        "/v1/calendar?market=BR&start=2027-01-01&end=2027-12-31", headers=keys["viewer"]
    )
    assert r.status_code == 200 and r.json()["holidays"] and r.json()["festivals"] == []


async def test_an_event_of_another_market_is_refused_with_this_markets_events(
    campaigns: Harness, keys: Any
) -> None:
    before = await campaigns_counts(campaigns)
    for event, why in (("double_11", "is a festival of CN, not of US"), ("nope", "unknown event")):
        r = await campaigns.client.post(
            "/v1/stores/us-shop/campaigns",
            json={"name": "x", "event": event, "year": 2027},
            headers=keys["operator"],
        )
        assert r.status_code == 422
        problem = r.json()
        assert why in problem["detail"]
        assert event not in problem["events"]
        assert {"black_friday", "prime_day", "july_4th"} <= set(problem["events"])
    assert await campaigns_counts(campaigns) == before


def test_a_platforms_own_festival_shapes_only_that_platforms_reading() -> None:
    span = (D(2027, 8, 1), D(2027, 8, 31))
    market_wide = {o.key for o in festivals_between("CN", *span)}  # what diagnosis reads
    assert "qixi" in market_wide and "douyin_818" not in market_wide
    assert "douyin_818" in {o.key for o in festivals_between("CN", *span, platform="douyin")}
    planning = festivals_between("CN", *span, platform="*")
    assert next(o for o in planning if o.key == "douyin_818").platforms == ("douyin",)
    october = (D(2027, 10, 1), D(2027, 10, 31))
    assert "prime_big_deal_days" not in {o.key for o in festivals_between("US", *october)}
    assert "prime_big_deal_days" in {
        o.key for o in festivals_between("US", *october, platform="amazon")
    }
