"""Multi-dimensional root cause localisation over leaf rows (dimension values, real, predict).

The method (docs/diagnosis.md has the survey and the reasons), after RiskLoc with the ripple
effect of HotSpot and Squeeze as the purity test: the leaf noise is read from the dense cluster
of leaves around zero deviation; every element of every cuboid up to `max_order` dimensions is
scored at once with numpy group-bys; an element is a candidate when its aggregate deviation is
beyond its own noise and it is pure (almost all its leaves moved its way by at least half as
much); a greedy cover takes the candidate that explains the most change, the most general
(fewest dimensions) first on ties, removes its leaves and repeats. A set that would cover most
of the leaves is no cause at all: the change is spread evenly.

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
    return leaves_from_columns(dimensions, keys, nums, ratio=ratio)


def leaves_from_columns(
    dimensions: Sequence[str],
    keys: list[tuple[str, ...]],
    nums: npt.NDArray[np.float64],
    *,
    ratio: bool = False,
) -> Leaves:
    """Leaves from distinct, already-valid keys and their numbers: shape (2, n) real and
    predict, or (4, n) real_num, real_den, predict_num, predict_den (the service's fast path)."""
    real, predict = _real_predict(nums, ratio)
    return _encode(tuple(dimensions), keys, real, predict)


def leaves_from_codes(
    dimensions: Sequence[str],
    values: Sequence[Sequence[str]],
    codes: npt.NDArray[np.int64],
    nums: npt.NDArray[np.float64],
    *,
    ratio: bool = False,
) -> Leaves:
    """Leaves already encoded (codes into each dimension's sorted values, distinct rows) and
    their numbers as for `leaves_from_columns`: the diagnosis engine's columnar path."""
    real, predict = _real_predict(nums, ratio)
    return leaves_from_arrays(dimensions, values, codes, real, predict)


def _real_predict(
    nums: npt.NDArray[np.float64], ratio: bool
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if not ratio:
        real, predict = nums
        return real, predict
    rn, rd, pn, pd = nums
    if (rd < 0).any() or (pd < 0).any():
        raise InputError("denominators must not be negative")
    total_rate = pn.sum() / pd.sum() if pd.sum() > 0 else 0.0
    rate = np.divide(pn, pd, out=np.full(len(rn), total_rate), where=pd > 0)
    return rn, rd * rate


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
    cols = [np.ascontiguousarray(codes[:, j]) for j in range(d)]
    # An element's id within its cuboid: mixed-radix over the cuboid's dimensions, each built
    # from its prefix cuboid (combinations come prefix first).
    flat: dict[tuple[int, ...], npt.NDArray[np.int64]] = {}
    for cub in cuboids:
        prefix = flat.get(cub[:-1])
        flat[cub] = cols[cub[-1]] if prefix is None else prefix * cards[cub[-1]] + cols[cub[-1]]
    absdiff = np.abs(diff)
    sigma = threshold / cfg.k_noise
    remaining = np.ones(n, dtype=bool)
    chosen: list[tuple[tuple[int, ...], int]] = []
    total_abs = float(absdiff[abnormal].sum()) or 1.0
    sizes = {cub: int(np.prod([cards[j] for j in cub])) for cub in cuboids}
    live0 = nonempty.astype(np.float64)
    # Per leaf: [live, real, predict, predict^2, far over the threshold]; summed per element of
    # every cuboid once, then the chosen elements' leaves are subtracted.
    weights = np.stack(
        [
            live0,
            real * live0,
            predict * live0,
            predict * predict * live0,
            abnormal & (np.abs(dev) > 2 * threshold),
        ]
    ).astype(np.float64)
    top_order = max(len(c) for c in cuboids)
    tops = [c for c in cuboids if len(c) == top_order]
    parent = {c: next(t for t in tops if set(c) <= set(t)) for c in cuboids}
    stats = {
        cub: np.stack([np.bincount(flat[cub], weights=w, minlength=sizes[cub]) for w in weights])
        for cub in tops
    }

    def derive() -> None:
        # Lower cuboids are sums of a top cuboid's cells over the dimensions they leave out.
        for c in cuboids:
            t = parent[c]
            if t == c:
                continue
            cube = stats[t].reshape(len(weights), *[cards[j] for j in t])
            axes = tuple(1 + k for k, j in enumerate(t) if j not in c)
            stats[c] = cube.sum(axis=axes).reshape(len(weights), sizes[c])

    derive()
    while len(chosen) < cfg.max_elements and (abnormal & remaining).any():
        best: tuple[float, int, tuple[int, ...], int] | None = None
        for cub in cuboids:
            key, size = flat[cub], sizes[cub]
            cnt, sr, sp, sp2, strong = stats[cub]
            with np.errstate(divide="ignore", invalid="ignore"):
                edev = np.where(sp > 0, (sr - sp) / sp, np.sign(sr - sp) * 1e6)
                # the element's own noise: leaf noise sigma over its effective number of leaves
                se = np.where(sp > 0, sigma * np.sqrt(sp2) / sp, 0.0)
            sig = (np.abs(edev) >= np.maximum(cfg.min_deviation, cfg.k_noise * se)) & (cnt > 0.5)
            sig &= (cnt >= 2) | (strong >= 1)
            if not sig.any():
                continue
            # Purity against the element's own move: its leaves moved the same way, by at least
            # half as much (a parent diluted by normal siblings fails; the noise cannot pass).
            idx = np.flatnonzero(sig[key] & remaining & nonempty)
            k_idx = key[idx]
            e = edev[k_idx]
            agree = (np.sign(e) * dev[idx]) >= 0.5 * np.abs(e)
            pure = np.bincount(k_idx, weights=agree, minlength=size) >= cfg.purity * cnt
            ok = sig & pure
            if not ok.any():
                continue
            expl = np.abs(sr - sp)
            cand = np.flatnonzero(ok)
            i = int(cand[np.argmax(expl[cand])])
            # Prefer general elements: a parent that explains as much wins over its children.
            rank = (float(expl[i]) * (1 - 1e-9 * len(cub)), -len(cub), cub, i)
            if best is None or rank[:2] > best[:2]:
                best = rank
        if best is None or best[0] < 0.01 * total_abs:
            break
        _, _, cub, i = best
        chosen.append((cub, i))
        newly = np.flatnonzero(remaining & (flat[cub] == i))
        remaining[newly] = False
        w_new = weights[:, newly]
        for c in tops:
            keys = flat[c][newly]
            for row in range(len(weights)):
                stats[c][row] -= np.bincount(keys, weights=w_new[row], minlength=sizes[c])
        derive()

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
    the leaves inside a window around zero that starts at 2 x floor and follows 2 x the scale
    (the median of |z| truncated at 2 is 0.6386 of the scale). A narrow window keeps causes of
    25% out of the estimate even at 10% noise.
    """
    a = np.abs(dev)
    if a.size == 0:
        return floor / 4
    s = floor
    for _ in range(8):
        cap = 2 * max(floor, s)
        inside = a[a <= cap]
        if inside.size < max(3, 0.1 * a.size):
            return floor / 4
        new = float(np.median(inside)) / 0.6386
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
