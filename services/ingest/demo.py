"""Deterministic demo data: the demo tenant, three stores, their market and competitors.

`generate_demo` is a pure function of (end, days, seed): no I/O, no clock, no database. It feeds
`make run` (which loads it through ingest's own use cases) and the diagnosis tests, which rely on
the injected `incidents` being found and on nothing else standing out. docs/demo-data.md explains
the shape of the numbers and lists the incidents.

Every random draw comes from a `random.Random` seeded by (seed, series, date), and each leaf
draws the same numbers whether or not an incident touches it. So an incident changes only its
own store-day, and a date's noise does not depend on how long the window is.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal, TypedDict

__all__ = [
    "BASE_METRICS",
    "DEVICES",
    "DSR_METRICS",
    "INCIDENT_WINDOW_DAYS",
    "MONEY_METRICS",
    "PAID_CHANNELS",
    "Benchmark",
    "BenchmarkRow",
    "Competitor",
    "DemoData",
    "Festival",
    "Incident",
    "MetricRow",
    "Owner",
    "Store",
    "Tenant",
    "black_friday",
    "festival_days",
    "generate_demo",
    "incident_days",
]


class Tenant(TypedDict):
    id: str
    name: str
    reporting_currency: str


class Store(TypedDict):
    id: str
    name: str
    platform: str
    timezone: str
    currency: str
    market: str
    category: str


class MetricRow(TypedDict):
    date: date
    metric: str
    value: float
    dimensions: dict[str, str]


class BenchmarkRow(TypedDict):
    date: date
    metric: str
    value: float


class Benchmark(TypedDict):
    market: str
    category: str
    value_kind: str
    rows: list[BenchmarkRow]


class Competitor(TypedDict):
    competitor_id: str
    name: str
    rows: list[MetricRow]


Owner = Literal[
    "promotion",
    "designer",
    "merchandising",
    "customer_service",
    "logistics",
    "operations",
    "none",
]


@dataclass(frozen=True)
class Incident:
    """One injected incident. `magnitude` is the relative change of `metric` at `dimensions`
    against what the day would have been ("-0.45" = 45% lower). `owner` "none" marks a move the
    whole market shares: diagnosis must explain it by the market and raise nothing severe."""

    id: str
    store_id: str
    date: date
    metric: str
    dimensions: dict[str, str] = field(hash=False)
    kind: str
    magnitude: float
    owner: Owner
    description: str
    affected_metrics: tuple[str, ...]
    expected: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "store_id": self.store_id,
            "date": self.date.isoformat(),
            "metric": self.metric,
            "dimensions": dict(self.dimensions),
            "kind": self.kind,
            "magnitude": self.magnitude,
            "owner": self.owner,
            "description": self.description,
            "affected_metrics": list(self.affected_metrics),
            "expected": self.expected,
        }


@dataclass(frozen=True)
class Festival:
    """A shopping festival's window (warm-up to tail) as it touches the demo's stores."""

    key: str
    name: str
    store_ids: tuple[str, ...]
    start: date
    end: date
    peaks: tuple[date, ...]


@dataclass(frozen=True)
class DemoData:
    tenant: Tenant
    stores: list[Store]
    rows: dict[str, list[MetricRow]]
    benchmarks: list[Benchmark]
    competitors: dict[str, list[Competitor]]
    incidents: list[Incident]
    festivals: list[Festival]
    start: date
    end: date
    seed: int


BASE_METRICS: tuple[str, ...] = (
    "impressions",
    "clicks",
    "visitors",
    "page_views",
    "add_to_cart",
    "favorites",
    "orders",
    "buyers",
    "gmv",
    "refunds",
    "ad_spend",
    "inquiries",
    "inquiry_buyers",
)
MONEY_METRICS: frozenset[str] = frozenset({"gmv", "refunds", "ad_spend"})
DSR_METRICS: tuple[str, ...] = ("dsr_description", "dsr_service", "dsr_logistics")
PAID_CHANNELS: frozenset[str] = frozenset({"paid_search", "paid_display"})
DEVICES: tuple[str, ...] = ("mobile", "desktop")
# Incidents sit in the most recent days, where an operator looks and where 4 weeks of history
# exist before them for any baseline.
INCIDENT_WINDOW_DAYS = 30
MIN_DAYS = INCIDENT_WINDOW_DAYS

# Unique visitors per click; below 1 because one person clicks more than once, and well within
# the ingest sanity bound visitors <= 1.1 x clicks.
_VISITORS_PER_CLICK = 0.92
_DSR_LOW, _DSR_HIGH = 4.5, 4.95


# ---------------------------------------------------------------------------------------------
# Store profiles


@dataclass(frozen=True, slots=True)
class _Channel:
    name: str
    share: float  # of the store's visitors
    ctr: float
    cvr: float
    aov_factor: float
    cpc: float | None = None  # set only on paid channels


@dataclass(frozen=True, slots=True)
class _CompetitorProfile:
    competitor_id: str
    name: str
    scale: float  # visitors relative to the store
    cvr_factor: float
    aov_factor: float
    growth: float


@dataclass(frozen=True, slots=True)
class _Profile:
    store: Store
    visitors: float  # a normal weekday at the end of the window
    growth: float  # per year; the trend is anchored at `end`
    weekday: tuple[float, ...]  # Monday first
    weekday_cvr: tuple[float, ...]
    mobile_share: float
    desktop_cvr_lift: float
    desktop_aov_lift: float
    pages_per_visitor: float
    add_to_cart_rate: float
    favorite_rate: float
    orders_per_buyer: float
    aov: float
    refund_rate: float
    inquiry_share: float  # of buyers who asked customer service first
    inquiry_cvr: float
    dsr: tuple[float, float, float]  # description, service, logistics
    channels: tuple[_Channel, ...]
    competitors: tuple[_CompetitorProfile, ...]
    # The market (category) relative to this store: cvr, ctr, aov.
    market: tuple[float, float, float]


_TENANT: Tenant = {"id": "demo", "name": "Demo Agency", "reporting_currency": "USD"}

_PROFILES: tuple[_Profile, ...] = (
    _Profile(
        store={
            "id": "demo-shopify",
            "name": "Demo Apparel (Shopify)",
            "platform": "shopify",
            "timezone": "America/New_York",
            "currency": "USD",
            "market": "US",
            "category": "apparel",
        },
        visitors=4200,
        growth=0.30,
        weekday=(1.05, 1.04, 1.02, 1.00, 0.97, 0.90, 0.94),
        weekday_cvr=(1.02, 1.01, 1.00, 1.00, 0.99, 0.97, 0.99),
        mobile_share=0.68,
        desktop_cvr_lift=1.35,
        desktop_aov_lift=1.08,
        pages_per_visitor=3.4,
        add_to_cart_rate=0.085,
        favorite_rate=0.02,
        orders_per_buyer=1.04,
        aov=60.0,
        refund_rate=0.09,
        inquiry_share=0.20,
        inquiry_cvr=0.30,
        dsr=(4.72, 4.66, 4.61),
        channels=(
            _Channel("search", 0.26, 0.032, 0.022, 1.00),
            _Channel("paid_search", 0.18, 0.045, 0.026, 1.03, cpc=1.10),
            _Channel("paid_display", 0.08, 0.004, 0.009, 0.92, cpc=0.62),
            _Channel("social", 0.17, 0.011, 0.012, 0.90),
            _Channel("email_sms", 0.11, 0.028, 0.042, 1.06),
            _Channel("direct", 0.20, 0.220, 0.034, 1.05),
        ),
        competitors=(
            _CompetitorProfile(
                "northwind-outfitters", "Northwind Outfitters", 1.4, 0.92, 1.08, 0.15
            ),
            _CompetitorProfile("harbor-pine", "Harbor & Pine Apparel", 0.75, 1.10, 0.90, 0.40),
        ),
        market=(0.92, 0.95, 1.05),
    ),
    _Profile(
        store={
            "id": "demo-taobao",
            "name": "Demo Beauty (Taobao)",
            "platform": "taobao",
            "timezone": "Asia/Shanghai",
            "currency": "CNY",
            "market": "CN",
            "category": "beauty",
        },
        visitors=6500,
        growth=0.08,
        weekday=(0.95, 0.95, 0.96, 0.97, 1.00, 1.12, 1.10),
        weekday_cvr=(1.00, 1.00, 1.00, 1.00, 1.00, 1.02, 1.02),
        mobile_share=0.90,
        desktop_cvr_lift=1.15,
        desktop_aov_lift=1.05,
        pages_per_visitor=4.6,
        add_to_cart_rate=0.09,
        favorite_rate=0.06,
        orders_per_buyer=1.10,
        aov=180.0,
        refund_rate=0.06,
        # Taobao shoppers chat with the shop before buying: about half of buyers asked first.
        inquiry_share=0.45,
        inquiry_cvr=0.32,
        dsr=(4.83, 4.79, 4.80),
        channels=(
            _Channel("search", 0.30, 0.045, 0.030, 1.00),
            _Channel("recommendation", 0.25, 0.040, 0.022, 0.92),
            _Channel("paid_search", 0.15, 0.050, 0.032, 1.02, cpc=1.35),
            _Channel("live", 0.12, 0.090, 0.055, 0.85),
            _Channel("social", 0.06, 0.015, 0.015, 0.95),
            _Channel("direct", 0.12, 0.300, 0.045, 1.12),
        ),
        competitors=(
            _CompetitorProfile(
                "huaxi-beauty", "Huaxi Beauty Flagship Store", 1.6, 0.95, 1.05, 0.12
            ),
            _CompetitorProfile("qingyan-skin", "Qingyan Skincare Official", 0.8, 1.12, 0.88, 0.20),
        ),
        market=(1.05, 1.00, 0.95),
    ),
    _Profile(
        store={
            "id": "demo-woo",
            "name": "Demo Home (WooCommerce)",
            "platform": "woocommerce",
            "timezone": "Europe/Berlin",
            "currency": "EUR",
            "market": "DE",
            "category": "home",
        },
        visitors=3000,
        growth=-0.04,
        # Saturday is for the high street; Sunday, with shops closed, is for shopping online.
        weekday=(1.05, 1.03, 1.01, 1.00, 0.95, 0.86, 1.10),
        weekday_cvr=(1.00, 1.00, 1.00, 1.00, 0.99, 0.97, 1.03),
        mobile_share=0.58,
        desktop_cvr_lift=1.40,
        desktop_aov_lift=1.10,
        pages_per_visitor=3.0,
        add_to_cart_rate=0.075,
        favorite_rate=0.015,
        orders_per_buyer=1.05,
        aov=45.0,
        refund_rate=0.045,
        inquiry_share=0.18,
        inquiry_cvr=0.30,
        dsr=(4.76, 4.71, 4.68),
        channels=(
            _Channel("search", 0.38, 0.030, 0.024, 1.00),
            _Channel("paid_search", 0.17, 0.042, 0.027, 1.04, cpc=0.78),
            _Channel("social", 0.12, 0.010, 0.011, 0.88),
            _Channel("email_sms", 0.10, 0.030, 0.040, 1.05),
            _Channel("direct", 0.23, 0.250, 0.033, 1.08),
        ),
        competitors=(
            _CompetitorProfile("wohnwerk", "Wohnwerk Living", 1.3, 0.95, 1.10, 0.02),
            _CompetitorProfile("nordhaus-home", "Nordhaus Home", 0.7, 1.05, 0.92, 0.06),
        ),
        market=(0.96, 1.02, 1.10),
    ),
)
_BY_ID: dict[str, _Profile] = {p.store["id"]: p for p in _PROFILES}


def _expected_ratios(profile: _Profile) -> tuple[float, float, float]:
    """The store's normal cvr, ctr and aov given its channel mix (the benchmark's anchor)."""
    visitors = sum(c.share for c in profile.channels)
    buyers = sum(c.share * c.cvr for c in profile.channels)
    impressions = sum(c.share / (c.ctr * _VISITORS_PER_CLICK) for c in profile.channels)
    clicks = visitors / _VISITORS_PER_CLICK
    gmv = sum(c.share * c.cvr * c.aov_factor for c in profile.channels) * profile.aov
    return buyers / visitors, clicks / impressions, gmv / buyers


# ---------------------------------------------------------------------------------------------
# Festivals


@dataclass(frozen=True, slots=True)
class _Effect:
    """Multipliers a festival day puts on a market: traffic, conversion, order value, and
    engagement (add-to-cart, favourites: carts fill up during a pre-sale, before people pay)."""

    traffic: float = 1.0
    cvr: float = 1.0
    aov: float = 1.0
    engagement: float = 1.0

    def __mul__(self, other: _Effect) -> _Effect:
        return _Effect(
            self.traffic * other.traffic,
            self.cvr * other.cvr,
            self.aov * other.aov,
            self.engagement * other.engagement,
        )


_NO_EFFECT = _Effect()


@dataclass(frozen=True, slots=True)
class _FestivalDays:
    festival: Festival
    markets: frozenset[str]
    effects: dict[date, _Effect]


def black_friday(year: int) -> date:
    """The day after US Thanksgiving (the fourth Thursday of November).

    Usually the fourth Friday, but the fifth when November starts on a Friday (2024: the 29th).
    """
    first = date(year, 11, 1)
    first_thursday = first + timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + timedelta(weeks=3, days=1)


def _phases(effects: dict[date, _Effect], first: date, last: date, effect: _Effect) -> None:
    day = first
    while day <= last:
        effects[day] = effect
        day += timedelta(days=1)


def _double_11(year: int) -> tuple[str, str, frozenset[str], dict[date, _Effect], tuple[date, ...]]:
    # Tmall's recent pattern: warm-up, deposits from late October, a first sales wave around
    # 31 Oct / 1 Nov, more pre-sale, the eve, the 11-11 spike, then a post-festival lull.
    effects: dict[date, _Effect] = {}
    _phases(effects, date(year, 10, 20), date(year, 10, 23), _Effect(1.15, 0.92, 1.0, 1.4))
    _phases(effects, date(year, 10, 24), date(year, 10, 30), _Effect(1.30, 0.85, 1.0, 1.9))
    _phases(effects, date(year, 10, 31), date(year, 11, 1), _Effect(1.90, 1.35, 1.08, 1.3))
    _phases(effects, date(year, 11, 2), date(year, 11, 9), _Effect(1.25, 0.88, 1.0, 1.7))
    _phases(effects, date(year, 11, 10), date(year, 11, 10), _Effect(1.60, 0.95, 1.0, 2.2))
    _phases(effects, date(year, 11, 11), date(year, 11, 11), _Effect(3.20, 2.10, 1.15, 1.2))
    _phases(effects, date(year, 11, 12), date(year, 11, 13), _Effect(0.90, 0.90, 1.0, 0.9))
    peaks = (date(year, 10, 31), date(year, 11, 11))
    return "double_11", "Double 11", frozenset({"CN"}), effects, peaks


def _bfcm(year: int) -> tuple[str, str, frozenset[str], dict[date, _Effect], tuple[date, ...]]:
    bf = black_friday(year)
    cm = bf + timedelta(days=3)
    effects: dict[date, _Effect] = {}
    _phases(effects, bf - timedelta(days=4), bf - timedelta(days=1), _Effect(1.20, 1.10, 1.0, 1.3))
    effects[bf] = _Effect(2.40, 1.80, 1.10, 1.2)
    effects[bf + timedelta(days=1)] = _Effect(1.70, 1.50, 1.05, 1.1)
    effects[bf + timedelta(days=2)] = _Effect(1.50, 1.40, 1.05, 1.1)
    effects[cm] = _Effect(2.10, 1.70, 1.08, 1.2)
    effects[cm + timedelta(days=1)] = _Effect(1.10, 1.05, 1.0, 1.0)
    name = "Black Friday / Cyber Monday"
    return "black_friday_cyber_monday", name, frozenset({"US", "DE"}), effects, (bf, cm)


def _festivals(start: date, end: date) -> list[_FestivalDays]:
    found: list[_FestivalDays] = []
    for year in range(start.year, end.year + 1):
        for rule in (_double_11, _bfcm):
            key, name, markets, effects, peaks = rule(year)
            first, last = min(effects), max(effects)
            if last < start or first > end:
                continue
            store_ids = tuple(p.store["id"] for p in _PROFILES if p.store["market"] in markets)
            festival = Festival(key, name, store_ids, first, last, peaks)
            found.append(_FestivalDays(festival, markets, effects))
    return found


def _effect(festivals: Iterable[_FestivalDays], market: str, day: date) -> _Effect:
    effect = _NO_EFFECT
    for f in festivals:
        if market in f.markets:
            effect = effect * f.effects.get(day, _NO_EFFECT)
    return effect


# ---------------------------------------------------------------------------------------------
# Incidents


@dataclass(frozen=True, slots=True)
class _Impact:
    """What an incident does to the leaves it matches, stage by stage of the funnel, so that
    everything downstream of the stage follows and each leaf stays consistent."""

    scope: Mapping[str, str]
    traffic: float = 1.0  # impressions and paid spend; clicks and visitors follow
    ctr: float = 1.0  # clicks for the same impressions; visitors follow
    cvr: float = 1.0  # buyers for the same visitors; orders and gmv follow
    inquiry_cvr: float = 1.0  # inquiry buyers; the buyers lost are lost to the store
    dsr_metric: str | None = None
    dsr_factor: float = 1.0
    missing_device: str | None = None
    market_wide: bool = False


@dataclass(frozen=True, slots=True)
class _Plan:
    id: str
    store_id: str
    offset: int  # preferred day: end - offset
    metric: str
    dimensions: dict[str, str]
    kind: str
    magnitude: float
    owner: Owner
    description: str
    affected_metrics: tuple[str, ...]
    expected: str
    impact: _Impact


_TRAFFIC_DOWNSTREAM = (
    "visitors",
    "page_views",
    "add_to_cart",
    "favorites",
    "buyers",
    "orders",
    "gmv",
    "refunds",
    "inquiries",
    "inquiry_buyers",
)

_PLANS: tuple[_Plan, ...] = (
    _Plan(
        id="paid_traffic_collapse",
        store_id="demo-shopify",
        offset=5,
        metric="visitors",
        dimensions={"channel": "paid_search"},
        kind="paid_traffic_drop",
        magnitude=-0.60,
        owner="promotion",
        description=(
            "Paid search campaigns stopped serving for most of the day (budget cap hit early): "
            "ad spend, impressions, clicks and visitors on paid_search all fell by about 60%; "
            "conversion and order value held, so buyers and GMV fell with the traffic."
        ),
        affected_metrics=("ad_spend", "impressions", "clicks", *_TRAFFIC_DOWNSTREAM),
        expected=(
            "GMV down, explained by visitors; root cause channel=paid_search (paid traffic); "
            "owner promotion: check budgets, bids and campaign status."
        ),
        impact=_Impact(scope={"channel": "paid_search"}, traffic=0.40),
    ),
    _Plan(
        id="main_image_ctr_drop",
        store_id="demo-taobao",
        offset=2,
        metric="ctr",
        dimensions={"channel": "recommendation"},
        kind="ctr_drop",
        magnitude=-0.40,
        owner="designer",
        description=(
            "A new main image went live on the best sellers: on the recommendation feed the "
            "impressions were normal but click-through fell by about 40%, so visitors, buyers "
            "and GMV from recommendation fell by the same share."
        ),
        affected_metrics=("clicks", *_TRAFFIC_DOWNSTREAM),
        expected=(
            "Visitors down on channel=recommendation with impressions normal: ctr is the "
            "factor; owner designer: review the main image / creative."
        ),
        impact=_Impact(scope={"channel": "recommendation"}, ctr=0.60),
    ),
    _Plan(
        id="search_conversion_drop",
        store_id="demo-woo",
        offset=4,
        metric="cvr",
        dimensions={"channel": "search"},
        kind="conversion_drop",
        magnitude=-0.45,
        owner="merchandising",
        description=(
            "The top search landing products went out of stock / were repriced: search traffic "
            "was normal but buyers, orders and GMV from search fell by about 45%."
        ),
        affected_metrics=("buyers", "orders", "gmv", "refunds", "inquiry_buyers"),
        expected=(
            "GMV down, explained by cvr on channel=search with visitors normal; owner "
            "merchandising (stock, price, product page), promotion to check traffic precision."
        ),
        impact=_Impact(scope={"channel": "search"}, cvr=0.55),
    ),
    _Plan(
        id="inquiry_conversion_drop",
        store_id="demo-taobao",
        offset=10,
        metric="inquiry_cvr",
        dimensions={},
        kind="inquiry_conversion_drop",
        magnitude=-0.50,
        owner="customer_service",
        description=(
            "Customer service was understaffed: inquiries came in as usual but only half as many "
            "of the people who asked went on to buy; those lost buyers are missing from buyers, "
            "orders and GMV (store cvr down roughly a fifth)."
        ),
        affected_metrics=("inquiry_buyers", "buyers", "orders", "gmv", "refunds"),
        expected=(
            "cvr down with inquiries normal and inquiry_cvr halved; owner customer_service "
            "(response time, scripts), not merchandising."
        ),
        impact=_Impact(scope={}, inquiry_cvr=0.50),
    ),
    _Plan(
        id="dsr_logistics_drop",
        store_id="demo-taobao",
        offset=18,
        metric="dsr_logistics",
        dimensions={},
        kind="dsr_drop",
        magnitude=-0.125,
        owner="logistics",
        description=(
            "A courier hub delay produced a wave of low logistics ratings: the DSR logistics "
            "score fell from about 4.8 to 4.2 for the day; description and service held."
        ),
        affected_metrics=("dsr_logistics",),
        expected="dsr_logistics down; owner logistics (courier, warehouse), with QC informed.",
        impact=_Impact(scope={}, dsr_metric="dsr_logistics", dsr_factor=0.875),
    ),
    _Plan(
        id="mobile_data_missing",
        store_id="demo-woo",
        offset=9,
        metric="visitors",
        dimensions={"device": "mobile"},
        kind="missing_data",
        magnitude=-1.0,
        owner="operations",
        description=(
            "The mobile tracking feed stopped delivering: for that day there are no "
            "device=mobile rows at all, on any channel; desktop rows are complete and normal."
        ),
        affected_metrics=BASE_METRICS,
        expected=(
            "A data problem (missing device=mobile rows for every channel, a data-health "
            "issue), owner operations; not reported as a sales or traffic drop."
        ),
        impact=_Impact(scope={"device": "mobile"}, missing_device="mobile"),
    ),
    _Plan(
        id="market_wide_cvr_dip",
        store_id="demo-shopify",
        offset=13,
        metric="cvr",
        dimensions={},
        kind="market_wide",
        magnitude=-0.20,
        owner="none",
        description=(
            "A market-wide dip (e.g. a payment-provider outage across US apparel): cvr fell "
            "about 20% in the store, at its competitors and in the US apparel benchmark alike."
        ),
        affected_metrics=("buyers", "orders", "gmv", "refunds", "inquiry_buyers"),
        expected=(
            "cvr down about as much as the market (relative change near 0): explained by the "
            "market, no high-severity finding and no owner."
        ),
        impact=_Impact(scope={}, cvr=0.80, market_wide=True),
    ),
)


def _place_incidents(
    start: date, end: date, festivals: list[_FestivalDays]
) -> list[tuple[_Plan, date]]:
    """Pick each incident's day: in the last 30 days, off any festival window, distinct per
    store, preferring a weekday no other incident of the store uses (so one incident never sits
    in another's same-weekday baseline) and a baseline free of festival days; then the day
    closest to the preferred offset."""
    placed: list[tuple[_Plan, date]] = []
    used: dict[str, list[date]] = {}
    for plan in _PLANS:
        market = _BY_ID[plan.store_id].store["market"]
        busy = {d for f in festivals if market in f.markets for d in f.effects}
        taken = used.setdefault(plan.store_id, [])
        candidates: list[tuple[tuple[int, int, int, int], date]] = []
        for offset in range(INCIDENT_WINDOW_DAYS):
            day = end - timedelta(days=offset)
            if day < start or day in busy or day in taken:
                continue
            weekday_clash = sum(1 for t in taken if t.weekday() == day.weekday())
            baseline = (day - timedelta(weeks=k) for k in range(1, 5))
            # One festival day among four is harmless to a median baseline; more is not.
            festive = max(0, sum(1 for b in baseline if b in busy) - 1)
            key = (weekday_clash, festive, abs(offset - plan.offset), offset)
            candidates.append((key, day))
        if not candidates:
            raise ValueError(f"no free day for incident {plan.id} in the last 30 days")
        day = min(candidates)[1]
        taken.append(day)
        placed.append((plan, day))
    return placed


def _matches(scope: Mapping[str, str], dimensions: Mapping[str, str]) -> bool:
    return all(dimensions.get(k) == v for k, v in scope.items())


# ---------------------------------------------------------------------------------------------
# Generation


def _jitter(rng: random.Random, sigma: float) -> float:
    # Clipped at 2.5 sigma: normal day-to-day noise, without the rare tail that would look
    # like an incident nobody injected.
    return 1.0 + max(-2.5 * sigma, min(2.5 * sigma, rng.gauss(0.0, sigma)))


def _trend(growth: float, day: date, end: date) -> float:
    return float((1.0 + growth) ** ((day - end).days / 365.0))


def _cents(value: float) -> float:
    return round(value, 2)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _leaf(
    rng: random.Random,
    profile: _Profile,
    channel: _Channel,
    device: str,
    visitors_base: float,
    cvr_day: float,
    effect: _Effect,
    impacts: list[_Impact],
) -> dict[str, float]:
    # Draw every number first, in a fixed order, so incidents never shift the random stream.
    j_traffic = _jitter(rng, 0.015)
    j_ctr = _jitter(rng, 0.015)
    j_vpc = _jitter(rng, 0.01)
    j_cvr = _jitter(rng, 0.02)
    j_inquiries = _jitter(rng, 0.03)
    j_inquiry_cvr = _jitter(rng, 0.025)
    j_orders = _jitter(rng, 0.01)
    j_aov = _jitter(rng, 0.02)
    j_refunds = _jitter(rng, 0.08)
    j_pages = _jitter(rng, 0.02)
    j_cart = _jitter(rng, 0.03)
    j_fav = _jitter(rng, 0.04)
    j_cpc = _jitter(rng, 0.03)

    traffic = ctr_m = cvr_m = inquiry_m = 1.0
    for impact in impacts:
        traffic *= impact.traffic
        ctr_m *= impact.ctr
        cvr_m *= impact.cvr
        inquiry_m *= impact.inquiry_cvr

    mobile = device == "mobile"
    m = profile.mobile_share
    device_share = m if mobile else 1.0 - m
    # Device lifts are normalised so the channel's average cvr/aov stay as profiled.
    cvr_norm = m + (1.0 - m) * profile.desktop_cvr_lift
    cvr_leaf = channel.cvr * (1.0 if mobile else profile.desktop_cvr_lift) / cvr_norm
    aov_norm = m + (1.0 - m) * profile.desktop_aov_lift
    aov_leaf = profile.aov * channel.aov_factor
    aov_leaf *= (1.0 if mobile else profile.desktop_aov_lift) / aov_norm

    ctr = channel.ctr * j_ctr
    visitors_normal = visitors_base * channel.share * device_share * j_traffic
    impressions_f = visitors_normal / (_VISITORS_PER_CLICK * ctr) * traffic
    clicks_f = impressions_f * ctr * ctr_m
    visitors_f = clicks_f * _VISITORS_PER_CLICK * j_vpc

    # Inquiries follow traffic at the store's normal rate; a conversion problem does not stop
    # people asking questions.
    inquiry_rate = cvr_leaf * profile.inquiry_share / profile.inquiry_cvr
    inquiries_f = visitors_f * inquiry_rate * j_inquiries
    buyers_f = visitors_f * cvr_leaf * cvr_day * effect.cvr * j_cvr * cvr_m
    inquiry_buyers_f = inquiries_f * profile.inquiry_cvr * j_inquiry_cvr

    impressions = round(impressions_f)
    clicks = min(round(clicks_f), impressions)
    visitors = min(round(visitors_f), math.floor(clicks * 1.1))
    inquiries = round(inquiries_f)
    buyers = min(round(buyers_f), visitors)
    inquiry_buyers = min(round(inquiry_buyers_f), inquiries, buyers)
    if inquiry_m != 1.0:
        # The people customer service failed to convert would have bought: the store loses them.
        kept = round(inquiry_buyers * inquiry_m)
        buyers -= inquiry_buyers - kept
        inquiry_buyers = kept
    orders = max(buyers, round(buyers * profile.orders_per_buyer * j_orders))
    gmv = _cents(buyers * aov_leaf * effect.aov * j_aov)
    refunds = min(gmv, _cents(gmv * profile.refund_rate * j_refunds))
    page_views = max(visitors, round(visitors_f * profile.pages_per_visitor * j_pages))
    engagement = visitors_f * effect.engagement
    add_to_cart = min(page_views, round(engagement * profile.add_to_cart_rate * j_cart))
    favorites = round(engagement * profile.favorite_rate * j_fav)

    values: dict[str, float] = {
        "impressions": float(impressions),
        "clicks": float(clicks),
        "visitors": float(visitors),
        "page_views": float(page_views),
        "add_to_cart": float(add_to_cart),
        "favorites": float(favorites),
        "orders": float(orders),
        "buyers": float(buyers),
        "gmv": gmv,
        "refunds": refunds,
        "inquiries": float(inquiries),
        "inquiry_buyers": float(inquiry_buyers),
    }
    if channel.cpc is not None:
        values["ad_spend"] = _cents(clicks * channel.cpc * j_cpc)
    return values


def _store_rows(
    profile: _Profile,
    days: list[date],
    end: date,
    seed: int,
    festivals: list[_FestivalDays],
    impacts: dict[tuple[str, date], list[_Impact]],
) -> list[MetricRow]:
    store_id = profile.store["id"]
    market = profile.store["market"]
    rows: list[MetricRow] = []
    for day in days:
        rng = random.Random(f"{seed}:{store_id}:{day.isoformat()}")
        effect = _effect(festivals, market, day)
        day_impacts = impacts.get((store_id, day), [])
        visitors_base = (
            profile.visitors
            * profile.weekday[day.weekday()]
            * _trend(profile.growth, day, end)
            * effect.traffic
            * _jitter(rng, 0.015)
        )
        cvr_day = profile.weekday_cvr[day.weekday()]
        for channel in profile.channels:
            channel_base = visitors_base * _jitter(rng, 0.015)
            for device in DEVICES:
                dims = {"channel": channel.name, "device": device}
                matching = [i for i in day_impacts if _matches(i.scope, dims)]
                values = _leaf(
                    rng, profile, channel, device, channel_base, cvr_day, effect, matching
                )
                if any(i.missing_device == device for i in matching):
                    continue
                rows.extend(
                    {
                        "date": day,
                        "metric": metric,
                        "value": values[metric],
                        "dimensions": dict(dims),
                    }
                    for metric in BASE_METRICS
                    if metric in values
                )
        for metric, normal in zip(DSR_METRICS, profile.dsr, strict=True):
            value = normal + max(-0.05, min(0.05, rng.gauss(0.0, 0.02)))
            value = min(_DSR_HIGH, max(_DSR_LOW, value))
            for impact in day_impacts:
                if impact.dsr_metric == metric:
                    value = normal * impact.dsr_factor
            rows.append({"date": day, "metric": metric, "value": round(value, 2), "dimensions": {}})
    return rows


def _market_cvr(impacts: dict[tuple[str, date], list[_Impact]], store_id: str, day: date) -> float:
    factor = 1.0
    for impact in impacts.get((store_id, day), []):
        if impact.market_wide:
            factor *= impact.cvr
    return factor


def _benchmark(
    profile: _Profile,
    days: list[date],
    seed: int,
    festivals: list[_FestivalDays],
    impacts: dict[tuple[str, date], list[_Impact]],
) -> Benchmark:
    market, category = profile.store["market"], profile.store["category"]
    cvr0, ctr0, aov0 = _expected_ratios(profile)
    cvr_f, ctr_f, aov_f = profile.market
    rows: list[BenchmarkRow] = []
    for day in days:
        rng = random.Random(f"{seed}:benchmark:{market}:{category}:{day.isoformat()}")
        effect = _effect(festivals, market, day)
        # A whole market is smoother than one store: smaller noise.
        cvr = cvr0 * cvr_f * profile.weekday_cvr[day.weekday()] * effect.cvr * _jitter(rng, 0.01)
        cvr *= _market_cvr(impacts, profile.store["id"], day)
        ctr = ctr0 * ctr_f * _jitter(rng, 0.01)
        aov = aov0 * aov_f * effect.aov * _jitter(rng, 0.01)
        rows.append({"date": day, "metric": "cvr", "value": round(cvr, 6)})
        rows.append({"date": day, "metric": "ctr", "value": round(ctr, 6)})
        rows.append({"date": day, "metric": "aov", "value": _cents(aov)})
    return {"market": market, "category": category, "value_kind": "absolute", "rows": rows}


def _competitor(
    profile: _Profile,
    comp: _CompetitorProfile,
    days: list[date],
    end: date,
    seed: int,
    festivals: list[_FestivalDays],
    impacts: dict[tuple[str, date], list[_Impact]],
) -> Competitor:
    store_id, market = profile.store["id"], profile.store["market"]
    cvr0, _, aov0 = _expected_ratios(profile)
    rows: list[MetricRow] = []
    for day in days:
        rng = random.Random(f"{seed}:{store_id}:{comp.competitor_id}:{day.isoformat()}")
        effect = _effect(festivals, market, day)
        visitors_f = (
            profile.visitors
            * comp.scale
            * profile.weekday[day.weekday()]
            * _trend(comp.growth, day, end)
            * effect.traffic
            * _jitter(rng, 0.03)
        )
        cvr = cvr0 * comp.cvr_factor * profile.weekday_cvr[day.weekday()] * effect.cvr
        cvr *= _jitter(rng, 0.03) * _market_cvr(impacts, store_id, day)
        visitors = round(visitors_f)
        buyers = min(visitors, round(visitors_f * cvr))
        gmv = _cents(buyers * aov0 * comp.aov_factor * effect.aov * _jitter(rng, 0.02))
        for metric, value in (
            ("visitors", float(visitors)),
            ("buyers", float(buyers)),
            ("gmv", gmv),
        ):
            rows.append({"date": day, "metric": metric, "value": value, "dimensions": {}})
    return {"competitor_id": comp.competitor_id, "name": comp.name, "rows": rows}


def generate_demo(*, end: date, days: int = 90, seed: int = 7) -> DemoData:
    """The demo tenant's data for the `days` days ending on `end` (inclusive).

    Deterministic for (end, days, seed). `days` must be at least 30: the incidents live in the
    last 30 days.
    """
    if days < MIN_DAYS:
        raise ValueError(f"days must be at least {MIN_DAYS}, got {days}")
    start = end - timedelta(days=days - 1)
    window = _days(start, end)
    festivals = _festivals(start, end)
    placed = _place_incidents(start, end, festivals)

    impacts: dict[tuple[str, date], list[_Impact]] = {}
    incidents: list[Incident] = []
    for plan, day in placed:
        targets = [plan.store_id]
        if plan.impact.market_wide:
            market = _BY_ID[plan.store_id].store["market"]
            targets = [p.store["id"] for p in _PROFILES if p.store["market"] == market]
        for store_id in targets:
            impacts.setdefault((store_id, day), []).append(plan.impact)
        incidents.append(
            Incident(
                id=plan.id,
                store_id=plan.store_id,
                date=day,
                metric=plan.metric,
                dimensions=dict(plan.dimensions),
                kind=plan.kind,
                magnitude=plan.magnitude,
                owner=plan.owner,
                description=plan.description,
                affected_metrics=plan.affected_metrics,
                expected=plan.expected,
            )
        )

    return DemoData(
        tenant=_TENANT.copy(),
        stores=[p.store.copy() for p in _PROFILES],
        rows={
            p.store["id"]: _store_rows(p, window, end, seed, festivals, impacts) for p in _PROFILES
        },
        benchmarks=[_benchmark(p, window, seed, festivals, impacts) for p in _PROFILES],
        competitors={
            p.store["id"]: [
                _competitor(p, c, window, end, seed, festivals, impacts) for c in p.competitors
            ]
            for p in _PROFILES
        },
        incidents=sorted(incidents, key=lambda i: (i.date, i.store_id)),
        festivals=[f.festival for f in festivals],
        start=start,
        end=end,
        seed=seed,
    )


def incident_days(demo: DemoData) -> dict[str, dict[date, Incident]]:
    """Store id -> day -> the incident injected on that store-day (at most one per day)."""
    found: dict[str, dict[date, Incident]] = {store["id"]: {} for store in demo.stores}
    for incident in demo.incidents:
        found[incident.store_id][incident.date] = incident
    return found


def festival_days(demo: DemoData, store_id: str) -> frozenset[date]:
    """Every day (warm-up to tail) on which a festival shapes this store's numbers."""
    days: set[date] = set()
    for festival in demo.festivals:
        if store_id in festival.store_ids:
            span = (festival.end - festival.start).days
            days.update(festival.start + timedelta(days=i) for i in range(span + 1))
    return frozenset(d for d in days if demo.start <= d <= demo.end)
