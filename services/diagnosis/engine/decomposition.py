"""Exact, order-free decompositions of a change.

- A product (gmv = visitors x cvr x aov, or the funnel impressions x ctr x visit rate x cvr x
  aov): the log-mean Divisia index (LMDI-I, Ang 2004) gives each factor
  L(V1, V0) x ln(x1 / x0) with L the logarithmic mean; the shares add up to V1 - V0 exactly and
  do not depend on the factors' order. A zero factor has no logarithm: then the Shapley value
  over the factors' orderings is used, also exact and order-free.
- A rate over segments (store cvr over channels): the change splits per segment into a mix
  effect (traffic moved to a better or worse channel) and a rate effect (the channel's own rate
  moved), with midpoint weights, which is exact and symmetric.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.diagnosis.engine.errors import InputError

GMV_FACTORS: tuple[str, ...] = ("visitors", "cvr", "aov")
FUNNEL_FACTORS: tuple[str, ...] = ("impressions", "ctr", "visit_rate", "cvr", "aov")


@dataclass(frozen=True)
class Decomposition:
    before: float
    after: float
    contributions: dict[str, float]  # sums to after - before
    method: str  # "lmdi" or "shapley"

    @property
    def change(self) -> float:
        return self.after - self.before

    def shares(self) -> dict[str, float]:
        """Each factor's share of the change (sum 1); zeros when nothing changed."""
        d = self.change
        return {k: (v / d if d else 0.0) for k, v in self.contributions.items()}


def _logmean(a: float, b: float) -> float:
    if a == b:
        return a
    return (a - b) / (math.log(a) - math.log(b))


def decompose_product(
    before: Mapping[str, float], after: Mapping[str, float], factors: Sequence[str] | None = None
) -> Decomposition:
    names = list(factors or before.keys())
    if not names:
        raise InputError("no factors to decompose")
    for n in names:
        if n not in before or n not in after:
            raise InputError(f"factor {n!r} is missing")
    x0 = [float(before[n]) for n in names]
    x1 = [float(after[n]) for n in names]
    v0, v1 = math.prod(x0), math.prod(x1)
    if all(a > 0 for a in x0 + x1):
        w = _logmean(v1, v0)
        contrib = {n: w * math.log(b / a) for n, a, b in zip(names, x0, x1, strict=True)}
        return Decomposition(v0, v1, contrib, "lmdi")
    return Decomposition(v0, v1, _shapley(names, x0, x1), "shapley")


def _shapley(names: list[str], x0: list[float], x1: list[float]) -> dict[str, float]:
    k = len(names)
    if k > 8:
        raise InputError("Shapley decomposition is limited to 8 factors")
    out = dict.fromkeys(names, 0.0)
    perms = list(itertools.permutations(range(k)))
    for order in perms:
        cur = list(x0)
        v = math.prod(cur)
        for i in order:
            cur[i] = x1[i]
            nv = math.prod(cur)
            out[names[i]] += nv - v
            v = nv
    return {n: c / len(perms) for n, c in out.items()}


def gmv_factors(visitors: float, buyers: float, gmv: float) -> dict[str, float]:
    """visitors x cvr x aov = gmv (cvr = buyers / visitors, aov = gmv / buyers)."""
    cvr = buyers / visitors if visitors else 0.0
    aov = gmv / buyers if buyers else 0.0
    return {"visitors": visitors, "cvr": cvr, "aov": aov}


def funnel_factors(
    impressions: float, clicks: float, visitors: float, buyers: float, gmv: float
) -> dict[str, float]:
    """impressions x ctr x visit_rate x cvr x aov = gmv, down the funnel."""
    return {
        "impressions": impressions,
        "ctr": clicks / impressions if impressions else 0.0,
        "visit_rate": visitors / clicks if clicks else 0.0,
        "cvr": buyers / visitors if visitors else 0.0,
        "aov": gmv / buyers if buyers else 0.0,
    }


def decompose_gmv(before: Mapping[str, float], after: Mapping[str, float]) -> Decomposition:
    """gmv = visitors x cvr x aov from base metrics {visitors, buyers, gmv}."""
    b = gmv_factors(before["visitors"], before["buyers"], before["gmv"])
    a = gmv_factors(after["visitors"], after["buyers"], after["gmv"])
    return decompose_product(b, a, GMV_FACTORS)


@dataclass(frozen=True)
class SegmentEffect:
    segment: str
    mix: float  # the part due to the segment's share of the denominator moving
    rate: float  # the part due to the segment's own rate moving
    share_before: float
    share_after: float
    rate_before: float
    rate_after: float


@dataclass(frozen=True)
class MixRate:
    before: float
    after: float
    segments: list[SegmentEffect]

    @property
    def mix(self) -> float:
        return sum(s.mix for s in self.segments)

    @property
    def rate(self) -> float:
        return sum(s.rate for s in self.segments)

    @property
    def mix_share(self) -> float:
        """Share of the change due to mix; 0 when nothing changed."""
        d = self.after - self.before
        return self.mix / d if d else 0.0


def mix_rate(
    before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]]
) -> MixRate:
    """Split the change of sum(num) / sum(den) over segments {name: (num, den)}.

    R = sum_s w_s r_s with w the den share and r the segment's rate;
    dR = sum_s [(w1 - w0)(r0 + r1)/2 + (r1 - r0)(w0 + w1)/2], exactly.
    """
    names = sorted(set(before) | set(after))
    d0 = sum(before.get(n, (0.0, 0.0))[1] for n in names)
    d1 = sum(after.get(n, (0.0, 0.0))[1] for n in names)
    if d0 <= 0 or d1 <= 0:
        raise InputError("the denominator is zero before or after")
    n0 = sum(before.get(n, (0.0, 0.0))[0] for n in names)
    n1 = sum(after.get(n, (0.0, 0.0))[0] for n in names)
    segs = []
    for n in names:
        a0, b0 = before.get(n, (0.0, 0.0))
        a1, b1 = after.get(n, (0.0, 0.0))
        w0, w1 = b0 / d0, b1 / d1
        r0 = a0 / b0 if b0 else (a1 / b1 if b1 else 0.0)
        r1 = a1 / b1 if b1 else r0
        segs.append(
            SegmentEffect(n, (w1 - w0) * (r0 + r1) / 2, (r1 - r0) * (w0 + w1) / 2, w0, w1, r0, r1)
        )
    return MixRate(n0 / d0, n1 / d1, segs)
