"""diagnose_store_day: the operator's first hour as one pure function.

Completeness first (an incomplete day is a data problem for operations and nothing else is
raised); then each KPI against its baseline and the market; the GMV decomposition; the root
cause over the leaves; the facts the finding rules read; the findings; the summaries.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from services.diagnosis.engine.anomaly import AnomalyConfig, NoiseKind, score_series
from services.diagnosis.engine.baselines import (
    MIN_PRESENT,
    BaselineChoice,
    PhaseWindow,
    baseline_dates,
    baseline_from,
    comparable_days,
)
from services.diagnosis.engine.columns import Frame, SeriesColumns, codes_of, distinct
from services.diagnosis.engine.completeness import Completeness, assess_completeness_codes
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
from services.diagnosis.engine.rootcause import RootCause, leaves_from_codes, localize
from services.diagnosis.engine.summary import (
    LOCALES,
    SummaryFacts,
    SummaryFinding,
    SummaryLocale,
    summarize,
)
from shared.events.common import DERIVED, Baseline
from shared.events.common import SCORE_METRICS as _SCORES
from shared.events.diagnosis import KpiV1
from shared.grains import Grain, Registry, grain_of, registry

PAID_CHANNELS = registry().paid_channels
RATIOS = DERIVED  # derived metric -> (numerator, denominator): shared/events/common.py
KPI_METRICS = ("gmv", "visitors", "buyers", "cvr", "aov", "ctr", "inquiry_cvr", "refund_rate")
# A rate's day-to-day wobble beyond Poisson, as a share of it (the z facts' overdispersion).
RATE_WOBBLE = 0.02
# 1: the baseline's own error (a median of a few days) widens the spread; 0: ignored.
BASELINE_ERROR = 1.0
# The store's move (net of the market) below which no root cause is looked for.
MIN_MOVE_FOR_CAUSES = 0.03
# The daily KPI flag (docs/diagnosis.md, "Calibrated KPI flags"): each KPI's scale is floored at
# the sampling error of its own volume, a move under 3% of the forecast is never flagged, and
# with an honest scale the label is |z| > 3 (bench/bench_diagnosis_calibration.py).
KPI_ANOMALY = AnomalyConfig(k=3.0, min_effect=0.03)
# The flag before issue 14, for the calibration bench's baseline: the robust scale alone.
UNCALIBRATED_ANOMALY = AnomalyConfig(calibrated=False)


def _kpi_noise(metric: str, day: Mapping[str, float]) -> tuple[NoiseKind, float | None]:
    """What kind of number a KPI is and the volume one day of it rests on."""
    if metric in ("visitors", "buyers"):
        return "count", None
    if metric == "gmv":
        return "total", day.get("buyers")
    if metric == "aov":
        return "mean", day.get("buyers")
    if metric == "refund_rate":
        # refunds / gmv: the amounts of the refunded share of the day's orders
        return "share", day.get("buyers")
    if metric in RATIOS:
        return "proportion", day.get(RATIOS[metric][1])
    return "none", None


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
assert set(SCORE_METRICS) == _SCORES

Series = dict[date, dict[str, float]]  # date -> metric -> value


@dataclass(frozen=True)
class StoreDay:
    """Everything the engine needs about one store-day; the caller reads it from its tables.

    The metric rows (the day and the days before it) come as `rows`, mappings {date, metric,
    value, dimensions}, or as `columns` (the same rows as SeriesColumns: the fast path of a
    loader); the report is the same either way."""

    day: date
    rows: Sequence[Mapping[str, Any]] = ()
    currency: str = "USD"
    benchmark: Mapping[date, Mapping[str, float]] = field(default_factory=dict)
    competitors: Mapping[str, Mapping[date, Mapping[str, float]]] = field(default_factory=dict)
    # None: the default, comparable days (baselines.comparable_days); a kind: that kind, as asked
    baseline: Baseline | None = None
    phases: Sequence[PhaseWindow] = ()
    context_days: Collection[date] = ()  # campaign windows and holidays: expected, not incidents
    anomaly: AnomalyConfig = KPI_ANOMALY  # the KPI flags' detector (calibrated by default)
    # days a festival (warm-up to aftermath) or a campaign shapes: never the default's baseline
    shaped_days: Collection[date] = ()
    platform: str = "generic"  # the store's platform: the summaries' channel names

    rules: Sequence[Rule] = RULES  # the finding rules; a deployment may pass its own table
    columns: SeriesColumns | None = None  # instead of rows
    partition_dimensions: Sequence[str] = ()  # the store's own, beside the registry's

    def __post_init__(self) -> None:
        if self.columns is not None and self.rows:
            raise InputError("metric rows come as rows or as columns, not both")

    @cached_property
    def context(self) -> frozenset[date]:
        return frozenset(self.context_days)

    @property
    def baseline_kind(self) -> Baseline:
        """The contract's name of the baseline: the default is a same-weekday baseline."""
        return self.baseline or "same_weekday_last_week"

    def choose_baseline(self, available: Collection[date] | None = None) -> BaselineChoice:
        """The days the store-day is compared with (the same for every KPI, channel, leaf,
        the market and the competitors) and why."""
        if self.baseline is None:
            return comparable_days(
                self.day,
                shaped=self.shaped_days,
                exclude=self.context,
                phases=self.phases,
                available=available,
            )
        days = baseline_dates(self.day, self.baseline, phases=self.phases, exclude=self.context)
        return BaselineChoice(
            tuple(days), "explicit", note=f"{self.baseline}: {', '.join(map(str, days))}"
        )

    @cached_property
    def series(self) -> SeriesColumns:
        """The metric rows as columns."""
        if self.columns is not None:
            return self.columns
        return SeriesColumns.from_rows(self.rows)

    @cached_property
    def totals(self) -> _Totals:
        """The rows as the engine reads them (frame, grains) and their totals by scope: made
        once for the report and the board (engine/board.py)."""
        frame = Frame.of(self.series)
        gr = _Grains.of(frame, registry().for_store(self.partition_dimensions))
        by_scope, scores = _aggregate(frame, gr)
        return _Totals(frame, gr, by_scope, scores)


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
    baseline_days: tuple[date, ...] = ()  # the days the baseline is made of
    baseline_method: str = "explicit"  # comparable_weekdays, same_phase_last_year, explicit, none
    baseline_note: str = ""  # which days and why, in plain English


@dataclass(frozen=True)
class _Totals:
    frame: Frame
    grains: _Grains
    by_scope: dict[str, Series]
    scores: Series


@dataclass
class _Grains:
    """The grain (sorted dimension keys) of each distinct dimensions of a frame, and which of
    them are the leaves of a root cause (the finest purely partitioning grain)."""

    reg: Registry
    table: list[Grain]
    of_key: npt.NDArray[np.int64]  # grain id per distinct dimensions
    countable: npt.NDArray[np.bool_]  # per grain: the store level or purely partitioning
    leaf: int  # grain id of the leaves, -1 when no partitioning grain exists

    @classmethod
    def of(cls, frame: Frame, reg: Registry) -> _Grains:
        index: dict[Grain, int] = {}
        # the keys in the order a mapping lists them -> its grain's id: sorted once per order
        seen: dict[tuple[str, ...], int] = {}

        def grain_id(dm: Mapping[str, str]) -> int:
            keys = tuple(dm)
            gid = seen.get(keys)
            if gid is None:
                gid = seen[keys] = index.setdefault(grain_of(dm), len(index))
            return gid

        of_key = np.fromiter(map(grain_id, frame.dims), dtype=np.int64, count=len(frame.dims))
        table = list(index)
        countable = np.array([reg.admissible(g, ()) for g in table], dtype=bool)
        finest = reg.finest_partition(table)
        return cls(reg, table, of_key, countable, -1 if finest is None else index[finest])


def _completeness_rows(frame: Frame, gr: _Grains, day: date) -> npt.NDArray[np.int64]:
    """The rows whose keys completeness compares with the history. A slice that stops (a copy
    paused, a product sold out) is no missing data; nor is a coarser grain that did not come
    today when a finer partitioning grain of the same metric did (the total is its sum)."""
    n_m, n_g = len(frame.metrics), len(gr.table)
    gid = gr.of_key[frame.key_id]
    code = frame.metric_id * n_g + gid
    required = np.zeros(n_m * n_g, dtype=bool)
    if day in frame.dates:
        today = frame.date_id == frame.dates.index(day)
        on_day: dict[int, list[Grain]] = defaultdict(list)
        for c in distinct(code[today]).tolist():
            on_day[c // n_g].append(gr.table[c % n_g])
    else:
        on_day = defaultdict(list)
    for c in distinct(code).tolist():
        m, g = divmod(c, n_g)
        grain = gr.table[g]
        if not gr.countable[g]:
            continue
        finer = any(set(grain) < set(other) and gr.reg.admissible(other, ()) for other in on_day[m])
        required[c] = not finer
    return np.flatnonzero(required[code])


def _last_rows(frame: Frame) -> npt.NDArray[np.int64]:
    """Row indices with each (date, metric, dimensions) once, its last occurrence, in row
    order (a repeated row is read as its last occurrence, as a mapping update keeps it)."""
    n_d, n_m = len(frame.dates), len(frame.metrics)
    code = (frame.key_id * n_d + frame.date_id) * n_m + frame.metric_id
    n = len(code)
    _, last_rev = np.unique(code[::-1], return_index=True)
    if len(last_rev) == n:
        return np.arange(n, dtype=np.int64)
    return np.sort(n - 1 - last_rev)


def _aggregate(frame: Frame, gr: _Grains) -> tuple[dict[str, Series], Series]:
    """scope -> date -> metric -> value, and the scores (DSR ratings) of the store.

    Each date-metric is read on the one grain shared/grains.py chooses: "all" on the grain of
    a store total (the store-level row when it was sent, else the coarsest partitioning grain;
    never a slice), each channel (and free / paid) on the coarsest grain that carries channel.
    Counts and amounts are summed, scores averaged."""
    dates, metrics, values = frame.dates, frame.metrics, frame.values
    n_d, n_m, n_g = len(dates), len(metrics), len(gr.table)
    rows = _last_rows(frame)
    gid = gr.of_key[frame.key_id[rows]]
    dm = frame.date_id[rows] * n_m + frame.metric_id[rows]
    present: dict[int, set[Grain]] = defaultdict(set)
    for code in distinct(dm * n_g + gid).tolist():
        present[code // n_g].add(gr.table[code % n_g])
    index = {g: i for i, g in enumerate(gr.table)}
    pick_all = np.full(n_d * n_m, -1, dtype=np.int64)
    pick_ch = np.full(n_d * n_m, -1, dtype=np.int64)
    for code, gs in present.items():
        g = gr.reg.choose(gs)
        if g is not None:
            pick_all[code] = index[g]
        g = gr.reg.choose(gs, ("channel",))
        if g is not None:
            pick_ch[code] = index[g]
    is_score = np.array([m in SCORE_METRICS for m in metrics], dtype=bool)
    by_scope: dict[str, Series] = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    scores: Series = defaultdict(dict)

    def sums(sel: npt.NDArray[np.int64], group: npt.NDArray[np.int64]) -> Any:
        codes = (group * n_d + frame.date_id[sel]) * n_m + frame.metric_id[sel]
        uniq, first, inv = np.unique(codes, return_index=True, return_inverse=True)
        tot = np.bincount(inv.ravel(), weights=values[sel], minlength=len(uniq))
        cnt = np.bincount(inv.ravel(), minlength=len(uniq))
        for j in np.argsort(first, kind="stable").tolist():
            g_d, m = divmod(int(uniq[j]), n_m)
            g, d = divmod(g_d, n_d)
            v = float(tot[j] / cnt[j]) if is_score[m] else float(tot[j])
            yield g, dates[d], metrics[m], v

    sel = rows[gid == pick_all[dm]]
    for _, day, metric, v in sums(sel, np.zeros(len(sel), dtype=np.int64)):
        if metric in SCORE_METRICS:
            scores[day][metric] = v
        else:
            by_scope["all"][day][metric] += v
    _ratio_parts(frame, gr, rows, gid, present, pick_all, by_scope["all"])
    sel = rows[gid == pick_ch[dm]]
    ch_names, ch_codes = codes_of([d.get("channel", "") for d in frame.dims])
    for c, day, metric, v in sums(sel, np.asarray(ch_codes, dtype=np.int64)[frame.key_id[sel]]):
        if metric in SCORE_METRICS:
            continue
        ch = ch_names[c]
        for scope in (ch, gr.reg.traffic_type(ch)):
            by_scope[scope][day][metric] += v
    return by_scope, scores


def _ratio_parts(
    frame: Frame,
    gr: _Grains,
    rows: npt.NDArray[np.int64],
    gid: npt.NDArray[np.int64],
    present: Mapping[int, set[Grain]],
    pick: npt.NDArray[np.int64],
    series: Series,
) -> None:
    """A ratio is a ratio of sums within one grain (shared/grains.py plan): where a day's parts
    of a ratio were totalled on two different grains (visitors from the store-level row, buyers
    summed over channels), the parts are summed again on the coarsest grain both have, under
    part labels ("cvr/num", "cvr/den"); no grain in common: "cvr/none", and no value."""
    n_m = len(frame.metrics)
    code_of = {m: i for i, m in enumerate(frame.metrics)}
    index = {g: i for i, g in enumerate(gr.table)}
    date_of_row = frame.date_id[rows]
    metric_of_row = frame.metric_id[rows]
    for name, (num, den) in RATIOS.items():
        if num not in code_of or den not in code_of:
            continue
        mn, md = code_of[num], code_of[den]
        for d, day in enumerate(frame.dates):
            gn, gd = present.get(d * n_m + mn), present.get(d * n_m + md)
            if not gn or not gd:
                continue
            g = gr.reg.choose(gn & gd)
            if g is None:
                series[day][f"{name}/none"] = 1.0
                continue
            gi = index[g]
            if pick[d * n_m + mn] == gi and pick[d * n_m + md] == gi:
                continue  # the totals are on one grain already
            sel = (gid == gi) & (date_of_row == d)
            vals = frame.values[rows]
            series[day][f"{name}/num"] = float(vals[sel & (metric_of_row == mn)].sum())
            series[day][f"{name}/den"] = float(vals[sel & (metric_of_row == md)].sum())


def _part(day: Mapping[str, float], name: str, which: int) -> float | None:
    """A ratio's numerator (0) or denominator (1) of one day, on the ratio's own grain."""
    if f"{name}/none" in day:
        return None
    label = f"{name}/{'num' if which == 0 else 'den'}"
    if label in day:
        return day[label]
    return day.get(RATIOS[name][which])


def _with_ratios(day: Mapping[str, float]) -> dict[str, float]:
    out = {k: v for k, v in day.items() if "/" not in k}
    for name in RATIOS:
        den = _part(day, name, 1)
        if den:
            out[name] = (_part(day, name, 0) or 0.0) / den
    return out


def _metric_series(
    series: Mapping[date, Mapping[str, float]], metric: str
) -> dict[date, float | None]:
    return {d: v[metric] for d, v in series.items() if metric in v}


def _base(
    series: Mapping[date, Mapping[str, float]], wanted: Sequence[date], metric: str
) -> float | None:
    """The baseline of a metric over the chosen days; a ratio is the ratio of its parts'
    baselines (each a median over the same days)."""
    if metric in RATIOS:
        nums = {d: _part(v, metric, 0) for d, v in series.items()}
        dens = {d: _part(v, metric, 1) for d, v in series.items()}
        n = baseline_from("trailing_7d", wanted, nums).value
        d = baseline_from("trailing_7d", wanted, dens).value
        return n / d if n is not None and d else None
    return baseline_from("trailing_7d", wanted, _metric_series(series, metric)).value


# The days a scope's own day-to-day wobble is read from: the comparable days (not festival-
# shaped, not context) of the last DISPERSION_DAYS before the day, at least MIN_DISPERSION_DAYS.
DISPERSION_DAYS = 56
MIN_DISPERSION_DAYS = 8
# The spread of the median of n days, in units of one day's variance (a normal's; n > 8: pi/2n).
_MEDIAN_VAR = (1.0, 1.0, 0.5, 0.449, 0.298, 0.287, 0.215, 0.210, 0.168)


def _dispersion_days(
    sd: StoreDay, all_: Mapping[date, Mapping[str, float]], wanted: Sequence[date]
) -> list[date]:
    shaped, ctx = set(sd.shaped_days), sd.context
    lo = sd.day - timedelta(days=DISPERSION_DAYS)
    out = [
        d for d, v in all_.items() if lo <= d < sd.day and v and d not in shaped and d not in ctx
    ]
    if len(out) < MIN_DISPERSION_DAYS:
        return sorted(set(out) | set(wanted))
    return sorted(out)


def _rest(
    all_: Mapping[date, Mapping[str, float]], ser: Mapping[date, Mapping[str, float]]
) -> Series:
    """The store without the scope: each day's counts of the store less the scope's."""
    out: Series = {}
    for d, v in all_.items():
        mine = ser.get(d, {})
        row: dict[str, float] = {}
        for name in ("visitors", *{p for pair in RATIOS.values() for p in pair}):
            tot = _part(v, name, 0) if name in RATIOS else v.get(name)
            if tot is not None and name in mine:
                row[name] = max(0.0, tot - mine[name])
        for name, (num, den) in RATIOS.items():
            n_all, d_all = _part(v, name, 0), _part(v, name, 1)
            if n_all is not None and d_all is not None and num in mine and den in mine:
                row[f"{name}/num"] = max(0.0, n_all - mine[num])
                row[f"{name}/den"] = max(0.0, d_all - mine[den])
        out[d] = row
    return out


def _ratio_value(day: Mapping[str, float], metric: str) -> tuple[float, float] | None:
    if metric in RATIOS:
        n, d = _part(day, metric, 0), _part(day, metric, 1)
        return None if n is None or not d else (n, d)
    v = day.get(metric)
    return None if v is None else (v, 1.0)


def _overdispersion(
    ser: Mapping[date, Mapping[str, float]],
    hist: Sequence[date],
    metric: str,
    ref: Mapping[date, Mapping[str, float]] | None,
    ref_parts: Mapping[date, Mapping[str, float]] | None = None,
) -> tuple[float, float | None]:
    """The scope's own day-to-day wobble of a rate (or of its traffic) beyond Poisson, as a
    share of it, from its history: each day's count against its volume times the scope's median
    level (moved with the reference's level that day: the market's, or the rest of the store's),
    a robust spread of those relative residuals less their Poisson part. Never under
    RATE_WOBBLE (a short or quiet history does not make a scope look steadier than a rate is).
    Also the residuals' whole spread (Poisson included; None without enough history): the
    error of a baseline made of such days."""
    ref = ref_parts if ref_parts is not None else ref
    obs: list[float] = []
    vol: list[float] = []
    lvl: list[float] = []
    for d in hist:
        got = _ratio_value(ser.get(d, {}), metric)
        if got is None or got[1] <= 0:
            continue
        r = 1.0
        if ref is not None:
            rd = ref.get(d, {})
            rv = _ratio_value(rd, metric) if ref_parts is not None else None
            if ref_parts is not None:
                if rv is None or rv[0] <= 0:
                    continue
                r = rv[0] / rv[1]
            else:
                m = rd.get(metric)
                if not m:
                    continue
                r = float(m)
        obs.append(got[0])
        vol.append(got[1])
        lvl.append(r)
    if len(obs) < 4:
        return RATE_WOBBLE, None
    o, v, lv = np.asarray(obs), np.asarray(vol), np.asarray(lvl)
    lv = lv / np.median(lv)
    center = float(np.median(o / (v * lv)))
    e = v * lv * center
    if center <= 0 or not (e > 0).all():
        return RATE_WOBBLE, None
    u = o / e - 1
    s = 1.4826 * float(np.median(np.abs(u - np.median(u))))
    var = s * s - float(np.median(1.0 / np.maximum(e, 1.0)))
    return max(RATE_WOBBLE, math.sqrt(var) if var > 0 else 0.0), s


def _z(obs: float, exp: float, spread: tuple[float, float | None], n_base: int) -> float | None:
    """(observed - expected) over Poisson plus the scope's wobble, with the baseline's own
    error on top: the median of n_base days each as spread as the history's residuals (none
    when the history is flat; the model's spread when it is too short to say)."""
    if exp <= 0:
        return None
    phi, s = spread
    var = max(1.0, exp) + (phi * exp) ** 2
    k = _MEDIAN_VAR[n_base] if n_base < len(_MEDIAN_VAR) else math.pi / (2 * n_base)
    day_var = var if s is None else (s * exp) ** 2
    return (obs - exp) / math.sqrt(var + BASELINE_ERROR * k * day_var)


# A day of a festival's run-up without the same phase a year before: the
# comparable days are scaled by the uplift the phase's earlier days (at least RUNUP_MIN_DAYS of
# them, the last RUNUP_DAYS) showed over them, net of the market's own uplift where it posts
# the metric: a channel the festival lifts more than the market (paid traffic in a pre-sale) is
# compared with its festival level, not with an ordinary day.
RUNUP_MIN_DAYS = 2
RUNUP_DAYS = 7


def _runup_days(sd: StoreDay, choice: BaselineChoice, present: Collection[date]) -> list[date]:
    if sd.baseline is not None or choice.method != "comparable_weekdays":
        return []
    shaped = set(sd.shaped_days)
    if sd.day not in shaped:
        return []
    # the run-up only: an aftermath's earlier days are the festival's own peak days
    w = next((p for p in sd.phases if sd.day in p and p.phase != "returns_window"), None)
    if w is None or w.phase == "main":
        return []
    earlier = sorted(
        d for d in present if w.start <= d < sd.day and d in shaped and d not in sd.context
    )[-RUNUP_DAYS:]
    return earlier if len(earlier) >= RUNUP_MIN_DAYS else []


def _uplift(
    series: Mapping[date, Mapping[str, float]],
    runup: Sequence[date],
    metric: str,
    base: float | None,
    bench: Mapping[date, Mapping[str, float]],
    market_base: float | None,
) -> float:
    """The phase's uplift of a metric so far (the median of its earlier days over the
    comparable baseline), net of the market's (its days over the market's baseline)."""
    if not runup or not base:
        return 1.0
    own = [v / base for d in runup if (v := _with_ratios(series.get(d, {})).get(metric))]
    if len(own) < RUNUP_MIN_DAYS:
        return 1.0
    f = float(np.median(own))
    if market_base:
        mkt = [m / market_base for d in runup if (m := bench.get(d, {}).get(metric))]
        if len(mkt) >= RUNUP_MIN_DAYS:
            f /= float(np.median(mkt))
    return f if f > 0 else 1.0


def diagnose_store_day(sd: StoreDay) -> Report:
    if not len(sd.series):
        raise InputError("no metric rows")
    day = sd.day
    frame = sd.totals.frame
    n_keys = len(frame.dims)

    def key_of(code: int) -> tuple[str, tuple[tuple[str, str], ...]]:
        m, k = divmod(code, n_keys)
        return frame.metrics[m], frame.key(k)

    history = [day - timedelta(days=i) for i in range(1, 29)]
    gr = sd.totals.grains
    counted = _completeness_rows(frame, gr, day)
    comp = assess_completeness_codes(
        day,
        frame.dates,
        frame.date_id[counted],
        (frame.metric_id * n_keys + frame.key_id)[counted],
        key_of,
        history=history,
    )
    by_scope, scores = sd.totals.by_scope, sd.totals.scores
    all_ = by_scope.get("all", {})
    choice = sd.choose_baseline({d for d, v in all_.items() if v})
    wanted = list(choice.days)
    today = _with_ratios(all_.get(day, {}))
    bench = {d: dict(v) for d, v in sd.benchmark.items()}
    runup = _runup_days(sd, choice, {d for d, v in all_.items() if v})

    def market_base(metric: str) -> float | None:
        return baseline_from("trailing_7d", wanted, _metric_series(bench, metric)).value

    def base_of(series: Mapping[date, Mapping[str, float]], metric: str) -> float | None:
        b = _base(series, wanted, metric)
        if runup and b is not None:
            b *= _uplift(series, runup, metric, b, bench, market_base(metric))
        return b

    context = day in set(sd.context_days)

    facts: dict[str, float | None] = {}
    kpis: list[KpiV1] = []
    explained_by_market = False
    market_explained: list[str] = []
    ctx_flags = None
    dates = sorted(d for d in all_ if d <= day)
    if sd.context_days:
        cd = set(sd.context_days)
        ctx_flags = [d in cd for d in dates]
    for metric in KPI_METRICS:
        if metric not in today:
            continue
        b = base_of(all_, metric)
        mv = bench.get(day, {}).get(metric)
        # the market posts its ratios (ingest derives them from its parts): a median of them
        mb = (
            baseline_from("trailing_7d", wanted, _metric_series(bench, metric)).value
            if mv is not None
            else None
        )
        vals: list[float | None] = []
        vols: list[float | None] = []
        noise: NoiseKind = "none"
        for d in dates:
            dv = _with_ratios(all_[d])
            vals.append(dv.get(metric))
            noise, vol = _kpi_noise(metric, dv)
            vols.append(vol)
        pts = (
            score_series(
                vals,
                period=7,
                expected_windows=ctx_flags,
                config=sd.anomaly,
                noise=noise,
                volumes=vols,
            )
            if len(vals) > 1
            else []
        )
        last = pts[-1] if pts else None
        score = last.score if last else None
        flagged = bool(last and last.label)
        moved = compare(today[metric], b).change
        if (
            score is not None
            and sd.anomaly.min_effect > 0
            and moved is not None
            and abs(moved) < sd.anomaly.min_effect
        ):
            # the move the report shows (against the baseline) is under the practical effect:
            # never flagged, whatever the forecast said; the score stays under the flag's 0.5
            flagged = False
            score = min(score, 0.499999)
        kpis.append(
            kpi(
                metric,
                today[metric],
                b,
                mv,
                mb,
                anomaly_score=score,
                is_anomaly=flagged,
            )
        )
        cmp_ = compare(today[metric], b, mv, mb)
        facts[f"chg.{metric}.all"] = cmp_.change
        facts[f"rel.{metric}.all"] = (
            cmp_.relative_change if cmp_.relative_change is not None else cmp_.change
        )
        if cmp_.market_change is not None:
            facts[f"mkt.{metric}"] = cmp_.market_change
            # net of the market only where the market posted the metric (rel.* falls back to
            # the raw change without one)
            facts[f"mrel.{metric}.all"] = cmp_.relative_change
        if cmp_.attribution == "market" and metric in ("visitors", "cvr", "ctr", "aov"):
            # only a KPI the market posted can be the market's (attribution needs its change)
            market_explained.append(metric)
            explained_by_market |= metric == "cvr"
    channels = sorted(s for s in by_scope if s not in ("all", "paid", "free"))
    hist = _dispersion_days(sd, all_, wanted)
    for scope in [*channels, "paid", "free", "all"]:
        ser = by_scope[scope]
        # the store without the scope (a channel's own move against the rest's)
        rest = _rest(all_, ser) if scope != "all" else {}
        cur = _with_ratios(ser.get(day, {}))
        facts[f"paid.{scope}"] = 1.0 if scope in PAID_CHANNELS or scope == "paid" else 0.0
        for metric in SCOPE_METRICS:
            if metric not in cur:
                continue
            base = base_of(ser, metric)
            c = compare(cur[metric], base).change
            mk = facts.get(f"mkt.{metric}")
            rel = None if c is None else ((1 + c) / (1 + mk) - 1 if mk is not None else c)
            facts.setdefault(f"chg.{metric}.{scope}", c)
            facts.setdefault(f"rel.{metric}.{scope}", rel)
            if metric == "impressions" and c is not None:
                # exposure net of the market's traffic (its impressions, else its visitors):
                # a market-wide lull (the week after a festival) is no fall in exposure
                mt = facts.get("mkt.impressions", facts.get("mkt.visitors"))
                facts[f"relt.impressions.{scope}"] = (
                    (1 + c) / (1 + mt) - 1 if mt is not None and mt > -1 else c
                )
            if metric == "gmv" and base is not None:
                facts[f"delta.gmv.{scope}"] = round(cur[metric] - base, 2)
            if metric == "visitors" and base is not None:
                base_all = base_of(all_, "visitors")
                # the scope's share of the store's traffic on the baseline's days: a channel
                # of a few dozen visitors losing 40% is noise, not an owner's problem
                facts[f"share.visitors.{scope}"] = base / base_all if base_all else None
            if metric in ("ctr", "cvr", "inquiry_cvr") and base is not None:
                # The move in units (clicks, buyers) against what the baseline rate (moved with
                # the market) would have given on today's volume, over its spread: Poisson plus
                # the scope's own day-to-day wobble of the rate (its overdispersion, estimated
                # from its history; never under RATE_WOBBLE), and the baseline's own error.
                num, den = RATIOS[metric]
                exp = cur.get(den, 0.0) * base * (1 + (mk or 0.0))
                spread = _overdispersion(ser, hist, metric, bench if mk is not None else None)
                facts[f"phi.{metric}.{scope}"] = spread[0]
                facts[f"z.{metric}.{scope}"] = _z(cur.get(num, 0.0), exp, spread, len(wanted))
                # the same move against the rest of the store's (the channel's own problem,
                # not the store's): the store itself is compared with the market
                if scope in ("all", "paid", "free"):
                    facts[f"zr.{metric}.{scope}"] = facts[f"z.{metric}.{scope}"]
                else:
                    rb = _base(rest, wanted, metric)
                    rc = compare(_with_ratios(rest.get(day, {})).get(metric), rb).change
                    e2 = cur.get(den, 0.0) * base * (1 + rc) if rc is not None else 0.0
                    spread_r = _overdispersion(ser, hist, metric, None, rest)
                    facts[f"zr.{metric}.{scope}"] = _z(cur.get(num, 0.0), e2, spread_r, len(wanted))
            if metric == "visitors" and base is not None and scope != "all":
                # traffic against the market's traffic move, or the rest of the store's where
                # the market posts no traffic, over its own history's wobble
                ref: Series | None
                if mk is not None:
                    ref, move = bench, mk
                else:
                    ref = rest
                    rb = _base(ref, wanted, "visitors")
                    move = compare(ref.get(day, {}).get("visitors"), rb).change or 0.0
                exp = base * (1 + move)
                spread = _overdispersion(ser, hist, "visitors", ref)
                facts[f"phi.visitors.{scope}"] = spread[0]
                facts[f"z.visitors.{scope}"] = _z(cur["visitors"], exp, spread, len(wanted))
    for metric in SCORE_METRICS:
        v = scores.get(day, {}).get(metric)
        b = baseline_from("trailing_7d", wanted, _metric_series(scores, metric)).value
        facts[f"chg.{metric}.all"] = compare(v, b).change
        if v is not None:
            kpis.append(kpi(metric, v, b))
    # each channel's conversion move against the store's own
    for ch in channels:
        c_ch, c_all = facts.get(f"chg.cvr.{ch}"), facts.get("chg.cvr.all")
        if c_ch is not None and c_all is not None and c_all > -1:
            facts[f"vs.cvr.{ch}"] = (1 + c_ch) / (1 + c_all) - 1
    # mix versus rate of the store's conversion across channels
    try:
        seg_before = {
            ch: (
                _base(by_scope[ch], wanted, "buyers") or 0.0,
                _base(by_scope[ch], wanted, "visitors") or 0.0,
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
            cb = _base(ser, wanted, metric)
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
    before_all = {m: _base(all_, wanted, m) for m in base_names}
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
                table = _LeafTable.of(frame, sd, {"gmv", *RATIOS["cvr"]}, gr, wanted)
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
            SummaryFinding(
                f.code,
                f.metric,
                f.owner,
                f.dimensions.get("channel", ""),
                f.severity,
                f.primary,
                f.expected_gmv_impact,
            )
            for f in findings
        ],
        data_complete=comp.complete,
        explained_by_market=explained_by_market,
        market_explained=market_explained,
        has_baseline=any(k.baseline is not None for k in kpis),
        platform=sd.platform,
        baseline_method=choice.method,
        baseline_weeks=len(choice.days),
        baseline_skipped=len(choice.skipped),
    )
    summaries = {loc: summarize(sf, loc) for loc in LOCALES}
    return Report(
        day,
        sd.baseline_kind,
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
        choice.days,
        choice.method,
        choice.note,
    )


_Column = tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]  # value and present, per leaf


@dataclass
class _LeafTable:
    """The leaves of a store-day (the distinct non-empty dimensions, in the order they first
    appear) with their values on the day and the baseline's days as arrays, read once for every
    root-cause analysis of the day."""

    day: date
    kind: Baseline
    names: list[str]  # every dimension name seen, sorted
    wanted: list[date]  # the baseline's days
    leaf_dims: list[Mapping[str, str]]
    slots: dict[tuple[date, str], _Column]
    canonical: bool  # each of leaf_dims lists its items in name order
    _codes: list[tuple[list[str], npt.NDArray[np.int64]]] | None = None
    _plain: bool = True  # every leaf has every name, as a str: the leaves' keys are distinct

    @classmethod
    def of(
        cls,
        frame: Frame,
        sd: StoreDay,
        metrics: Collection[str],
        gr: _Grains | None = None,
        wanted: Sequence[date] | None = None,
    ) -> _LeafTable:
        if gr is None:
            gr = _Grains.of(frame, registry().for_store(sd.partition_dimensions))
        # The baseline's days are the same for every leaf: computed once.
        if wanted is None:
            wanted = list(sd.choose_baseline(set(frame.dates)).days)
        # The leaves are the rows of one grain, the finest that partitions the store: rows of
        # coarser grains are their sums, and slices are no part of the store's total.
        is_leaf = gr.of_key == gr.leaf
        leaf_of_key = np.cumsum(is_leaf) - 1
        n = int(is_leaf.sum())
        leaf = np.where(is_leaf, leaf_of_key, -1)[frame.key_id]
        date_code = {d: i for i, d in enumerate(frame.dates)}
        metric_code = {m: i for i, m in enumerate(frame.metrics)}
        slots: dict[tuple[date, str], _Column] = {}
        for d in dict.fromkeys([*wanted, sd.day]):
            for m in metrics:
                val, has = np.zeros(n), np.zeros(n, dtype=bool)
                slots[(d, m)] = (val, has)
                if d not in date_code or m not in metric_code:
                    continue
                rows = np.flatnonzero(
                    (frame.date_id == date_code[d])
                    & (frame.metric_id == metric_code[m])
                    & (leaf >= 0)
                )
                lr = leaf[rows]
                if len(lr) and np.bincount(lr).max() > 1:
                    # a repeated row: the last one is the value, as a mapping update would keep
                    _, last = np.unique(lr[::-1], return_index=True)
                    rows = rows[::-1][last]
                    lr = leaf[rows]
                val[lr] = frame.values[rows]
                has[lr] = True
        leaf_dims = [dm for dm, ok in zip(frame.dims, is_leaf.tolist(), strict=True) if ok]
        names = sorted(set().union(*leaf_dims)) if leaf_dims else []
        return cls(sd.day, sd.baseline_kind, names, list(wanted), leaf_dims, slots, frame.canonical)

    def get(self, d: date, m: str) -> _Column:
        hit = self.slots.get((d, m))
        if hit is None:
            n = len(self.leaf_dims)
            return np.zeros(n), np.zeros(n, dtype=bool)
        return hit

    def base(self, m: str) -> _Column:
        """Each leaf's baseline of metric m (present: the baseline has a value)."""
        wanted, n = self.wanted, len(self.leaf_dims)
        if len(wanted) == 1:
            return self.get(wanted[0], m)
        if not wanted:
            return np.zeros(n), np.zeros(n, dtype=bool)
        cols = [self.get(w, m) for w in wanted]
        v = np.stack([c[0] for c in cols])
        h = np.stack([c[1] for c in cols])
        if not np.isfinite(v[h]).all():
            return self._base_each(v, h)
        # the median of the present days, as statistics.median takes it
        count = h.sum(axis=0)
        x = np.sort(np.where(h, v, np.inf), axis=0, kind="stable")
        at = np.arange(n)
        mid = count // 2
        hi = x[np.minimum(mid, len(wanted) - 1), at]
        lo = x[np.maximum(mid - 1, 0), at]
        with np.errstate(invalid="ignore"):
            med = np.where(count % 2 == 1, hi, (lo + hi) / 2)
        ok = (count >= 1) & (count >= MIN_PRESENT * len(wanted))
        return np.where(ok, med, 0.0), ok

    def _base_each(self, v: npt.NDArray[np.float64], h: npt.NDArray[np.bool_]) -> _Column:
        out, ok = np.zeros(v.shape[1]), np.zeros(v.shape[1], dtype=bool)
        for i in range(v.shape[1]):
            series = {w: float(v[k, i]) for k, w in enumerate(self.wanted) if h[k, i]}
            b = baseline_from(self.kind, self.wanted, series).value
            if b is not None:
                out[i], ok[i] = b, True
        return out, ok

    def codes(self) -> list[tuple[list[str], npt.NDArray[np.int64]]]:
        """Per dimension name: its distinct values (as str) and each leaf's code into them."""
        if self._codes is None:
            self._codes = []
            n_names = len(self.names)
            self._plain = all(len(dm) == n_names for dm in self.leaf_dims)
            per_name: list[list[Any]]
            if self._plain and self.canonical:
                # every leaf has every name, in name order: its values are the columns
                rows = [tuple(dm.values()) for dm in self.leaf_dims]
                per_name = [list(map(itemgetter(j), rows)) for j in range(n_names)]
            else:
                per_name = [[dm.get(n, "") for dm in self.leaf_dims] for n in self.names]
            for column in per_name:
                table, codes = codes_of(column)
                if not all(type(v) is str for v in table):
                    self._plain = False
                    strs, remap = codes_of([str(v) for v in table])
                    table, codes = strs, remap[codes]
                self._codes.append((table, codes))
        return self._codes

    def check_distinct(self, sel: npt.NDArray[np.bool_]) -> None:
        """Two leaves with the same value of every name (one lacks a name the other has as "")
        are one leaf twice: refused, as over rows."""
        cols = self.codes()
        if self._plain:
            return
        keys = list(
            zip(*([table[c] for c in codes[sel].tolist()] for table, codes in cols), strict=True)
        )
        if len(set(keys)) != len(keys):
            dup = next(k for k, c in Counter(keys).items() if c > 1)
            raise InputError(f"duplicate leaf {dict(zip(self.names, dup, strict=True))}")

    def encode(
        self, sel: npt.NDArray[np.bool_]
    ) -> tuple[list[tuple[str, ...]], npt.NDArray[np.int64]]:
        """The selected leaves encoded as localize wants them: per name, the sorted distinct
        values (as numpy orders them) and each leaf's code."""
        cols = self.codes()
        out = np.empty((int(sel.sum()), len(cols)), dtype=np.int64)
        values: list[tuple[str, ...]] = []
        for j, (table, codes) in enumerate(cols):
            cs = codes[sel]
            used = distinct(cs)
            arr = np.array([table[u] for u in used.tolist()], dtype=object).astype(str)
            uniq, inv = np.unique(arr, return_inverse=True)
            lut = np.empty(len(table), dtype=np.int64)
            lut[used] = inv.ravel()
            out[:, j] = lut[cs]
            values.append(tuple(str(u) for u in uniq))
        return values, out


def _leaf_rca(
    sd: StoreDay, metric: str, ratio: bool, table: _LeafTable
) -> tuple[str, list[RootCause]] | None:
    """RCA over the day's leaves against the baseline's leaves (same baseline kind)."""
    day = sd.day
    cols: list[npt.NDArray[np.float64]]
    if ratio:
        num, den = RATIOS[metric]
        today_den, has_den = table.get(day, den)
        base_num, has_bn = table.base(num)
        base_den, has_bd = table.base(den)
        sel = has_den & has_bn & has_bd
        cols = [table.get(day, num)[0], today_den, base_num, base_den]
    else:
        base, sel = table.base(metric)
        cols = [table.get(day, metric)[0], base]
    if not sel.any() or not table.names:
        return None
    table.check_distinct(sel)
    nums = np.stack([c[sel] for c in cols])
    if not np.isfinite(nums).all():
        raise InputError("a leaf value is not a finite number")
    values, codes = table.encode(sel)
    res = localize(leaves_from_codes(table.names, values, codes, nums, ratio=ratio))
    return res.verdict, res.causes
