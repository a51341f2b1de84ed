"""Realistic store-days for the finding rules: a generator shared by the scenario suite
(tests/services/diagnosis/test_scenarios.py) and the findings bench
(bench/bench_diagnosis_findings.py). Parameters are in docs/diagnosis.md ("Scenario generator").

A store is channels x devices of Poisson counts (impressions -> clicks -> visitors -> buyers,
inquiries -> inquiry buyers), a weekly rhythm, a day-level demand shock shared with the market and
per-channel shocks, both heavy-tailed (Student t, 4 degrees of freedom), a festival of its market
(Double 11 in CN, Black Friday / Cyber Monday in the US) with its warm-up or pre-sale, peak and
aftermath lull, mixed levels of detail (a store-level GMV row beside the leaves, copy_id slice
rows that are no part of the totals), store-level DSR ratings, and a market benchmark of the same
rhythm and shocks. One incident may be injected on the last day.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np

from services.diagnosis.context import context_for
from services.diagnosis.engine.diagnose import Report, StoreDay, diagnose_store_day

WEEKLY = (0.97, 0.95, 0.96, 0.98, 1.04, 1.07, 1.03)  # Mon..Sun
DEVICES = (("mobile", 0.78), ("desktop", 0.22))


@dataclass(frozen=True)
class Channel:
    name: str
    share: float  # of the store's visitors
    ctr: float
    cvr: float


TAOBAO = (
    Channel("search", 0.36, 0.045, 0.018),
    Channel("recommendation", 0.24, 0.030, 0.012),
    Channel("paid_search", 0.16, 0.050, 0.022),
    Channel("paid_display", 0.08, 0.020, 0.010),
    Channel("live", 0.08, 0.060, 0.030),
    Channel("social", 0.04, 0.030, 0.010),
    Channel("direct", 0.04, 0.100, 0.035),
)
SHOPIFY = (
    Channel("search", 0.32, 0.040, 0.022),
    Channel("paid_search", 0.24, 0.045, 0.025),
    Channel("paid_display", 0.10, 0.015, 0.012),
    Channel("social", 0.14, 0.025, 0.012),
    Channel("direct", 0.14, 0.100, 0.030),
    Channel("email_sms", 0.06, 0.080, 0.035),
)


@dataclass(frozen=True)
class StoreSpec:
    store_id: str
    platform: str
    market: str
    currency: str
    visitors: float  # an ordinary weekday's
    aov: float
    channels: tuple[Channel, ...]
    market_posts_traffic: bool = True  # the benchmark carries visitors and ctr, or only cvr


@dataclass(frozen=True)
class Incident:
    kind: str
    code: str  # the finding that must be raised
    owner: str
    channel: str = ""
    magnitude: float = 0.0


# kind -> (code, owner, channel): what each incident must raise
INCIDENTS: dict[str, tuple[str, str, str]] = {
    "free_search_traffic_drop": ("free_traffic_drop", "operations", "search"),
    "cvr_below_market": ("cvr_below_market", "merchandising", ""),
    "search_cvr_drop": ("cvr_drop", "merchandising", "search"),
    "paid_traffic_collapse": ("paid_traffic_drop", "promotion", "paid_search"),
    "main_image_ctr_drop": ("ctr_drop", "designer", "search"),
    "inquiry_cvr_drop": ("inquiry_cvr_drop", "customer_service", ""),
    "dsr_logistics_drop": ("dsr_logistics_drop", "logistics", ""),
}


@dataclass
class Generated:
    spec: StoreSpec
    day: date
    rows: list[dict[str, Any]]
    benchmark: dict[date, dict[str, float]]
    incident: Incident | None
    festival_note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _festival(market: str, d: date) -> tuple[float, float, float]:
    """(traffic, conversion, paid-traffic extra) multipliers a festival puts on a day."""
    if market == "CN":
        main = date(d.year, 11, 11)
        k = (d - main).days
        if k == 0:
            return 3.5, 2.0, 1.3
        if -21 <= k <= -1:  # pre-sale: traffic up, buyers wait for the day (deposits)
            return 1.25, 0.85, 1.5
        if -31 <= k <= -22:  # warm-up
            return 1.1, 0.95, 1.3
        if 1 <= k <= 7:  # the lull after it, market-wide
            return 0.9, 0.95, 1.0
        return 1.0, 1.0, 1.0
    # US: Black Friday (4th Thursday of November + 1), Cyber Monday 3 days later
    nov1 = date(d.year, 11, 1)
    bf = nov1 + timedelta(days=(3 - nov1.weekday()) % 7 + 21 + 1)
    k = (d - bf).days
    if k == 0:
        return 3.0, 1.8, 1.3
    if k in (1, 2):
        return 1.8, 1.4, 1.3
    if k == 3:  # Cyber Monday
        return 2.4, 1.6, 1.3
    if -14 <= k <= -1:  # early deals
        return 1.15 + 0.02 * (14 + k), 0.95, 1.4
    if 4 <= k <= 10:
        return 0.9, 0.95, 1.0
    return 1.0, 1.0, 1.0


def _t(rng: np.random.Generator, scale: float, df: int = 4) -> float:
    # a Student t scaled to `scale` standard deviations: heavy tails
    return float(rng.standard_t(df) * scale / math.sqrt(df / (df - 2)))


def generate(
    spec: StoreSpec,
    day: date,
    *,
    days: int = 60,
    incident: Incident | None = None,
    seed: int = 0,
) -> Generated:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    bench: dict[date, dict[str, float]] = defaultdict(dict)
    dsr = 4.8 + rng.normal(0, 0.03)
    base_cvr_mkt = 0.02
    start = day - timedelta(days=days - 1)
    for i in range(days):
        d = start + timedelta(days=i)
        last = d == day
        fest_t, fest_c, fest_p = _festival(spec.market, d)
        demand = WEEKLY[d.weekday()] * fest_t * math.exp(_t(rng, 0.04))
        conv_day = fest_c * math.exp(_t(rng, 0.03))
        mkt_cvr_mult = conv_day * math.exp(rng.normal(0, 0.01))
        if last and incident and incident.kind == "cvr_below_market":
            mkt_cvr_mult *= 1 + incident.magnitude  # the market's conversion rose this much
        # the market: the same rhythm and demand, aggregated over many stores (little noise)
        bench[d]["cvr"] = base_cvr_mkt * mkt_cvr_mult
        if spec.market_posts_traffic:
            bench[d]["visitors"] = 1e6 * demand * math.exp(rng.normal(0, 0.01))
            bench[d]["ctr"] = 0.04 * math.exp(rng.normal(0, 0.01))
        gmv_total = 0.0
        for ch in spec.channels:
            paid = ch.name.startswith("paid_")
            traffic = demand * (fest_p if paid else 1.0) * math.exp(_t(rng, 0.05))
            ctr = ch.ctr * math.exp(_t(rng, 0.03))
            cvr = ch.cvr * conv_day * math.exp(_t(rng, 0.04))
            if last and incident:
                traffic, ctr, cvr = _inject(incident, ch.name, traffic, ctr, cvr)
            if last and incident and incident.kind == "cvr_below_market":
                # the store's conversion rose too, but less than the market's
                cvr *= 1 + incident.magnitude * 0.35
            for dev, ds in DEVICES:
                want_visitors = spec.visitors * ch.share * ds * traffic
                impressions = int(rng.poisson(want_visitors / (ch.ctr * 0.92)))
                clicks = int(rng.binomial(impressions, min(ctr, 1.0)))
                visitors = int(rng.binomial(clicks, 0.92))
                # shoppers who ask customer service first: 35% of them buy, and they are
                # 28% of the buyers
                inquiries = int(rng.poisson(visitors * cvr * 0.8))
                icvr = 0.35
                if last and incident and incident.kind == "inquiry_cvr_drop":
                    icvr *= 1 + incident.magnitude
                inquiry_buyers = int(rng.binomial(inquiries, icvr))
                other = int(rng.poisson(visitors * cvr * 0.72))
                buyers = other + inquiry_buyers
                orders = buyers + int(rng.poisson(buyers * 0.05))
                aov = spec.aov * math.exp(rng.normal(0, 0.5 / math.sqrt(max(buyers, 1))))
                gmv = round(buyers * aov, 2)
                gmv_total += gmv
                dims = {"channel": ch.name, "device": dev}
                for metric, value in (
                    ("impressions", impressions),
                    ("clicks", clicks),
                    ("visitors", visitors),
                    ("buyers", buyers),
                    ("orders", orders),
                    ("gmv", gmv),
                    ("inquiries", inquiries),
                    ("inquiry_buyers", inquiry_buyers),
                ):
                    rows.append(
                        {"date": d, "metric": metric, "value": float(value), "dimensions": dims}
                    )
                if paid:
                    spend = round(visitors * 0.6 * math.exp(rng.normal(0, 0.05)), 2)
                    rows.append(
                        {"date": d, "metric": "ad_spend", "value": spend, "dimensions": dims}
                    )
        # a store-level GMV row (the platform's own total) beside the leaves
        rows.append({"date": d, "metric": "gmv", "value": round(gmv_total, 2), "dimensions": {}})
        # copy_id slices: a banner's counts, no part of the store's totals
        for copy in ("banner-a", "banner-b"):
            imp = int(rng.poisson(spec.visitors * 2))
            rows.append(
                {
                    "date": d,
                    "metric": "impressions",
                    "value": float(imp),
                    "dimensions": {"copy_id": copy},
                }
            )
            rows.append(
                {
                    "date": d,
                    "metric": "clicks",
                    "value": float(rng.binomial(imp, 0.03)),
                    "dimensions": {"copy_id": copy},
                }
            )
        dsr_l = dsr + rng.normal(0, 0.015)
        if last and incident and incident.kind == "dsr_logistics_drop":
            dsr_l += incident.magnitude
        rows.append(
            {"date": d, "metric": "dsr_logistics", "value": round(dsr_l, 3), "dimensions": {}}
        )
        rows.append(
            {
                "date": d,
                "metric": "dsr_service",
                "value": round(dsr + rng.normal(0, 0.015), 3),
                "dimensions": {},
            }
        )
    return Generated(spec, day, rows, dict(bench), incident)


def _inject(
    inc: Incident, ch: str, traffic: float, ctr: float, cvr: float
) -> tuple[float, float, float]:
    if inc.channel and inc.channel != ch:
        return traffic, ctr, cvr
    m = 1 + inc.magnitude
    if inc.kind in ("free_search_traffic_drop", "paid_traffic_collapse"):
        return traffic * m, ctr, cvr
    if inc.kind == "main_image_ctr_drop":
        # the same impressions, fewer clicks: traffic falls with the click-through
        return traffic, ctr * m, cvr
    if inc.kind == "search_cvr_drop":
        return traffic, ctr, cvr * m
    return traffic, ctr, cvr


def incident(kind: str, magnitude: float) -> Incident:
    code, owner, channel = INCIDENTS[kind]
    return Incident(kind, code, owner, channel, magnitude)


def store_day(g: Generated, *, old: bool = False, rules: Any = None) -> StoreDay:
    """The engine's input as the service builds it (context from the calendar); old=True: the
    explicit same_weekday_last_week baseline (the default before issue 15)."""
    start = g.day - timedelta(days=130)
    ctx = context_for(g.spec.market, start, g.day, day=g.day)
    extra: dict[str, Any] = {} if rules is None else {"rules": rules}
    return StoreDay(
        day=g.day,
        rows=g.rows,
        currency=g.spec.currency,
        benchmark=g.benchmark,
        baseline="same_weekday_last_week" if old else None,
        phases=ctx.phases,
        context_days=frozenset(ctx.days),
        shaped_days=frozenset(ctx.shaped),
        platform=g.spec.platform,
        **extra,
    )


def diagnose(g: Generated, *, old: bool = False, rules: Any = None) -> Report:
    return diagnose_store_day(store_day(g, old=old, rules=rules))


def spec(kind: str, i: int = 0, **over: Any) -> StoreSpec:
    """A Taobao store in CN or a Shopify store in the US."""
    if kind == "taobao":
        base = StoreSpec(f"tb-{i}", "taobao", "CN", "CNY", 40_000, 160.0, TAOBAO)
    else:
        base = StoreSpec(f"sh-{i}", "shopify", "US", "USD", 25_000, 70.0, SHOPIFY)
    return StoreSpec(**{**base.__dict__, **over})


def matches(rep: Report, inc: Incident) -> bool:
    """The incident's finding is raised (medium or worse) with its code, owner and channel."""
    return any(
        f.code == inc.code
        and f.owner == inc.owner
        and f.severity != "low"
        and f.dimensions.get("channel", "") == inc.channel
        for f in rep.findings
    )


def severe(rep: Report) -> list[Any]:
    return [f for f in rep.findings if f.severity in ("high", "critical")]


def acting(rep: Report) -> list[Any]:
    return [f for f in rep.findings if f.severity != "low"]


def summary_of(rep: Report) -> Mapping[str, str]:
    return rep.summaries
