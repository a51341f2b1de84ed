"""Multi-dimensional root cause localisation over leaf rows (dimension values, real, predict).

The method (docs/diagnosis.md has the survey and the reasons): leaves are split into normal and
abnormal by their relative deviation against a threshold set from the noise itself (a robust
scale of all leaves' deviations, as RiskLoc and Squeeze do); every element of every cuboid up to
`max_order` dimensions is then scored at once with numpy group-bys; an element is a candidate when
its leaves are almost all abnormal (purity, HotSpot's and RiskLoc's idea that a root cause's
descendants all deviate); a greedy cover takes the candidate that explains the most deviation,
the most general (fewest dimensions) first on ties, removes its leaves and repeats. A set that
would cover most of the leaves is no cause at all: the change is spread evenly.

A ratio KPI (num / den per leaf) is reduced to an additive one: a leaf's expected numerator is its
real denominator times its predicted rate, so only a moved *rate* deviates, never a moved volume.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from services.diagnosis.engine.errors import InputError

Verdict = Literal["causes", "no_single_cause", "no_change"]


@dataclass(frozen=True)
class RcaConfig:
    max_order: int = 3
    # A leaf is abnormal when |deviation| > max(min_deviation, k_noise * robust noise scale).
    k_noise: float = 3.5
    min_deviation: float = 0.05
    # Share of an element's (non-empty) leaves that must be abnormal.
    purity: float = 0.8
    # A set covering at least this share of the leaves is "spread evenly", not a cause.
    spread_share: float = 0.75
    max_elements: int = 10


@dataclass(frozen=True)
class RootCause:
    element: dict[str, str]
    real: float
    predict: float
    change: float  # real - predict over the element's leaves
    share_of_change: float  # of the total real - predict
    leaves: int


@dataclass(frozen=True)
class RcaResult:
    verdict: Verdict
    causes: list[RootCause] = field(default_factory=list)
    total_real: float = 0.0
    total_predict: float = 0.0
    threshold: float = 0.0

    @property
    def elements(self) -> list[dict[str, str]]:
        return [c.element for c in self.causes]


@dataclass(frozen=True)
class Leaves:
    """Leaf table in columnar form: codes per dimension plus real and predict arrays."""

    dimensions: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]  # per dimension, code -> value
    codes: npt.NDArray[np.int64]  # shape (n, d)
    real: npt.NDArray[np.float64]
    predict: npt.NDArray[np.float64]


def leaves_from_rows(
    dimensions: Sequence[str],
    rows: Sequence[Mapping[str, object]],
    *,
    ratio: bool = False,
    row_name: str = "row",
    first: int = 1,
) -> Leaves:
    """Validate rows ({dim: value, real, predict} or the four ratio columns) into Leaves."""
    if not dimensions:
        raise InputError("at least one dimension column is needed beside real and predict")
    if not rows:
        raise InputError("no leaf rows")
    cols = ("real_num", "real_den", "predict_num", "predict_den") if ratio else ("real", "predict")
    n = len(rows)
    nums = np.empty((len(cols), n), dtype=np.float64)
    keys: list[tuple[str, ...]] = []
    for i, row in enumerate(rows):
        for j, c in enumerate(cols):
            if c not in row:
                raise InputError(f"{row_name} {i + first}: missing column {c!r}")
            nums[j, i] = _number(row[c], c, f"{row_name} {i + first}")
        keys.append(tuple(str(row.get(d, "")) for d in dimensions))
    if len(set(keys)) != n:
        seen: set[tuple[str, ...]] = set()
        for i, k in enumerate(keys):
            if k in seen:
                dup = dict(zip(dimensions, k, strict=True))
                raise InputError(f"{row_name} {i + first}: duplicate leaf {dup}")
            seen.add(k)
    if ratio:
        rn, rd, pn, pd = nums
        if (rd < 0).any() or (pd < 0).any():
            raise InputError("denominators must not be negative")
        total_rate = pn.sum() / pd.sum() if pd.sum() > 0 else 0.0
        rate = np.divide(pn, pd, out=np.full(n, total_rate), where=pd > 0)
        real, predict = rn, rd * rate
    else:
        real, predict = nums
    return _encode(tuple(dimensions), keys, real, predict)


def _number(v: object, col: str, where: str) -> float:
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{where}: {col} is not a number: {v!r}") from None
    if not math.isfinite(x):
        raise InputError(f"{where}: {col} is not a finite number: {v!r}")
    return x


def _encode(
    dims: tuple[str, ...],
    keys: list[tuple[str, ...]],
    real: npt.NDArray[np.float64],
    predict: npt.NDArray[np.float64],
) -> Leaves:
    n, d = len(keys), len(dims)
    codes = np.empty((n, d), dtype=np.int64)
    values = []
    arr = np.array(keys, dtype=object).reshape(n, d)
    for j in range(d):
        uniq, inv = np.unique(arr[:, j].astype(str), return_inverse=True)
        codes[:, j] = inv
        values.append(tuple(str(u) for u in uniq))
    return Leaves(dims, tuple(values), codes, real, predict)


def leaves_from_arrays(
    dimensions: Sequence[str],
    values: Sequence[Sequence[str]],
    codes: npt.NDArray[np.int64],
    real: npt.NDArray[np.float64],
    predict: npt.NDArray[np.float64],
) -> Leaves:
    """Already-encoded leaves (the fast path for generators and the service)."""
    return Leaves(
        tuple(dimensions),
        tuple(tuple(v) for v in values),
        np.asarray(codes, dtype=np.int64),
        np.asarray(real, dtype=np.float64),
        np.asarray(predict, dtype=np.float64),
    )


def localize(leaves: Leaves, config: RcaConfig | None = None) -> RcaResult:
    """The root-cause set of a change, most likely first (see the module docstring)."""
    cfg = config or RcaConfig()
    real, predict, codes = leaves.real, leaves.predict, leaves.codes
    n, d = codes.shape
    total_r, total_p = float(real.sum()), float(predict.sum())
    diff = real - predict
    nonempty = (np.abs(real) + np.abs(predict)) > 0
    scale_base = np.maximum(np.abs(predict), 1e-12)
    dev = np.where(nonempty, diff / scale_base, 0.0)
    # Leaves with predict 0 and real > 0 are abnormal whatever the threshold.
    dev = np.where((np.abs(predict) < 1e-12) & nonempty, np.sign(diff) * 1e6, dev)
    threshold = max(cfg.min_deviation, cfg.k_noise * noise_scale(dev[nonempty], cfg.min_deviation))
    abnormal = nonempty & (np.abs(dev) > threshold)
    if not abnormal.any():
        return RcaResult("no_change", [], total_r, total_p, threshold)

    cards = [len(v) for v in leaves.values]
    cuboids = [
        c for k in range(1, min(cfg.max_order, d) + 1) for c in itertools.combinations(range(d), k)
    ]
    flat: dict[tuple[int, ...], npt.NDArray[np.int64]] = {}
    for cub in cuboids:
        key = np.zeros(n, dtype=np.int64)
        for j in cub:
            key = key * cards[j] + codes[:, j]
        flat[cub] = key
    absdiff = np.abs(diff)
    remaining = np.ones(n, dtype=bool)
    chosen: list[tuple[tuple[int, ...], int]] = []
    total_abs = float(absdiff[abnormal].sum()) or 1.0
    while len(chosen) < cfg.max_elements:
        best: tuple[float, int, tuple[int, ...], int] | None = None
        live = remaining & nonempty
        ab_live = abnormal & remaining
        if not ab_live.any():
            break
        for cub in cuboids:
            key = flat[cub]
            size = int(np.prod([cards[j] for j in cub]))
            cnt = np.bincount(key, weights=live, minlength=size)
            ab = np.bincount(key, weights=ab_live, minlength=size)
            pos = np.bincount(key, weights=ab_live & (diff > 0), minlength=size)
            expl = np.bincount(key, weights=np.where(ab_live, absdiff, 0.0), minlength=size)
            ok = (cnt > 0) & (ab >= cfg.purity * cnt)
            # One direction per element: a cause moves its leaves the same way.
            ok &= (pos >= cfg.purity * ab) | ((ab - pos) >= cfg.purity * ab)
            # A lone leaf over the threshold is noise unless it is far over it.
            strong = np.bincount(
                key, weights=ab_live & (np.abs(dev) > 2 * threshold), minlength=size
            )
            ok &= (ab >= 2) | (strong >= 1)
            if not ok.any():
                continue
            cand = np.flatnonzero(ok)
            i = int(cand[np.argmax(expl[cand])])
            score = float(expl[i])
            # Prefer general elements: a parent that explains as much wins over its children.
            rank = (score * (1 - 1e-9 * len(cub)), -len(cub), cub, i)
            if best is None or rank[:2] > best[:2]:
                best = rank
        if best is None or best[0] < 0.01 * total_abs:
            break
        _, _, cub, i = best
        chosen.append((cub, i))
        remaining &= flat[cub] != i

    covered = ~remaining
    if chosen and covered[nonempty].mean() >= cfg.spread_share:
        return RcaResult("no_single_cause", [], total_r, total_p, threshold)
    if not chosen:
        return RcaResult("no_single_cause", [], total_r, total_p, threshold)
    total_change = total_r - total_p
    causes = []
    for cub, i in chosen:
        mask = flat[cub] == i
        el_codes = _decode(i, [cards[j] for j in cub])
        element = {
            leaves.dimensions[j]: leaves.values[j][c] for j, c in zip(cub, el_codes, strict=True)
        }
        r, p = float(real[mask].sum()), float(predict[mask].sum())
        share = (r - p) / total_change if abs(total_change) > 1e-12 else 0.0
        causes.append(RootCause(element, r, p, r - p, share, int(mask.sum())))
    causes.sort(key=lambda c: -abs(c.change))
    return RcaResult("causes", causes, total_r, total_p, threshold)


def noise_scale(dev: npt.NDArray[np.float64], floor: float) -> float:
    """The spread of the normal leaves' deviations around zero.

    A plain MAD is ruined when the causes hold half the leaves (two values of a 5-valued
    dimension); the normal leaves are instead the dense cluster at zero, so the scale is read from
    the leaves inside a window around zero that starts at 3 x floor and follows 3 x the scale
    (a median of |z| truncated at 3 is 0.672 of the scale).
    """
    a = np.abs(dev)
    if a.size == 0:
        return floor / 4
    s = floor
    for _ in range(8):
        cap = 3 * max(floor, s)
        inside = a[a <= cap]
        if inside.size < max(3, 0.1 * a.size):
            return floor / 4
        new = float(np.median(inside)) / 0.672
        if abs(new - s) < 1e-6:
            break
        s = new
    return s


def _decode(i: int, cards: list[int]) -> list[int]:
    out = []
    for c in reversed(cards):
        out.append(i % c)
        i //= c
    return out[::-1]
