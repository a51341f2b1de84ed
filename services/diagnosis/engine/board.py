"""The store's board for a day: the picture the findings come from, as an operator reads it.

The day's KPIs for the store, each channel, and free / paid traffic (each figure with its
baseline, its change, the market's change and the change net of the market), the market itself
(only the metrics it posted or whose parts it posted), and each competitor beside the store
(GMV, visitors, price as the average order value, and their changes). All money is in the
store's currency: market and competitor rows are figures of the store's own market. Totals come
from shared/grains.py exactly as the report's do (the same `_aggregate`), so the board and the
report never show two numbers for one thing.
"""

from __future__ import annotations

from typing import Any

from services.diagnosis.engine.baselines import baseline_from
from services.diagnosis.engine.diagnose import (
    RATIOS,
    StoreDay,
    _base,
    _metric_series,
    _with_ratios,
)
from services.diagnosis.engine.errors import InputError
from services.diagnosis.engine.market import change, relative_change

SCOPE_KPIS = (
    "gmv",
    "visitors",
    "buyers",
    "cvr",
    "aov",
    "impressions",
    "clicks",
    "ctr",
    "ad_spend",
    "roas",
)
COMPETITOR_KPIS = ("gmv", "visitors", "buyers", "aov", "cvr")


def _r(v: float | None, digits: int = 12) -> float | None:
    return None if v is None else round(float(v), digits)


def _figure(
    value: float | None,
    baseline: float | None,
    market_change: float | None = None,
) -> dict[str, float | None]:
    c = change(value, baseline)
    return {
        "value": _r(value),
        "baseline": _r(baseline),
        "change": _r(c),
        "market_change": _r(market_change),
        "relative_change": _r(relative_change(c, market_change)),
    }


def build_board(sd: StoreDay) -> dict[str, Any]:
    """The board of sd.day (JSON-ready)."""
    if not len(sd.series):
        raise InputError("no metric rows")
    day = sd.day
    totals = sd.totals  # made once for the report and the board
    reg, by_scope, scores = totals.grains.reg, totals.by_scope, totals.scores
    # the same days as the report's baseline (festival-aware by default), for every figure
    choice = sd.choose_baseline({d for d, v in by_scope.get("all", {}).items() if v})
    wanted = list(choice.days)
    bench = {d: dict(v) for d, v in sd.benchmark.items()}
    today_market = bench.get(day, {})
    market: dict[str, dict[str, float | None]] = {}
    for m in SCOPE_KPIS:
        mv = today_market.get(m)
        if mv is None:
            continue
        # the market's posted figures (its ratios too, as the report reads them)
        mb = baseline_from("trailing_7d", wanted, _metric_series(bench, m)).value
        market[m] = _figure(mv, mb)
    market_change = {m: f["change"] for m, f in market.items()}

    def scope_figures(scope: str) -> dict[str, dict[str, float | None]]:
        series = by_scope.get(scope, {})
        cur = _with_ratios(series.get(day, {}))
        out = {}
        for m in SCOPE_KPIS:
            if m not in cur:
                continue
            out[m] = _figure(cur[m], _base(series, wanted, m), market_change.get(m))
        return out

    channels = sorted(s for s in by_scope if s not in ("all", "free", "paid"))
    scopes: list[dict[str, Any]] = [{"scope": "all", "kpis": scope_figures("all")}]
    for ch in channels:
        scopes.append(
            {"scope": ch, "traffic_type": reg.traffic_type(ch), "kpis": scope_figures(ch)}
        )
    for kind in ("free", "paid"):
        if kind in by_scope:
            scopes.append({"scope": kind, "kpis": scope_figures(kind)})
    gmv_today = _with_ratios(by_scope.get("all", {}).get(day, {})).get("gmv")
    competitors = []
    for cid in sorted(sd.competitors):
        ser = {d: _with_ratios(v) for d, v in sd.competitors[cid].items()}
        cur = ser.get(day, {})
        kpis = {
            m: _figure(cur[m], _base(ser, wanted, m), market_change.get(m))
            for m in COMPETITOR_KPIS
            if m in cur
        }
        if not kpis:
            continue
        share = None
        if gmv_today is not None and cur.get("gmv"):
            share = _r(gmv_today / cur["gmv"])
        competitors.append({"competitor_id": cid, "kpis": kpis, "store_gmv_vs_theirs": share})
    return {
        "date": day.isoformat(),
        "currency": sd.currency,
        "baseline": sd.baseline or "comparable_weekdays",
        "baseline_days": [d.isoformat() for d in wanted],
        "baseline_method": choice.method,
        "baseline_note": choice.note,
        "scopes": scopes,
        "market": {"covered": sorted(market), "kpis": market},
        "competitors": competitors,
        "scores": {m: _r(v) for m, v in scores.get(day, {}).items()},
        "ratios": {m: f"{num}/{den}" for m, (num, den) in RATIOS.items()},
    }
