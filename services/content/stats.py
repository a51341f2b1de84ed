"""Experiment statistics, pure: rates with Wilson intervals, two-proportion z-tests with Holm's
correction, the Beta-Binomial posterior (probability to be best, expected loss) by numerical
integration, the sample-ratio-mismatch test and the sample size a test needs.

The frequentist pieces use only the standard library (checked against SciPy in bench/); the
posterior integrates SciPy's Beta distribution on a grid refined around each variant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy import special

_N = NormalDist()


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    if trials == 0:
        return 0.0, 1.0
    z = _N.inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Lift:
    """A variant against the control: the difference in CTR (percentage points as a fraction)
    with a Wald interval on unpooled variances, and the relative lift (ratio - 1) with a
    delta-method interval on the log of the ratio (Katz), so the relative interval is
    asymmetric and never below -100%. None where a rate is 0 (the log ratio is undefined)."""

    diff: float
    diff_interval: tuple[float, float]
    relative: float | None
    relative_interval: tuple[float, float] | None
    confidence: float


def lift_interval(
    x_control: int, n_control: int, x_variant: int, n_variant: int, confidence: float = 0.95
) -> Lift | None:
    if n_control == 0 or n_variant == 0:
        return None
    z = _N.inv_cdf(0.5 + confidence / 2)
    p0, p1 = x_control / n_control, x_variant / n_variant
    se = math.sqrt(p0 * (1 - p0) / n_control + p1 * (1 - p1) / n_variant)
    diff = p1 - p0
    relative: float | None = None
    rel_interval: tuple[float, float] | None = None
    if x_control > 0 and x_variant > 0:
        log_ratio = math.log(p1 / p0)
        se_log = math.sqrt(max(0.0, (1 - p1) / x_variant + (1 - p0) / x_control))
        relative = math.exp(log_ratio) - 1
        rel_interval = (
            math.exp(log_ratio - z * se_log) - 1,
            math.exp(log_ratio + z * se_log) - 1,
        )
    return Lift(diff, (diff - z * se, diff + z * se), relative, rel_interval, confidence)


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Pooled two-proportion z-test, two-sided: (z, p). z > 0 when the first rate is higher."""
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / se
    return z, min(1.0, 2 * (1 - _N.cdf(abs(z))))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone), in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (series below a+1, continued fraction above)."""
    if x <= 0:
        return 1.0
    gln = math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    b = x + 1 - a
    c = 1.0 / 1e-300
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - gln) * h


def chi2_sf(statistic: float, dof: int) -> float:
    return _gamma_q(dof / 2, statistic / 2)


def srm_test(observed: Sequence[int], weights: Sequence[float]) -> tuple[float, float]:
    """Pearson's chi-square goodness of fit of the observed split to the planned one."""
    total = sum(observed)
    wsum = sum(weights)
    if total == 0 or len(observed) < 2:
        return 0.0, 1.0
    expected = [total * w / wsum for w in weights]
    stat = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True) if e > 0)
    return stat, chi2_sf(stat, len(observed) - 1)


def required_sample(
    baseline_rate: float,
    relative_mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    comparisons: int = 1,
) -> int:
    """Impressions per variant to detect a relative lift of relative_mde, two-sided, with the
    alpha split over the comparisons (Bonferroni, conservative for Holm)."""
    p1 = baseline_rate
    p2 = min(0.999999, baseline_rate * (1 + relative_mde))
    z_a = _N.inv_cdf(1 - alpha / (2 * max(1, comparisons)))
    z_b = _N.inv_cdf(power)
    pbar = (p1 + p2) / 2
    num = z_a * math.sqrt(2 * pbar * (1 - pbar)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil((num / (p2 - p1)) ** 2)


def posterior(
    successes: Sequence[int], trials: Sequence[int], prior: tuple[float, float] = (1.0, 1.0)
) -> tuple[list[float], list[float]]:
    """Probability each variant has the highest rate, and the expected loss of choosing it
    (E[max_j p_j - p_i]), under independent Beta(prior + counts) posteriors.

    P(best_i) = integral of f_i(p) * prod_{j != i} F_j(p) dp, on a grid made of each posterior's
    own quantile grid so that narrow posteriors are resolved even beside wide ones.
    """
    a = np.array(successes, dtype=float) + prior[0]
    b = np.array(trials, dtype=float) - np.array(successes, dtype=float) + prior[1]
    k = len(a)
    mean = a / (a + b)
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    # Each posterior's own window (mean +- 10 sd, where a Beta's mass is for all purposes whole).
    pieces = [
        np.linspace(max(0.0, mean[i] - 10 * sd[i]), min(1.0, mean[i] + 10 * sd[i]), 120)
        for i in range(k)
    ]
    grid = np.unique(np.concatenate(pieces))
    inner = np.clip(grid, 1e-300, 1 - 1e-16)
    aa, bb = a[:, None], b[:, None]
    with np.errstate(divide="ignore"):
        # Clipped (exp(-1e4) is 0 anyway) so that "all but i" below never meets -inf - -inf.
        logcdf = np.maximum(np.log(special.betainc(aa, bb, inner[None, :])), -1e4)
    pdf = np.exp(
        (aa - 1) * np.log(inner)[None, :]
        + (bb - 1) * np.log1p(-inner)[None, :]
        - special.betaln(aa, bb)
    )
    total_logcdf = logcdf.sum(axis=0)
    probs = []
    for i in range(k):
        others = np.exp(total_logcdf - logcdf[i])
        probs.append(float(np.trapezoid(pdf[i] * others, grid)))
    s = sum(probs)
    probs = [p / s for p in probs] if s > 0 else [1.0 / k] * k
    g = np.exp(total_logcdf)
    e_max = float(grid[0] + np.trapezoid(1 - g, grid))
    losses = [max(0.0, e_max - float(m)) for m in mean]
    return probs, losses


@dataclass(frozen=True)
class Variant:
    copy_id: str
    impressions: int
    clicks: int
    orders: int = 0
    weight: float = 1.0


@dataclass(frozen=True)
class DecisionRule:
    """Group-sequential in the simplest valid form: the data are analysed at planned looks, when
    every variant has 1x, 2x, ... `looks` x min_sample impressions, and each look tests at
    alpha / looks (Bonferroni over looks), so the chance of a false winner over all looks stays
    within alpha however often data arrive in between."""

    alpha: float = 0.05
    min_sample: int = 1000  # impressions per variant at the first look
    looks: int = 4  # planned analyses; the last (looks x min_sample) ends without a winner
    probability_threshold: float = 0.95
    loss_threshold: float = 0.01  # expected loss, relative to the winner's rate
    srm_alpha: float = 0.001

    @property
    def max_sample(self) -> int:
        return self.looks * self.min_sample

    @property
    def alpha_per_look(self) -> float:
        return self.alpha / self.looks


@dataclass
class Evaluation:
    variants: list[dict[str, Any]]
    srm: dict[str, Any]
    leader: str | None
    p_value: float | None
    min_sample_reached: bool
    look: int  # the planned look the data have reached (0 = before the first)
    decision: str | None  # "winner" | "no_difference" | None (keep running)
    winner: str | None
    reasons: list[str] = field(default_factory=list)
    # Each variant against the control (the first): CTR difference and relative lift, 95% CI.
    lift: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def evaluate(variants: Sequence[Variant], rule: DecisionRule) -> Evaluation:
    if len(variants) < 2:
        raise ValueError("an experiment needs at least two variants")
    n = [v.impressions for v in variants]
    x = [min(v.clicks, v.impressions) for v in variants]
    probs, losses = posterior(x, n)
    srm_stat, srm_p = srm_test(n, [v.weight for v in variants])
    srm_flagged = srm_p < rule.srm_alpha
    leader_i = max(range(len(variants)), key=lambda i: (probs[i], -i))
    rates = [xi / ni if ni else 0.0 for xi, ni in zip(x, n, strict=True)]
    raw: list[float] = []
    others = [i for i in range(len(variants)) if i != leader_i]
    for i in others:
        raw.append(two_proportion_z(x[leader_i], n[leader_i], x[i], n[i])[1])
    adjusted = holm(raw)
    adj_by_index = dict(zip(others, adjusted, strict=True))
    rows = []
    for i, v in enumerate(variants):
        lo, hi = wilson_interval(x[i], n[i])
        rows.append(
            {
                "copy_id": v.copy_id,
                "impressions": n[i],
                "clicks": x[i],
                "ctr": rates[i],
                "ctr_interval": [lo, hi],
                "orders": v.orders,
                "cvr": v.orders / x[i] if x[i] else 0.0,
                "probability_best": probs[i],
                "expected_loss": losses[i],
                "p_value_vs_leader": adj_by_index.get(i),
            }
        )
    p_value = max(adjusted) if adjusted else None
    look = min(min(n) // rule.min_sample, rule.looks) if rule.min_sample > 0 else rule.looks
    reached = look >= 1
    reasons: list[str] = []
    if not reached:
        reasons.append(f"not every variant has {rule.min_sample} impressions yet")
    if srm_flagged:
        reasons.append(f"sample ratio mismatch (p = {srm_p:.2g}): the split is broken")
    if probs[leader_i] < rule.probability_threshold:
        reasons.append(
            f"probability to be best {probs[leader_i]:.3f} < {rule.probability_threshold}"
        )
    if rates[leader_i] > 0 and losses[leader_i] > rule.loss_threshold * rates[leader_i]:
        reasons.append("expected loss of the leader above the threshold")
    if p_value is None or p_value >= rule.alpha_per_look:
        reasons.append(
            f"leader vs the rest not significant after Holm (p = {p_value}, "
            f"needs < {rule.alpha_per_look:.4g} at each of {rule.looks} looks)"
        )
    if any(rates[leader_i] <= rates[i] for i in others):
        reasons.append("the leader's observed rate is not above every other variant's")
    decision: str | None = None
    winner = None
    if not reasons:
        decision, winner = "winner", variants[leader_i].copy_id
    elif look >= rule.looks and not srm_flagged:
        decision = "no_difference"
    lifts = []
    for i in range(1, len(variants)):
        li = lift_interval(x[0], n[0], x[i], n[i])
        if li is None:
            continue
        lifts.append(
            {
                "copy_id": variants[i].copy_id,
                "control_copy_id": variants[0].copy_id,
                "ctr_diff": li.diff,
                "ctr_diff_interval": list(li.diff_interval),
                "relative_lift": li.relative,
                "relative_lift_interval": list(li.relative_interval)
                if li.relative_interval
                else None,
                "confidence": li.confidence,
            }
        )
    return Evaluation(
        lift=lifts,
        variants=rows,
        srm={"chi2": srm_stat, "p_value": srm_p, "flagged": srm_flagged},
        leader=variants[leader_i].copy_id,
        p_value=p_value,
        min_sample_reached=reached,
        look=look,
        decision=decision,
        winner=winner,
        reasons=reasons,
    )
