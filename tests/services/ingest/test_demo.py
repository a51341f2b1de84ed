"""The demo-data generator: deterministic, realistic, consistent, and its incidents findable."""

from __future__ import annotations

import functools
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping
from datetime import date, timedelta

import pytest

from services.ingest.demo import (
    BASE_METRICS,
    DEVICES,
    DSR_METRICS,
    MONEY_METRICS,
    PAID_CHANNELS,
    DemoData,
    MetricRow,
    black_friday,
    festival_days,
    generate_demo,
    incident_days,
)

END = date(2026, 11, 23)
# End dates that stress the placement and the baselines: Double 11 filling most of the last 30
# days (with and without its tail), Black Friday/Cyber Monday inside the window, ending on Cyber
# Monday, no festival at all, a window across New Year.
ENDS = [
    END,
    date(2025, 11, 16),
    date(2025, 12, 5),
    date(2024, 12, 2),
    date(2025, 6, 30),
    date(2026, 1, 10),
]
CHANNELS = {
    "demo-shopify": {"search", "paid_search", "paid_display", "social", "email_sms", "direct"},
    "demo-taobao": {"search", "recommendation", "paid_search", "live", "social", "direct"},
    "demo-woo": {"search", "paid_search", "social", "email_sms", "direct"},
}
RATIOS = {
    "ctr": ("clicks", "impressions"),
    "cvr": ("buyers", "visitors"),
    "aov": ("gmv", "buyers"),
    "inquiry_cvr": ("inquiry_buyers", "inquiries"),
}
REQUIRED = {
    # kind -> (store, owner)
    "paid_traffic_drop": ("demo-shopify", "promotion"),
    "ctr_drop": ("demo-taobao", "designer"),
    "conversion_drop": ("demo-woo", "merchandising"),
    "inquiry_conversion_drop": ("demo-taobao", "customer_service"),
    "dsr_drop": ("demo-taobao", "logistics"),
    "missing_data": ("demo-woo", "operations"),
    "market_wide": ("demo-shopify", "none"),
}


class Series:
    """A store's rows indexed by (date, metric), with sums over matching dimensions."""

    def __init__(self, rows: list[MetricRow]) -> None:
        self._by_key: dict[tuple[date, str], list[MetricRow]] = defaultdict(list)
        for row in rows:
            self._by_key[(row["date"], row["metric"])].append(row)

    def value(self, day: date, metric: str, dims: Mapping[str, str]) -> float:
        if metric in RATIOS:
            numerator, denominator = RATIOS[metric]
            below = self.value(day, denominator, dims)
            return self.value(day, numerator, dims) / below if below else 0.0
        return sum(
            row["value"]
            for row in self._by_key[(day, metric)]
            if all(row["dimensions"].get(k) == v for k, v in dims.items())
        )

    def change(self, day: date, metric: str, dims: Mapping[str, str]) -> float:
        """Relative change against the median of the same weekday over the 4 previous weeks."""
        baseline = statistics.median(
            self.value(day - timedelta(weeks=k), metric, dims) for k in range(1, 5)
        )
        return self.value(day, metric, dims) / baseline - 1.0


@functools.cache
def demo(end: date = END, seed: int = 7) -> DemoData:
    return generate_demo(end=end, seed=seed)


@functools.cache
def series(end: date, store_id: str) -> Series:
    return Series(demo(end).rows[store_id])


def leaves(rows: list[MetricRow]) -> dict[tuple[date, str, str], dict[str, float]]:
    found: dict[tuple[date, str, str], dict[str, float]] = defaultdict(dict)
    for row in rows:
        dims = row["dimensions"]
        if dims:
            found[(row["date"], dims["channel"], dims["device"])][row["metric"]] = row["value"]
    return found


def calm_days(data: DemoData, store_id: str) -> list[date]:
    """Days with a full 4-week baseline, no festival and no incident on the day, and at most one
    festival day among the four baseline days (which their median shrugs off)."""
    busy = festival_days(data, store_id)
    incidents = incident_days(data)[store_id]
    found = []
    day = data.start + timedelta(weeks=4)
    while day <= data.end:
        baseline = [day - timedelta(weeks=k) for k in range(1, 5)]
        if day not in busy and day not in incidents and sum(b in busy for b in baseline) <= 1:
            found.append(day)
        day += timedelta(days=1)
    return found


# --- determinism and shape -------------------------------------------------------------------


def test_same_inputs_give_the_same_data() -> None:
    assert generate_demo(end=END, seed=7) == generate_demo(end=END, seed=7)


def test_another_seed_changes_the_noise_not_the_story() -> None:
    a, b = demo(END, 7), generate_demo(end=END, seed=8)
    assert a.rows != b.rows
    assert [(i.id, i.date) for i in a.incidents] == [(i.id, i.date) for i in b.incidents]


def test_a_longer_window_keeps_the_same_days() -> None:
    short, long = demo(END), generate_demo(end=END, days=120)
    for store_id, rows in short.rows.items():
        assert [r for r in long.rows[store_id] if r["date"] >= short.start] == rows
    assert short.incidents == long.incidents


def test_tenant_and_stores() -> None:
    data = demo()
    assert data.tenant == {"id": "demo", "name": "Demo Agency", "reporting_currency": "USD"}
    stores = {s["id"]: s for s in data.stores}
    assert set(stores) == {"demo-shopify", "demo-taobao", "demo-woo"}
    expected = {
        "demo-shopify": ("shopify", "America/New_York", "USD", "US", "apparel"),
        "demo-taobao": ("taobao", "Asia/Shanghai", "CNY", "CN", "beauty"),
        "demo-woo": ("woocommerce", "Europe/Berlin", "EUR", "DE", "home"),
    }
    for store_id, (platform, tz, currency, market, category) in expected.items():
        store = stores[store_id]
        assert store["name"]
        assert (store["platform"], store["timezone"], store["currency"]) == (platform, tz, currency)
        assert (store["market"], store["category"]) == (market, category)


def test_ninety_days_for_three_stores_within_the_row_budget() -> None:
    data = demo()
    assert data.start == END - timedelta(days=89) and data.end == END
    expected_days = {END - timedelta(days=k) for k in range(90)}
    assert set(data.rows) == {"demo-shopify", "demo-taobao", "demo-woo"}
    for rows in data.rows.values():
        assert {r["date"] for r in rows} == expected_days
        assert len(rows) < 30_000


def test_rows_use_the_contract_metrics_and_dimensions() -> None:
    for store_id, rows in demo().rows.items():
        seen_channels = set()
        for row in rows:
            dims = row["dimensions"]
            if row["metric"] in DSR_METRICS:
                assert dims == {}
                continue
            assert row["metric"] in BASE_METRICS
            assert set(dims) == {"channel", "device"} and dims["device"] in DEVICES
            seen_channels.add(dims["channel"])
            if row["metric"] == "ad_spend":
                assert dims["channel"] in PAID_CHANNELS
        assert seen_channels == CHANNELS[store_id]


@pytest.mark.parametrize("end", ENDS)
def test_values_are_finite_counts_whole_money_in_cents(end: date) -> None:
    for rows in demo(end).rows.values():
        for row in rows:
            value = row["value"]
            assert isinstance(value, float) and math.isfinite(value) and value >= 0
            if row["metric"] in MONEY_METRICS:
                assert round(value, 2) == value
            elif row["metric"] not in DSR_METRICS:
                assert value == int(value)


@pytest.mark.parametrize("end", ENDS)
def test_every_leaf_is_funnel_consistent(end: date) -> None:
    for store_id, rows in demo(end).rows.items():
        for (_, channel, _), v in leaves(rows).items():
            expected = set(BASE_METRICS) - (set() if channel in PAID_CHANNELS else {"ad_spend"})
            assert set(v) == expected, (store_id, channel)
            assert v["clicks"] <= v["impressions"]
            assert v["visitors"] <= v["clicks"] * 1.1
            assert v["buyers"] <= v["visitors"]
            assert v["orders"] >= v["buyers"]
            assert v["inquiry_buyers"] <= v["inquiries"]
            assert v["inquiry_buyers"] <= v["buyers"]
            assert v["add_to_cart"] <= v["page_views"]
            assert v["refunds"] <= v["gmv"]
            assert (v["gmv"] == 0) == (v["buyers"] == 0)


@pytest.mark.parametrize("end", ENDS)
def test_dsr_is_a_score_out_of_five(end: date) -> None:
    data = demo(end)
    dsr_incidents = {(i.store_id, i.date, i.metric) for i in data.incidents}
    for store_id, rows in data.rows.items():
        for row in rows:
            if row["metric"] in DSR_METRICS:
                assert 1.0 <= row["value"] <= 5.0
                if (store_id, row["date"], row["metric"]) not in dsr_incidents:
                    assert 4.5 <= row["value"] <= 4.95


# --- realism ---------------------------------------------------------------------------------


def test_magnitudes_are_those_of_a_small_store() -> None:
    data = demo(date(2026, 7, 1))  # no festival in the window
    aov_range = {"demo-shopify": (50, 75), "demo-taobao": (150, 215), "demo-woo": (38, 56)}
    for store_id in data.rows:
        s = series(data.end, store_id)
        days = calm_days(data, store_id)
        visitors = statistics.mean(s.value(d, "visitors", {}) for d in days)
        assert 2_000 <= visitors <= 9_000
        for day in days:
            assert 0.01 <= s.value(day, "cvr", {}) <= 0.04
            low, high = aov_range[store_id]
            assert low <= s.value(day, "aov", {}) <= high


def test_taobao_is_mostly_mobile() -> None:
    s = series(END, "demo-taobao")
    mobile = s.value(END, "visitors", {"device": "mobile"}) / s.value(END, "visitors", {})
    assert 0.85 <= mobile <= 0.95


def test_weekends_differ_by_store() -> None:
    data = demo(date(2026, 7, 1))

    def weekend_ratio(store_id: str) -> float:
        s = series(data.end, store_id)
        days = [data.start + timedelta(days=k) for k in range(90)]
        weekend = [s.value(d, "visitors", {}) for d in days if d.weekday() >= 5]
        weekday = [s.value(d, "visitors", {}) for d in days if d.weekday() < 5]
        return statistics.mean(weekend) / statistics.mean(weekday)

    assert weekend_ratio("demo-taobao") > 1.05
    assert weekend_ratio("demo-shopify") < 0.97


def test_black_friday_is_the_day_after_thanksgiving() -> None:
    assert black_friday(2024) == date(2024, 11, 29)
    assert black_friday(2025) == date(2025, 11, 28)
    assert black_friday(2026) == date(2026, 11, 27)
    assert black_friday(2030) == date(2030, 11, 29)


def test_festivals_only_when_inside_the_window() -> None:
    assert demo(date(2025, 6, 30)).festivals == []
    keys = {(f.key, f.store_ids) for f in demo(date(2025, 12, 5)).festivals}
    assert keys == {
        ("double_11", ("demo-taobao",)),
        ("black_friday_cyber_monday", ("demo-shopify", "demo-woo")),
    }


def test_double_11_presale_and_spike() -> None:
    end = date(2025, 12, 5)
    s = series(end, "demo-taobao")
    assert s.change(date(2025, 11, 11), "gmv", {}) > 3.0
    presale = [date(2025, 10, 24) + timedelta(days=k) for k in range(7)]
    before = [date(2025, 10, 6) + timedelta(days=k) for k in range(14)]
    carts = statistics.mean(s.value(d, "add_to_cart", {}) for d in presale)
    assert carts > 1.5 * statistics.mean(s.value(d, "add_to_cart", {}) for d in before)
    # Black Friday is not a Taobao festival.
    assert abs(series(end, "demo-taobao").change(black_friday(2025), "gmv", {})) < 0.15


@pytest.mark.parametrize("store_id", ["demo-shopify", "demo-woo"])
def test_black_friday_and_cyber_monday_peaks(store_id: str) -> None:
    s = series(date(2025, 12, 5), store_id)
    bf = black_friday(2025)
    assert s.change(bf, "gmv", {}) > 1.5
    assert s.change(bf + timedelta(days=3), "gmv", {}) > 1.5


# --- incidents -------------------------------------------------------------------------------


@pytest.mark.parametrize("end", ENDS)
def test_incident_catalogue_and_placement(end: date) -> None:
    data = demo(end)
    assert 5 <= len(data.incidents) <= 7
    assert {i.kind: (i.store_id, i.owner) for i in data.incidents} == REQUIRED
    assert len({i.id for i in data.incidents}) == len(data.incidents)
    for store_id in CHANNELS:
        days = [i.date for i in data.incidents if i.store_id == store_id]
        assert len(days) == len(set(days)), "incidents of a store fall on distinct days"
        busy = festival_days(data, store_id)
        assert not busy.intersection(days), "no incident on a festival day"
    for incident in data.incidents:
        assert end - timedelta(days=29) <= incident.date <= end
        assert incident.description and incident.expected
        assert -1.0 <= incident.magnitude < 0
        json.dumps(incident.to_dict())


def test_incidents_default_to_their_documented_days() -> None:
    # With no festival near, each incident sits on its documented day (docs/demo-data.md).
    data = demo(date(2026, 7, 1))
    offsets = {i.id: (data.end - i.date).days for i in data.incidents}
    assert offsets == {
        "paid_traffic_collapse": 5,
        "main_image_ctr_drop": 2,
        "search_conversion_drop": 4,
        "inquiry_conversion_drop": 10,
        "dsr_logistics_drop": 18,
        "mobile_data_missing": 9,
        "market_wide_cvr_dip": 13,
    }


def test_incident_days_helper() -> None:
    data = demo()
    by_store = incident_days(data)
    assert sum(len(days) for days in by_store.values()) == len(data.incidents)
    for incident in data.incidents:
        assert by_store[incident.store_id][incident.date] is incident


@pytest.mark.parametrize("end", ENDS)
def test_each_incident_is_visible_in_the_data(end: date) -> None:
    data = demo(end)
    for incident in data.incidents:
        s = series(end, incident.store_id)
        moved = s.change(incident.date, incident.metric, incident.dimensions)
        assert moved <= 0.7 * incident.magnitude, (incident.id, incident.date, moved)


@pytest.mark.parametrize("end", ENDS)
def test_normal_noise_stays_well_below_the_incidents(end: date) -> None:
    data = demo(end)
    for incident in data.incidents:
        s = series(end, incident.store_id)
        days = calm_days(data, incident.store_id)
        assert len(days) >= 10
        for dims in (incident.dimensions, {}):
            worst = max(abs(s.change(d, incident.metric, dims)) for d in days)
            assert worst <= 0.15, (incident.id, dims, worst)


@pytest.mark.parametrize("end", ENDS)
def test_the_data_problem_day_lacks_every_mobile_row(end: date) -> None:
    data = demo(end)
    (incident,) = [i for i in data.incidents if i.kind == "missing_data"]
    rows = data.rows[incident.store_id]
    for day in {r["date"] for r in rows}:
        devices: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            if row["date"] == day and row["dimensions"]:
                devices[row["dimensions"]["device"]].add(row["dimensions"]["channel"])
        assert devices["desktop"] == CHANNELS[incident.store_id]
        if day == incident.date:
            assert "mobile" not in devices
        else:
            assert devices["mobile"] == CHANNELS[incident.store_id]


@pytest.mark.parametrize("end", ENDS)
def test_the_market_wide_day_moves_the_market_too(end: date) -> None:
    data = demo(end)
    (incident,) = [i for i in data.incidents if i.kind == "market_wide"]
    store = next(s for s in data.stores if s["id"] == incident.store_id)
    (bench,) = [
        b
        for b in data.benchmarks
        if (b["market"], b["category"]) == (store["market"], store["category"])
    ]
    cvr = {r["date"]: r["value"] for r in bench["rows"] if r["metric"] == "cvr"}
    baseline = statistics.median(cvr[incident.date - timedelta(weeks=k)] for k in range(1, 5))
    market_change = cvr[incident.date] / baseline - 1
    assert market_change <= 0.7 * incident.magnitude
    store_change = series(end, incident.store_id).change(incident.date, "cvr", {})
    # The store moved with its market: nothing left for the store to explain.
    assert abs(store_change - market_change) < 0.08
    for competitor in data.competitors[incident.store_id]:
        by_day: dict[date, dict[str, float]] = defaultdict(dict)
        for row in competitor["rows"]:
            by_day[row["date"]][row["metric"]] = row["value"]

        def comp_cvr(day: date, by_day: dict[date, dict[str, float]] = by_day) -> float:
            return by_day[day]["buyers"] / by_day[day]["visitors"]

        weeks = [comp_cvr(incident.date - timedelta(weeks=k)) for k in range(1, 5)]
        assert comp_cvr(incident.date) / statistics.median(weeks) - 1 < -0.1


# --- market and competitors ------------------------------------------------------------------


def test_benchmarks_cover_each_store_market_daily() -> None:
    data = demo()
    expected = {(s["market"], s["category"]) for s in data.stores}
    assert {(b["market"], b["category"]) for b in data.benchmarks} == expected
    for bench in data.benchmarks:
        assert bench["value_kind"] == "absolute"
        by_metric: dict[str, dict[date, float]] = defaultdict(dict)
        for row in bench["rows"]:
            assert math.isfinite(row["value"]) and row["value"] > 0
            by_metric[row["metric"]][row["date"]] = row["value"]
        assert set(by_metric) == {"cvr", "ctr", "aov"}
        for values in by_metric.values():
            assert len(values) == 90
        store = next(s for s in data.stores if s["market"] == bench["market"])
        s = series(END, store["id"])
        # Comparable to the store (same definitions, same currency), not identical.
        for metric in ("cvr", "ctr", "aov"):
            own = statistics.median(s.value(d, metric, {}) for d in by_metric[metric])
            market = statistics.median(by_metric[metric].values())
            assert 0.75 <= market / own <= 1.33, (bench["market"], metric)


def test_two_competitors_per_store_with_daily_rows() -> None:
    data = demo()
    for store_id, competitors in data.competitors.items():
        assert len(competitors) == 2
        assert len({c["competitor_id"] for c in competitors}) == 2
        for competitor in competitors:
            assert competitor["name"]
            by_day: dict[date, dict[str, float]] = defaultdict(dict)
            for row in competitor["rows"]:
                assert row["dimensions"] == {}
                by_day[row["date"]][row["metric"]] = row["value"]
            assert len(by_day) == 90, store_id
            for values in by_day.values():
                assert set(values) == {"visitors", "buyers", "gmv"}
                assert 0 <= values["buyers"] <= values["visitors"]
                assert values["gmv"] >= 0


def test_too_short_a_window_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 30"):
        generate_demo(end=END, days=29)
