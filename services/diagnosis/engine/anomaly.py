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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from services.diagnosis.engine.errors import InputError

PointDirection = Literal["up", "down", "flat", "missing"]


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
) -> list[AnomalyPoint]:
    """Score every point of a regular series using only the points before it."""
    cfg = config or AnomalyConfig()
    if not values:
        raise InputError("the series is empty")
    if expected_windows is not None and len(expected_windows) != len(values):
        raise InputError("expected_windows must have one flag per point")
    m = period if period and period > 1 else 1
    warm = max(8, cfg.warmup_seasons * m) if m > 1 else 8
    out: list[AnomalyPoint] = []
    hist: list[float] = []  # warm-up points (NaN for missing)
    level = trend = scale = 0.0
    season = [0.0] * m
    ready = False
    run: list[float] = []
    phase_runs = [0] * m
    phase_last = [0.0] * m
    k, clip = cfg.k, cfg.clip
    drift = 0.0
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
                sc = max(mad, 1e-9 * max(1.0, abs(med)))
                z = (x - med) / sc if abs(x - med) > 1e-12 else 0.0
                if m > 1:
                    z /= 3  # no seasonality yet: the spread holds the season; be cautious
                pt = _point(z, k, med, ctx)
            out.append(pt)
            hist.append(x if not ctx else math.nan)
            if len(hist) >= warm:
                level, trend, season, scale, ready = _init(hist, m)
                if not ready:
                    continue
            continue
        pred = level + trend + season[ph]
        if x is None:
            out.append(AnomalyPoint(1.0, 1, "missing", pred, ctx))
            level += trend
            continue
        r = x - pred
        sc = max(scale, 1e-9 * max(1.0, abs(level)))
        z = r / sc if abs(r) > 1e-12 else 0.0
        if ctx:
            out.append(_point(z, k, pred, ctx))
            level += trend
            continue
        drift = (1 - lam) * drift + lam * max(-3 * sc, min(3 * sc, r))
        zd = drift / (sc * drift_sd)
        if abs(zd) > cfg.drift_k and abs(z) <= k:
            # a trend change: the forecast keeps missing the same way; label it, then follow
            out.append(_point(math.copysign(k * abs(zd) / cfg.drift_k, zd), k, pred, ctx))
            level += trend + drift
            trend += lam * drift
            drift = 0.0
            run = []
            continue
        out.append(_point(z, k, pred, ctx))
        outlier = abs(z) > k
        if outlier and run and (run[-1] > 0) != (r > 0):
            run = []
        if outlier:
            run.append(r)
        else:
            run = []
        # season: the same phase out of line in the same direction, season after season
        if m > 1 and outlier and phase_runs[ph] and (phase_last[ph] > 0) == (r > 0):
            phase_runs[ph] += 1
        else:
            phase_runs[ph] = 1 if outlier and m > 1 else 0
        phase_last[ph] = r
        if len(run) >= cfg.shift_run:
            shift = _median(run)
            level += trend + shift
            scale = max(scale, abs(shift) / (2 * k))
            run = []
            drift = 0.0
            continue
        if m > 1 and phase_runs[ph] >= cfg.season_run:
            season[ph] += r
            phase_runs[ph] = 0
            level += trend
            continue
        rc = max(-clip * sc, min(clip * sc, r))
        new_level = level + trend + cfg.alpha * rc
        trend += cfg.beta * (new_level - level - trend)
        level = new_level
        if m > 1:
            season[ph] += cfg.gamma * (1 - cfg.alpha) * rc
        scale = (1 - cfg.eta) * scale + cfg.eta * 1.2533 * min(abs(r), clip * 2 * sc)
    return out


def _point(z: float, k: float, expected: float, ctx: bool) -> AnomalyPoint:
    a = abs(z)
    score = a / (a + k)
    label = int(a > k and not ctx)
    direction: PointDirection = "flat" if a <= k else ("up" if z > 0 else "down")
    return AnomalyPoint(round(score, 6), label, direction, expected, ctx)


def _init(hist: list[float], m: int) -> tuple[float, float, list[float], float, bool]:
    """Level, trend, season and scale from the warm-up points, robustly."""
    obs = [(i, v) for i, v in enumerate(hist) if not math.isnan(v)]
    if len(obs) < max(5, m):
        return 0.0, 0.0, [0.0] * m, 0.0, False
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
    # next point is index n: rotate so season[t % m] stays aligned, and level is at n - 1
    return level, trend, season, max(scale, 1e-9), True
