"""shared/grains.py: which rows make a store-day's total, and diagnosis's numpy path held to it."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import pytest
from grain_mixes import CHANNELS, grain_mix
from hypothesis import given, settings
from hypothesis import strategies as st

from services.diagnosis.engine.columns import Frame, SeriesColumns
from services.diagnosis.engine.diagnose import (
    StoreDay,
    _aggregate,
    _Grains,
    _with_ratios,
    diagnose_store_day,
)
from shared import grains
from shared.events.common import DERIVED, DERIVED_METRICS

DAY = date(2026, 11, 20)
REG = grains.registry()


def test_the_registry_is_data_and_says_what_partitions() -> None:
    assert REG.partition[:3] == ("channel", "device", "region")
    assert {"product_id", "copy_id", "campaign", "landing_page", "keyword"} <= REG.slices
    assert REG.kind("channel") == "partition" and REG.kind("copy_id") == "slice"
    assert REG.kind("shop_channel") == "slice"  # unknown: never a total
    assert REG.traffic_type("paid_search") == "paid" and REG.traffic_type("search") == "free"
    own = REG.for_store(["shop_channel"])
    assert own.kind("shop_channel") == "partition" and REG.kind("shop_channel") == "slice"


def test_the_store_level_row_wins_then_the_coarsest_partition_never_a_slice() -> None:
    everything = [(), ("channel",), ("channel", "device"), ("copy_id",), ("landing_page",)]
    assert REG.choose(everything) == ()
    assert REG.choose(everything[1:]) == ("channel",)
    assert REG.choose([("channel", "device"), ("copy_id",)]) == ("channel", "device")
    assert REG.choose([("copy_id",), ("landing_page",), ("channel", "product_id")]) is None
    # same size: the registry's order (channel before device)
    assert REG.choose([("device",), ("channel",)]) == ("channel",)
    # a breakdown needs its keys, and only partitioning keys may be summed away
    assert REG.choose(everything, {"channel"}) == ("channel",)
    assert REG.choose([("channel", "device")], {"device"}) == ("channel", "device")
    assert REG.choose([("channel", "product_id")], {"channel"}) is None
    assert REG.choose([("channel", "product_id"), ("product_id",)], {"product_id"}) == (
        "product_id",
    )
    assert REG.finest_partition(everything) == ("channel", "device")


def test_unknown_dimensions_are_named_in_the_problem() -> None:
    problems = grains.read_problems(["channel", "shop_chanel"], {"devise": ["pc"]}, REG)
    assert problems[0][0] == "group_by" and "'shop_chanel'" in problems[0][1]
    assert problems[1][0] == "devise" and "'devise'" in problems[1][1]
    assert grains.read_problems(["traffic_type", "copy_id"], {"channel": ["search"]}, REG) == []


def test_one_list_of_derived_metrics_with_formulas() -> None:
    assert tuple(DERIVED) == DERIVED_METRICS
    assert DERIVED["cvr"] == ("buyers", "visitors") and DERIVED["roas"] == ("gmv", "ad_spend")
    assert grains.with_derived({"buyers": 12, "visitors": 1000}, ["cvr", "roas"]) == {
        "cvr": 0.012,
        "roas": None,
    }


def test_market_ratios_come_from_their_parts_but_never_from_indices() -> None:
    got = grains.market_values({"visitors": 1000.0, "buyers": 14.0})
    assert got["cvr"] == pytest.approx(0.014)
    posted = grains.market_values({"visitors": 1000.0, "buyers": 14.0, "cvr": 0.02})
    assert posted["cvr"] == 0.02  # what the market posted is kept
    index = grains.market_values({"visitors": 1.02, "buyers": 14.0}, {"visitors": "index"})
    assert "cvr" not in index


def test_the_issues_example_totals_9244_visitors_whatever_arrives_after() -> None:
    rng = random.Random(5)
    rows: list[dict[str, Any]] = []
    split = {}
    for ch in CHANNELS:
        for dev in ("mobile", "pc"):
            split[(ch, dev)] = rng.randint(500, 1800)
    # scale the split so it adds up to the store's 9,244
    total = sum(split.values())
    keys = list(split)
    for k in keys[:-1]:
        split[k] = split[k] * 9244 // total
    split[keys[-1]] = 9244 - sum(split[k] for k in keys[:-1])
    for (ch, dev), v in split.items():
        rows.append(
            {
                "date": DAY,
                "metric": "visitors",
                "value": v,
                "dimensions": {"channel": ch, "device": dev},
            }
        )
    before = grains.aggregate(rows)[(DAY, "visitors")]
    rows.append({"date": DAY, "metric": "visitors", "value": 9244, "dimensions": {}})
    rows += [
        {"date": DAY, "metric": "visitors", "value": 31, "dimensions": {"copy_id": "c1"}},
        {"date": DAY, "metric": "visitors", "value": 30, "dimensions": {"copy_id": "c2"}},
        {"date": DAY, "metric": "visitors", "value": 3, "dimensions": {"landing_page": "/promo"}},
        {"date": DAY, "metric": "visitors", "value": 1, "dimensions": {"shop_channel": "x"}},
    ]
    after = grains.aggregate(rows)
    assert before == after[(DAY, "visitors")] == 9244
    by_copy = grains.aggregate(rows, group_by=["copy_id"])
    assert by_copy == {(DAY, "visitors", "c1"): 31, (DAY, "visitors", "c2"): 30}
    search = grains.aggregate(rows, filters={"channel": ["search"]})
    assert search[(DAY, "visitors")] == split[("search", "mobile")] + split[("search", "pc")]
    paid = grains.aggregate(rows, group_by=["traffic_type"])
    assert (
        paid[(DAY, "visitors", "paid")]
        == split[("paid_search", "mobile")] + split[("paid_search", "pc")]
    )
    assert paid[(DAY, "visitors", "free")] + paid[(DAY, "visitors", "paid")] == 9244


def _engine_totals(rows: list[dict[str, Any]]) -> tuple[dict[Any, float], dict[Any, float]]:
    frame = Frame.of(SeriesColumns.from_rows(rows))
    by_scope, _ = _aggregate(frame, _Grains.of(frame, REG))
    total = {
        (d, m): v
        for d, ms in by_scope["all"].items()
        for m, v in _with_ratios(ms).items()
        if m in ("visitors", "buyers", "gmv", "cvr", "aov")
    }
    per_channel = {
        (d, m, ch): v
        for ch, ser in by_scope.items()
        if ch in CHANNELS
        for d, ms in ser.items()
        for m, v in ms.items()
    }
    return total, per_channel


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), shuffle=st.booleans())
def test_diagnosis_totals_are_the_shared_rules_on_any_mix_of_grains(
    seed: int, shuffle: bool
) -> None:
    rows = grain_mix(seed, DAY, days=4)
    if shuffle:
        random.Random(seed).shuffle(rows)
    total, per_channel = _engine_totals(rows)
    metrics = ("visitors", "buyers", "gmv", "cvr", "aov")
    expect = grains.derived(grains.aggregate(rows, metrics=metrics), metrics)
    assert total == pytest.approx(expect)
    assert per_channel == pytest.approx(grains.aggregate(rows, group_by=["channel"]))


def test_the_report_shows_the_shared_total() -> None:
    rows = grain_mix(11, DAY, days=15)
    expect = grains.aggregate(rows)
    report = diagnose_store_day(StoreDay(day=DAY, rows=rows, baseline="same_weekday_last_week"))
    kpis = {k.metric: k for k in report.kpis}
    for m in ("visitors", "buyers", "gmv"):
        assert kpis[m].value == pytest.approx(expect[(DAY, m)])
    assert kpis["cvr"].value == pytest.approx(expect[(DAY, "buyers")] / expect[(DAY, "visitors")])
    week_ago = DAY - timedelta(days=7)
    assert kpis["visitors"].baseline == pytest.approx(expect[(week_ago, "visitors")])


def test_a_paused_copy_or_a_coarser_row_not_sent_is_not_missing_data() -> None:
    rows = [r for r in grain_mix(3, DAY, days=15) if not r["dimensions"].get("copy_id")]
    for k in range(1, 15):  # copy rows every day but today
        rows.append(
            {
                "date": DAY - timedelta(days=k),
                "metric": "visitors",
                "value": 10.0,
                "dimensions": {"copy_id": "c1"},
            }
        )
    report = diagnose_store_day(StoreDay(day=DAY, rows=rows))
    assert report.data_complete


def test_a_missing_leaf_is_still_missing_data() -> None:
    rows = [
        r
        for r in grain_mix(3, DAY, days=15)
        if not (r["date"] == DAY and r["dimensions"] == {"channel": "live", "device": "pc"})
    ]
    report = diagnose_store_day(StoreDay(day=DAY, rows=rows))
    assert not report.data_complete


def test_a_ratio_is_a_ratio_of_sums_within_one_grain() -> None:
    """Visitors from the store-level row (a visitor of two channels counted once), buyers only
    by channel: cvr is read on the channel grain, where both are, not store visitors over
    summed channel buyers."""
    rows = [
        {"date": DAY, "metric": "visitors", "value": 900.0, "dimensions": {}},
        {"date": DAY, "metric": "visitors", "value": 600.0, "dimensions": {"channel": "search"}},
        {"date": DAY, "metric": "visitors", "value": 400.0, "dimensions": {"channel": "live"}},
        {"date": DAY, "metric": "buyers", "value": 20.0, "dimensions": {"channel": "search"}},
        {"date": DAY, "metric": "buyers", "value": 30.0, "dimensions": {"channel": "live"}},
    ]
    got = grains.derived(grains.aggregate(rows, metrics=["visitors", "cvr"]), ["visitors", "cvr"])
    assert got == {(DAY, "visitors"): 900.0, (DAY, "cvr"): 50 / 1000}
    total, _ = _engine_totals(rows)
    assert total[(DAY, "visitors")] == 900.0 and total[(DAY, "cvr")] == pytest.approx(0.05)
    # no grain in common: no ratio at all
    apart = [rows[0], rows[3], rows[4]]
    assert (DAY, "cvr") not in grains.derived(grains.aggregate(apart, metrics=["cvr"]), ["cvr"])
    total, _ = _engine_totals(apart)
    assert (DAY, "cvr") not in total
