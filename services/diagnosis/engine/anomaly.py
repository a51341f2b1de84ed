"""Online anomaly scoring of a regular series: robust level + trend + seasonality.

Each point is scored against a forecast built only from the points before it (the detector
learns online), then the state is updated with a clipped residual so that a spike barely moves
it (robust Holt-Winters in the manner of Gelper, Fried and Croux 2010). What a clipped update
would never learn is taken as a new regime once it persists: `shift_run` same-signed outliers in
a row re-level the series (a level shift), and the same phase of the season out of line
`season_run` seasons in a row re-seats that phase (a changed weekly pattern).

Missing points (None / NaN) are data problems: labelled 1 with score 1 and direction "missing",
the state steps over them and never reads them as zero. Points inside an expected window
(a campaign, a festival, a holiday) are context: scored, never labelled, and kept out of the
model so that an expected Double 11 peak does not distort the days after it.

score = |z| / (|z| + k) with z the residual over a robust scale: 0.5 exactly at the label's
threshold |z| = k, monotone, in [0, 1).

Calibration (docs/diagnosis.md, "Calibrated KPI flags"): a robust scale learnt from a few weeks of
a smooth history can be far below what sampling alone makes a day move by (a conversion rate of
40 buyers moves by 16% on chance alone), and then any change is many "sigmas". When the caller
says what kind of number the series is (`noise`) and on how much volume each point rests
(`volumes`: the denominator of a rate, the buyers behind an average order value), the scale is
floored at the point's sampling standard error, taken at the forecast (the score test: the
spread the point would have if nothing had changed), widened by the forecast's own error. And a
residual under `min_effect` of the forecast (a practical effect size) is never labelled: the
scale is also floored at min_effect x |forecast| / k. Both floors only widen the scale, so the
score stays in [0, 1) and monotone in |residual|.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from services.diagnosis.engine.errors import InputError

PointDirection = Literal["up", "down", "flat", "missing"]
# What a point of the series is, for its sampling noise (the volume is the `volumes` entry):
#   count      a count of events (visitors, buyers): Poisson, sd = sqrt(expected)
#   proportion a rate of successes among `volume` trials (cvr, ctr): sd = sqrt(p (1 - p) / n)
#   mean       an average over `volume` items (aov over buyers): sd = |expected| cv / sqrt(n)
#   total      a sum of amounts over `volume` items (gmv over buyers): compound Poisson,
#              sd = |expected| sqrt((1 + cv^2) / n)
#   share      a share of amounts: the amounts of some of `volume` items over all of them
#              (refunds over gmv): p n items expected, sd = sqrt(p (1 + cv^2) / n)
NoiseKind = Literal["none", "count", "proportion", "mean", "total", "share"]


@dataclass(frozen=True)
class AnomalyConfig:
    k: float = 4.5  # label threshold on |z|
    alpha: float = 0.15  # level
    beta: float = 0.02  # trend
    gamma: float = 0.1  # season
    clip: float = 2.0  # residuals are clipped at clip x scale before updating
    eta: float = 0.05  # scale smoothing
    shift_run: int = 3  # same-signed outliers in a row that make a new level
    season_run: int = 2  # seasons in a row a phase is out of line before it is re-seated
    warmup_seasons: int = 2
    drift_lambda: float = 0.15  # EWMA of residuals: a slow drift the clipped update lags behind
    drift_k: float = 4.0
    # Calibration. calibrated: the scale is floored at the sampling error when the caller passes
    # a noise kind and volumes, the warm-up scale is corrected for the season it fits, and the
    # scale is a plain mean of its first residuals; False is the detector before issue 14.
    calibrated: bool = True
    # Accumulation (a two-sided CUSUM of z clipped at k, reference cusum_ref): a change that
    # builds over a few days (a ramped shift, a bend in the trend). While a run builds (the
    # sum before the point over hold_at), residuals beyond hold_clip x clip scales do not move
    # the state, so the change is not half learnt before it is judged; a lone spike is clipped
    # as before. hold_at < 0: never (the detector before issue 14.5). cusum_h > 0 also flags a
    # point once the sum passes cusum_h (off: it cost more precision than it found, see
    # docs/diagnosis.md).
    cusum_ref: float = 1.5
    hold_at: float = 1.0
    hold_clip: float = 0.75
    cusum_h: float = 0.0
    # a new level of a positive series scales its season too (a store that lost 40% of its
    # visitors lost them on Saturdays as well): the shift is relative, not in units
    relative_shift: bool = True
    min_effect: float = 0.0  # residuals under this share of the forecast are never labelled
    value_cv: float = 1.0  # coefficient of variation of one item's amount (an order's value)


@dataclass(frozen=True)
class AnomalyPoint:
    score: float
    label: int
    direction: PointDirection
    expected: float | None  # the forecast; None during warm-up or when missing
    context: bool = False  # inside an expected window: scored, never labelled


def _isnan(x: float | None) -> bool:
    return x is None or math.isnan(x)


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def score_series(
    values: Sequence[float | None],
    *,
    period: int | None = None,
    expected_windows: Sequence[bool] | None = None,
    config: AnomalyConfig | None = None,
    noise: NoiseKind = "none",
    volumes: Sequence[float | None] | None = None,
) -> list[AnomalyPoint]:
    """Score every point of a regular series using only the points before it.

    noise and volumes (one per point; None where unknown) floor the scale at each point's
    sampling error; config.min_effect floors it at a practical effect size (module docstring)."""
    cfg = config or AnomalyConfig()
    if not values:
        raise InputError("the series is empty")
    if expected_windows is not None and len(expected_windows) != len(values):
        raise InputError("expected_windows must have one flag per point")
    if volumes is not None and len(volumes) != len(values):
        raise InputError("volumes must have one entry per point")
    if noise not in ("none", "count", "proportion", "mean", "total", "share"):
        raise InputError(f"unknown noise kind {noise!r}")
    if noise != "none" and noise != "count" and volumes is None:
        raise InputError(f"noise {noise!r} needs the volumes")
    calibrated = cfg.calibrated and noise != "none"
    # the forecast is itself an average of noisy points: its variance adds about alpha / (2 -
    # alpha) of a point's (an exponentially weighted mean's)
    widen = math.sqrt(1 + cfg.alpha / (2 - cfg.alpha))
    min_effect = max(0.0, cfg.min_effect)
    floored = calibrated or min_effect > 0

    def floor(t: int, expected: float) -> float:
        """The smallest scale a point may be judged on: its sampling error at the forecast,
        and the practical effect size over k."""
        f = min_effect * abs(expected) / cfg.k
        if calibrated:
            vol = volumes[t] if volumes is not None else None
            f = max(f, widen * sampling_sd(noise, expected, vol, cfg.value_cv))
        return f

    m = period if period and period > 1 else 1
    warm = max(8, cfg.warmup_seasons * m) if m > 1 else 8
    out: list[AnomalyPoint] = []
    hist: list[float] = []  # warm-up points (NaN for missing)
    level = trend = scale = 0.0
    season = [0.0] * m
    ready = False
    seen = 0.0  # how many residuals the scale is worth: it starts as a plain mean
    run: list[float] = []
    run_p: list[float] = []  # the forecasts the run's residuals were measured against
    phase_runs = [0] * m
    phase_last = [0.0] * m
    k, clip = cfg.k, cfg.clip
    drift = 0.0
    # the accumulation: up (cp) and down (cn) sums, and the residuals since each left zero
    cp = cn = 0.0
    crun: list[float] = []
    crun_p: list[float] = []
    ch = cfg.cusum_h
    lam = cfg.drift_lambda
    drift_sd = math.sqrt(lam / (2 - lam))
    for t, raw in enumerate(values):
        ctx = bool(expected_windows[t]) if expected_windows is not None else False
        ph = t % m
        x = None if _isnan(raw) else float(raw)  # type: ignore[arg-type]
        if not ready:
            if x is None:
                out.append(AnomalyPoint(1.0, 1, "missing", None, ctx))
                hist.append(math.nan)
                continue
            obs = [v for v in hist if not math.isnan(v)]
            pt = AnomalyPoint(0.0, 0, "flat", None, ctx)
            if len(obs) >= 5:
                med = _median(obs[-warm:])
                mad = _median([abs(v - med) for v in obs[-warm:]]) * 1.4826
                sc = max(mad, 1e-9 * max(1.0, abs(med)), floor(t, med) if floored else 0.0)
                z = (x - med) / sc if abs(x - med) > 1e-12 else 0.0
                if m > 1:
                    z /= 3  # no seasonality yet: the spread holds the season; be cautious
                pt = _point(z, k, med, ctx)
            out.append(pt)
            hist.append(x if not ctx else math.nan)
            if len(hist) >= warm:
                level, trend, season, scale, seen, ready = _init(hist, m, cfg.calibrated)
                if not ready:
                    continue
            continue
        pred = level + trend + season[ph]
        if x is None:
            out.append(AnomalyPoint(1.0, 1, "missing", pred, ctx))
            level += trend
            continue
        r = x - pred
        sc = max(scale, 1e-9 * max(1.0, abs(level)), floor(t, pred) if floored else 0.0)
        z = r / sc if abs(r) > 1e-12 else 0.0
        if ctx:
            out.append(_point(z, k, pred, ctx))
            level += trend
            continue
        drift = (1 - lam) * drift + lam * max(-3 * sc, min(3 * sc, r))
        zd = drift / (sc * drift_sd)
        if abs(zd) > cfg.drift_k and abs(z) <= k and abs(r) >= min_effect * abs(pred):
            # a trend change: the forecast keeps missing the same way; label it, then follow
            out.append(_point(math.copysign(k * abs(zd) / cfg.drift_k, zd), k, pred, ctx))
            level += trend + drift
            trend += lam * drift
            drift = 0.0
            run, run_p = [], []
            continue
        zc = max(-k, min(k, z))
        building = (cp if r > 0 else cn) > cfg.hold_at >= 0
        cp, cn = max(0.0, cp + zc - cfg.cusum_ref), max(0.0, cn - zc - cfg.cusum_ref)
        if cp == 0 and cn == 0:
            crun, crun_p = [], []
        else:
            crun.append(r)
            crun_p.append(pred)
        cz = max(cp, cn)
        if ch > 0 and cz > ch and abs(z) <= k and abs(r) >= min_effect * abs(pred):
            # a change building over days: flag it, then take the recent residuals as the new
            # level (a ramp's last days, not its first)
            out.append(_point(math.copysign(k * cz / ch, cp - cn), k, pred, ctx))
            tail = [
                (v, q) for v, q in zip(crun[-3:], crun_p[-3:], strict=True) if (v > 0) == (cp > cn)
            ]
            level, trend, season, _ = _relevel(
                level, trend, season, tail or [(r, pred)], cfg.relative_shift
            )
            cp = cn = 0.0
            crun, crun_p = [], []
            drift = 0.0
            run, run_p = [], []
            continue
        out.append(_point(z, k, pred, ctx))
        outlier = abs(z) > k
        if outlier and run and (run[-1] > 0) != (r > 0):
            run, run_p = [], []
        if outlier:
            run.append(r)
            run_p.append(pred)
        else:
            run, run_p = [], []
        # season: the same phase out of line in the same direction, season after season
        if m > 1 and outlier and phase_runs[ph] and (phase_last[ph] > 0) == (r > 0):
            phase_runs[ph] += 1
        else:
            phase_runs[ph] = 1 if outlier and m > 1 else 0
        phase_last[ph] = r
        if len(run) >= cfg.shift_run:
            level, trend, season, shift = _relevel(
                level, trend, season, list(zip(run, run_p, strict=True)), cfg.relative_shift
            )
            scale = max(scale, abs(shift) / (2 * k))
            run, run_p = [], []
            drift = 0.0
            cp = cn = 0.0
            crun, crun_p = [], []
            continue
        if m > 1 and phase_runs[ph] >= cfg.season_run:
            season[ph] += r
            phase_runs[ph] = 0
            level += trend
            continue
        rc = max(-clip * sc, min(clip * sc, r))
        if building and abs(r) > cfg.hold_clip * clip * sc:
            # a run is building: a residual beyond the clip is not learnt until it is judged
            level += trend
        else:
            new_level = level + trend + cfg.alpha * rc
            trend += cfg.beta * (new_level - level - trend)
            level = new_level
            if m > 1:
                season[ph] += cfg.gamma * (1 - cfg.alpha) * rc
        # an exponentially weighted mean, but a plain mean while it has seen fewer than 1 / eta
        # residuals: a scale from a handful of warm-up points is not worth 20 of them
        e = max(cfg.eta, 1 / (seen + 1)) if cfg.calibrated else cfg.eta
        seen += 1
        scale = (1 - e) * scale + e * 1.2533 * min(abs(r), clip * 2 * sc)
    return out


def sampling_sd(kind: NoiseKind, expected: float, volume: float | None, cv: float = 1.0) -> float:
    """The standard deviation one point of this kind has from sampling alone, at its expected
    value and volume (0 when unknown). A volume under one item counts as one."""
    if kind == "none" or _isnan(expected):
        return 0.0
    if kind == "count":
        return math.sqrt(max(abs(expected), 1.0))
    if volume is None or _isnan(volume) or volume <= 0:
        return 0.0
    n = max(float(volume), 1.0)
    if kind == "proportion":
        # at least half an event either way: a rate of 0 over n trials is not known to be 0
        p = min(max(expected, 0.5 / n), 1 - 0.5 / n) if n > 1 else 0.5
        return math.sqrt(p * (1 - p) / n)
    if kind == "mean":
        return abs(expected) * cv / math.sqrt(n)
    if kind == "share":
        p = min(max(expected, 0.5 / n), 1.0)
        return math.sqrt(p * (1 + cv * cv) / n)
    return abs(expected) * math.sqrt((1 + cv * cv) / n)  # total


def _relevel(
    level: float,
    trend: float,
    season: list[float],
    residuals: list[tuple[float, float]],
    relative: bool,
) -> tuple[float, float, list[float], float]:
    """The state one step on at the new level the residuals (each with the forecast it was
    measured against) say the series has moved to, and the shift at the level. Relative when
    the series is positive (the season and trend scale with the level), in units otherwise."""
    shift = _median([v for v, _ in residuals])
    level += trend
    positive = level > 0 and all(q > 0 for _, q in residuals)
    if relative and positive and all(level + s > 0 for s in season):
        f = 1 + _median([v / q for v, q in residuals])
        if f > 0:
            return level * f, trend * f, [s * f for s in season], level * (f - 1)
    return level + shift, trend, season, shift


def _point(z: float, k: float, expected: float, ctx: bool) -> AnomalyPoint:
    a = abs(z)
    score = a / (a + k)
    label = int(a > k and not ctx)
    direction: PointDirection = "flat" if a <= k else ("up" if z > 0 else "down")
    return AnomalyPoint(round(score, 6), label, direction, expected, ctx)


def _init(
    hist: list[float], m: int, calibrated: bool = True
) -> tuple[float, float, list[float], float, float, bool]:
    """Level, trend, season and scale from the warm-up points, robustly; and how many
    residuals the scale is worth."""
    obs = [(i, v) for i, v in enumerate(hist) if not math.isnan(v)]
    if len(obs) < max(5, m):
        return 0.0, 0.0, [0.0] * m, 0.0, 0.0, False
    n = len(hist)
    if m > 1:
        cycles = n // m
        halves = [
            _median([v for i, v in obs if i // m == c])
            for c in range(cycles)
            if any(i // m == c for i, _ in obs)
        ]
        trend = (halves[-1] - halves[0]) / (m * (len(halves) - 1)) if len(halves) > 1 else 0.0
    else:
        half = len(obs) // 2
        a, b = _median([v for _, v in obs[:half]]), _median([v for _, v in obs[half:]])
        trend = (b - a) / max(1, obs[-1][0] - obs[0][0]) * 2
    detr = [(i, v - trend * (i - (n - 1))) for i, v in obs]
    level = _median([v for _, v in detr])
    season = [0.0] * m
    if m > 1:
        for p in range(m):
            ph = [v - level for i, v in detr if i % m == p]
            season[p] = _median(ph) if ph else 0.0
        mean_s = sum(season) / m
        season = [s - mean_s for s in season]
        level += mean_s
    res = [v - level - season[i % m] for i, v in detr]
    scale = _median([abs(r) for r in res]) * 1.4826
    worth = float(len(obs))
    if m > 1 and calibrated:
        # A season fitted on c points per phase eats a share of the noise (with c = 2 each
        # residual is half a difference: the MAD sees 0.71 sigma; with c = 1 it sees nothing).
        # The same phase one season apart differs by sqrt(2) sigma whatever c is: the scale
        # comes from those differences, times sqrt(1 + 1/c) since the forecast's season is
        # itself a mean of c noisy points. With no such pair, the spread around the level
        # (which still holds the season) is the cautious answer.
        at = dict(detr)
        diffs = [abs(v - at[i - m]) for i, v in detr if i - m in at]
        per_phase = [sum(1 for i, _ in detr if i % m == p) for p in range(m)]
        c = max(1, sorted(per_phase)[m // 2])
        if len(diffs) >= 3:
            scale = max(scale, _median(diffs) * 1.4826 / math.sqrt(2) * math.sqrt(1 + 1 / c))
            worth = float(len(diffs))
        else:
            scale = max(scale, _median([abs(v - level) for _, v in detr]) * 1.4826)
            worth = 2.0
    # next point is index n: rotate so season[t % m] stays aligned, and level is at n - 1
    return level, trend, season, max(scale, 1e-9), worth, True
