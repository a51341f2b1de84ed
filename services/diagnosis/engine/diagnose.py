"""diagnose_store_day: the operator's first hour as one pure function.

Completeness first (an incomplete day is a data problem for operations and nothing else is
raised); then each KPI against its baseline and the market; the GMV decomposition; the root
cause over the leaves; the facts the finding rules read; the findings; the summaries.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from typing import Any

import numpy as np

from services.diagnosis.engine.anomaly import score_series
from services.diagnosis.engine.baselines import (
    PhaseWindow,
    baseline_dates,
    baseline_from,
    compute_baseline,
)
from services.diagnosis.engine.completeness import Completeness, assess_completeness
from services.diagnosis.engine.decomposition import (
    FUNNEL_FACTORS,
    Decomposition,
    MixRate,
    decompose_gmv,
    decompose_product,
    funnel_factors,
    mix_rate,
)
from services.diagnosis.engine.errors import InputError
from services.diagnosis.engine.findings import RULES, Finding, Rule, evaluate_rules
from services.diagnosis.engine.market import compare, kpi
from services.diagnosis.engine.rootcause import RootCause, leaves_from_columns, localize
from services.diagnosis.engine.summary import LOCALES, SummaryFacts, SummaryLocale, summarize
from shared.events.common import Baseline
from shared.events.diagnosis import KpiV1

PAID_CHANNELS = frozenset({"paid_search", "paid_display"})
# derived metric -> (numerator, denominator), as in DESIGN.md
RATIOS: dict[str, tuple[str, str]] = {
    "ctr": ("clicks", "impressions"),
    "cvr": ("buyers", "visitors"),
    "aov": ("gmv", "buyers"),
    "inquiry_cvr": ("inquiry_buyers", "inquiries"),
    "refund_rate": ("refunds", "gmv"),
    "add_to_cart_rate": ("add_to_cart", "visitors"),
}
KPI_METRICS = ("gmv", "visitors", "buyers", "cvr", "aov", "ctr", "inquiry_cvr", "refund_rate")
# The store's move (net of the market) below which no root cause is looked for.
MIN_MOVE_FOR_CAUSES = 0.03
SCOPE_METRICS = (
    "visitors",
    "impressions",
    "clicks",
    "buyers",
    "gmv",
    "inquiries",
    "ctr",
    "cvr",
    "aov",
    "inquiry_cvr",
)
SCORE_METRICS = ("dsr_description", "dsr_service", "dsr_logistics")

Series = dict[date, dict[str, float]]  # date -> metric -> value


@dataclass(frozen=True)
class StoreDay:
    """Everything the engine needs about one store-day; the caller reads it from its tables."""

    day: date
    rows: Sequence[Mapping[str, Any]]  # {date, metric, value, dimensions}, the day and before
    currency: str = "USD"
    benchmark: Mapping[date, Mapping[str, float]] = field(default_factory=dict)
    competitors: Mapping[str, Mapping[date, Mapping[str, float]]] = field(default_factory=dict)
    baseline: Baseline = "same_weekday_last_week"
    phases: Sequence[PhaseWindow] = ()
    context_days: Collection[date] = ()  # campaign windows and holidays: expected, not incidents

    rules: Sequence[Rule] = RULES  # the finding rules; a deployment may pass its own table

    @cached_property
    def context(self) -> frozenset[date]:
        return frozenset(self.context_days)


@dataclass(frozen=True)
class Report:
    day: date
    baseline: Baseline
    data_complete: bool
    completeness: Completeness
    kpis: list[KpiV1]
    decomposition: Decomposition | None  # gmv = visitors x cvr x aov
    funnel: Decomposition | None  # gmv = impressions x ctr x visit_rate x cvr x aov
    mix: MixRate | None  # store cvr across channels: mix versus rate
    root_causes: list[tuple[str, RootCause]]  # (metric, cause)
    rca_verdicts: dict[str, str]
    facts: dict[str, float | None]
    findings: list[Finding]
    explained_by_market: bool
    summaries: dict[SummaryLocale, str]
    context: bool  # the day is inside a campaign window or a holiday


def _aggregate(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Series], Series]:
    """scope -> date -> metric -> sum; store-level (dimensions {}) rows go to the scores.

    Rows are summed per (channel, date, metric) first, then rolled up into the scopes: one
    dictionary update per row rather than three."""
    per: dict[tuple[str, date, str], float] = defaultdict(float)
    scores: Series = defaultdict(dict)
    for r in rows:
        dims = r.get("dimensions")
        if not dims:
            scores[r["date"]][r["metric"]] = float(r["value"])
            continue
        per[(dims.get("channel", "other"), r["date"], r["metric"])] += float(r["value"])
    by_scope: dict[str, Series] = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    for (ch, d, m), v in per.items():
        for scope in ("all", ch, "paid" if ch in PAID_CHANNELS else "free"):
            by_scope[scope][d][m] += v
    return by_scope, scores


def _with_ratios(day: Mapping[str, float]) -> dict[str, float]:
    out = dict(day)
    for name, (num, den) in RATIOS.items():
        if day.get(den):
            out[name] = day.get(num, 0.0) / day[den]
    return out


def _metric_series(
    series: Mapping[date, Mapping[str, float]], metric: str
) -> dict[date, float | None]:
    return {d: v[metric] for d, v in series.items() if metric in v}


def _base(
    series: Mapping[date, Mapping[str, float]], day: date, sd: StoreDay, metric: str
) -> float | None:
    if metric in RATIOS:
        num, den = RATIOS[metric]
        n = compute_baseline(
            _metric_series(series, num), day, sd.baseline, phases=sd.phases, exclude=sd.context
        ).value
        d = compute_baseline(
            _metric_series(series, den), day, sd.baseline, phases=sd.phases, exclude=sd.context
        ).value
        return n / d if n is not None and d else None
    return compute_baseline(
        _metric_series(series, metric), day, sd.baseline, phases=sd.phases, exclude=sd.context
    ).value


def _market_base(
    bench: Mapping[date, Mapping[str, float]], day: date, sd: StoreDay, metric: str
) -> float | None:
    return compute_baseline(
        _metric_series(bench, metric), day, sd.baseline, phases=sd.phases, exclude=sd.context
    ).value


def diagnose_store_day(sd: StoreDay) -> Report:
    if not sd.rows:
        raise InputError("no metric rows")
    day = sd.day
    keys: dict[date, set[Any]] = defaultdict(set)
    dims_keys = _DimsKeys()
    row_dims = dims_keys.of_rows(sd.rows)
    for r, dk in zip(sd.rows, row_dims, strict=True):
        keys[r["date"]].add((r["metric"], dk))
    history = [day - timedelta(days=i) for i in range(1, 29)]
    comp = assess_completeness(day, keys, history=history)
    by_scope, scores = _aggregate(sd.rows)
    all_ = by_scope.get("all", {})
    today = _with_ratios(all_.get(day, {}))
    bench = {d: dict(v) for d, v in sd.benchmark.items()}
    context = day in set(sd.context_days)

    facts: dict[str, float | None] = {}
    kpis: list[KpiV1] = []
    explained_by_market = False
    ctx_flags = None
    dates = sorted(d for d in all_ if d <= day)
    if sd.context_days:
        cd = set(sd.context_days)
        ctx_flags = [d in cd for d in dates]
    for metric in KPI_METRICS:
        if metric not in today:
            continue
        b = _base(all_, day, sd, metric)
        mv = bench.get(day, {}).get(metric)
        mb = _market_base(bench, day, sd, metric) if mv is not None else None
        vals: list[float | None] = []
        for d in dates:
            dv = _with_ratios(all_[d])
            vals.append(dv.get(metric))
        pts = score_series(vals, period=7, expected_windows=ctx_flags) if len(vals) > 1 else []
        last = pts[-1] if pts else None
        kpis.append(
            kpi(
                metric,
                today[metric],
                b,
                mv,
                mb,
                anomaly_score=last.score if last else None,
                is_anomaly=bool(last and last.label),
            )
        )
        cmp_ = compare(today[metric], b, mv, mb)
        facts[f"chg.{metric}.all"] = cmp_.change
        facts[f"rel.{metric}.all"] = (
            cmp_.relative_change if cmp_.relative_change is not None else cmp_.change
        )
        if cmp_.market_change is not None:
            facts[f"mkt.{metric}"] = cmp_.market_change
        if metric == "cvr" and cmp_.attribution == "market":
            explained_by_market = True
    channels = sorted(s for s in by_scope if s not in ("all", "paid", "free"))
    for scope in [*channels, "paid", "free", "all"]:
        ser = by_scope[scope]
        cur = _with_ratios(ser.get(day, {}))
        facts[f"paid.{scope}"] = 1.0 if scope in PAID_CHANNELS or scope == "paid" else 0.0
        for metric in SCOPE_METRICS:
            if metric not in cur:
                continue
            base = _base(ser, day, sd, metric)
            c = compare(cur[metric], base).change
            mk = facts.get(f"mkt.{metric}")
            rel = None if c is None else ((1 + c) / (1 + mk) - 1 if mk is not None else c)
            facts.setdefault(f"chg.{metric}.{scope}", c)
            facts.setdefault(f"rel.{metric}.{scope}", rel)
            if metric == "gmv" and base is not None:
                facts[f"delta.gmv.{scope}"] = round(cur[metric] - base, 2)
            if metric in ("ctr", "cvr", "inquiry_cvr") and base is not None:
                # The move in units (clicks, buyers) against what the baseline rate (moved with
                # the market) would have given on today's volume, over its Poisson spread: a
                # small leaf whose rate jumps by one buyer is not a finding.
                num, den = RATIOS[metric]
                exp = cur.get(den, 0.0) * base * (1 + (mk or 0.0))
                facts[f"z.{metric}.{scope}"] = (
                    (cur.get(num, 0.0) - exp) / max(1.0, exp) ** 0.5 if exp > 0 else None
                )
    for metric in SCORE_METRICS:
        v = scores.get(day, {}).get(metric)
        b = compute_baseline(
            _metric_series(scores, metric), day, sd.baseline, exclude=sd.context
        ).value
        facts[f"chg.{metric}.all"] = compare(v, b).change
        if v is not None:
            kpis.append(kpi(metric, v, b))
    # mix versus rate of the store's conversion across channels
    try:
        seg_before = {
            ch: (
                _base(by_scope[ch], day, sd, "buyers") or 0.0,
                _base(by_scope[ch], day, sd, "visitors") or 0.0,
            )
            for ch in channels
        }
        seg_after = {
            ch: (
                by_scope[ch].get(day, {}).get("buyers", 0.0),
                by_scope[ch].get(day, {}).get("visitors", 0.0),
            )
            for ch in channels
        }
        split = mix_rate(seg_before, seg_after)
        mr: MixRate | None = split
        rel_cvr = facts.get("rel.cvr.all")
        facts["mix.cvr"] = split.mix_share if rel_cvr is not None and rel_cvr < 0 else 0.0
    except InputError:
        facts["mix.cvr"] = None
        mr = None
    # competitors
    for metric, agg in (("aov", min), ("visitors", max)):
        changes = []
        for series in sd.competitors.values():
            ser = {d: _with_ratios(v) for d, v in series.items()}
            cv = ser.get(day, {}).get(metric)
            cb = _base(ser, day, sd, metric)
            c = compare(cv, cb).change
            if c is not None:
                changes.append(c)
        facts[f"comp.{metric}.max" if agg is max else f"comp.{metric}.min"] = (
            agg(changes) if changes else None
        )
    facts["data.missing_share"] = (
        comp.missing / comp.expected if comp.expected else (0.0 if comp.complete else 1.0)
    )

    # decomposition and root cause
    decomposition = funnel = None
    base_names = ("impressions", "clicks", "visitors", "buyers", "gmv")
    before_all = {m: _base(all_, day, sd, m) for m in base_names}
    if all(before_all[m] for m in ("visitors", "buyers", "gmv")) and all(
        today.get(m) for m in ("visitors", "buyers", "gmv")
    ):
        decomposition = decompose_gmv({k: float(v or 0) for k, v in before_all.items()}, today)
    if all(before_all.values()) and all(today.get(m) for m in base_names):
        base_vals = {k: float(v or 0) for k, v in before_all.items()}
        funnel = decompose_product(
            funnel_factors(*(base_vals[m] for m in base_names)),
            funnel_factors(*(today[m] for m in base_names)),
            FUNNEL_FACTORS,
        )
    root_causes: list[tuple[str, RootCause]] = []
    verdicts: dict[str, str] = {}
    if comp.complete:
        table: _LeafTable | None = None
        for metric, ratio in (("gmv", False), ("cvr", True)):
            moved = facts.get(f"rel.{metric}.all")
            if moved is None or abs(moved) < MIN_MOVE_FOR_CAUSES:
                verdicts[metric] = "no_change"
                continue
            if table is None:
                table = _leaf_table(sd, {"gmv", *RATIOS["cvr"]}, dims_keys, row_dims)
            res = _leaf_rca(sd, metric, ratio, table)
            if res is not None:
                verdicts[metric] = res[0]
                # a report names the causes of the store's move, not a small leaf going the
                # other way
                root_causes.extend((metric, c) for c in res[1] if c.share_of_change >= 0.1)

    if not comp.complete:
        scope_text = "".join(
            f" (no rows for {k}={v})" for s in comp.missing_scopes for k, v in s.items()
        )
        findings = evaluate_rules(
            facts,
            rules=[r for r in sd.rules if r.code == "data_incomplete"],
            text={
                "date": day.isoformat(),
                "missing": str(comp.missing),
                "expected": str(comp.expected),
                "scope_text": scope_text,
            },
        )
        if comp.missing_scopes and findings:
            f0 = findings[0]
            findings = [Finding(**{**f0.__dict__, "dimensions": dict(comp.missing_scopes[0])})]
    else:
        findings = evaluate_rules(
            facts, channels=channels, rules=[r for r in sd.rules if r.code != "data_incomplete"]
        )
        if context:
            # inside a campaign window or a holiday the moves are expected: keep them as context
            findings = [
                f for f in findings if f.code.startswith("dsr") or f.code == "refund_rate_up"
            ]

    top = None
    if decomposition is not None and decomposition.change:
        top = max(decomposition.contributions, key=lambda k: abs(decomposition.contributions[k]))
    top_k = next((k for k in kpis if k.metric == top), None) if top else None
    gmv_k = next((k for k in kpis if k.metric == "gmv"), None)
    sf = SummaryFacts(
        day=day,
        currency=sd.currency,
        gmv=gmv_k.value if gmv_k else None,
        gmv_change=gmv_k.change if gmv_k else None,
        top_factor=top,
        top_factor_change=top_k.change if top_k else None,
        market_change=top_k.market_change if top_k else None,
        relative_change=top_k.relative_change if top_k else None,
        findings=[
            (f.metric, f.owner, f.dimensions.get("channel", ""))
            for f in findings
            if f.severity != "low"
        ],
        data_complete=comp.complete,
        explained_by_market=explained_by_market,
    )
    summaries = {loc: summarize(sf, loc) for loc in LOCALES}
    return Report(
        day,
        sd.baseline,
        comp.complete,
        comp,
        kpis,
        decomposition,
        funnel,
        mr,
        root_causes,
        verdicts,
        facts,
        findings,
        explained_by_market,
        summaries,
        context,
    )


class _DimsKeys:
    """Canonical keys (sorted items) of dimension dicts, computed once per dict object: rows of
    one leaf usually share their dimensions dict (a loader parses each leaf once), so a store-day
    of 20,000 leaves sorts 20,000 dicts rather than one per row. The cache keeps a reference to
    each dict, so an id is never reused for another dict while the cache lives."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[Mapping[str, str], tuple[tuple[str, str], ...]]] = {}
        self.names: set[str] = set()  # every dimension name seen

    def __call__(self, dims: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        hit = self._cache.get(id(dims))
        if hit is not None and hit[0] is dims:
            return hit[1]
        key = tuple(sorted(dims.items()))
        self._cache[id(dims)] = (dims, key)
        self.names.update(dims)
        return key

    def of_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[tuple[str, str], ...]]:
        """The key of every row's dimensions (() for the store total), in one pass."""
        cache = self._cache
        out: list[tuple[tuple[str, str], ...]] = []
        append = out.append
        for r in rows:
            dims = r.get("dimensions")
            if not dims:
                append(())
                continue
            hit = cache.get(id(dims))
            if hit is not None and hit[0] is dims:
                append(hit[1])
            else:
                append(self(dims))
        return out


@dataclass
class _LeafTable:
    """The leaves of a store-day: their dimension values (in `names` order) and their values
    on the day and the baseline's days, read once for every root-cause analysis of the day."""

    names: list[str]
    wanted: list[date]
    keys: list[tuple[str, ...]]
    values: list[dict[tuple[date, str], float]]


def _leaf_table(
    sd: StoreDay,
    metrics: Collection[str],
    dims_keys: _DimsKeys | None = None,
    row_dims: Sequence[tuple[tuple[str, str], ...]] | None = None,
) -> _LeafTable:
    if dims_keys is None or row_dims is None:
        dims_keys = _DimsKeys()
        row_dims = dims_keys.of_rows(sd.rows)
    # The baseline's days are the same for every leaf: computed once.
    wanted = baseline_dates(sd.day, sd.baseline, phases=sd.phases, exclude=sd.context)
    need = {*wanted, sd.day}
    leaf_vals: dict[tuple[tuple[str, str], ...], dict[tuple[date, str], float]] = {}
    for r, key in zip(sd.rows, row_dims, strict=True):
        if not key:
            continue
        lv = leaf_vals.get(key)
        if lv is None:
            lv = leaf_vals[key] = {}
        d, m = r["date"], r["metric"]
        if d in need and m in metrics:
            lv[(d, m)] = float(r["value"])
    names = sorted(dims_keys.names)
    keys = []
    for key in leaf_vals:
        items = dict(key)
        keys.append(tuple(str(items.get(n, "")) for n in names))
    return _LeafTable(names, wanted, keys, list(leaf_vals.values()))


def _leaf_rca(
    sd: StoreDay, metric: str, ratio: bool, table: _LeafTable | None = None
) -> tuple[str, list[RootCause]] | None:
    """RCA over the day's leaves against the baseline's leaves (same baseline kind)."""
    if table is None:
        table = _leaf_table(sd, RATIOS[metric] if ratio else (metric,))
    wanted = table.wanted
    single = wanted[0] if len(wanted) == 1 else None

    def base(lv: dict[tuple[date, str], float], m: str) -> float | None:
        if single is not None:
            return lv.get((single, m))
        series = {w: lv[(w, m)] for w in wanted if (w, m) in lv}
        return baseline_from(sd.baseline, wanted, series).value

    keys: list[tuple[str, ...]] = []
    cols: list[list[float]] = [[] for _ in range(4 if ratio else 2)]
    for rk, lv in zip(table.keys, table.values, strict=True):
        vals: tuple[float, ...]
        if ratio:
            num, den = RATIOS[metric]
            if (sd.day, den) not in lv:
                continue
            bn, bd = base(lv, num), base(lv, den)
            if bn is None or bd is None:
                continue
            vals = (lv.get((sd.day, num), 0.0), lv[(sd.day, den)], bn, bd)
        else:
            b = base(lv, metric)
            if b is None:
                continue
            vals = (lv.get((sd.day, metric), 0.0), b)
        keys.append(rk)
        for c, v in zip(cols, vals, strict=True):
            c.append(v)
    names = table.names
    if not keys or not names:
        return None
    if len(set(keys)) != len(keys):
        dup = next(k for k, c in Counter(keys).items() if c > 1)
        raise InputError(f"duplicate leaf {dict(zip(names, dup, strict=True))}")
    nums = np.array(cols, dtype=np.float64)
    if not np.isfinite(nums).all():
        raise InputError("a leaf value is not a finite number")
    res = localize(leaves_from_columns(names, keys, nums, ratio=ratio))
    return res.verdict, res.causes
