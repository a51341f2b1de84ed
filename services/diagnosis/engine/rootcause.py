"""Multi-dimensional root cause localisation over leaf rows (dimension values, real, predict).

The method (docs/diagnosis.md has the survey, the reasons and the figures on public data):
every element of every cuboid up to `max_order` dimensions is scored at once with numpy
group-bys by how much of the change it explains under the ripple effect (Squeeze): if the
element is the cause, each of its leaves moved by the element's own factor real / predict, so
the gain is the drop of sum |real - expected| over its leaves when their expectation is scaled
by that factor. The gain is volume-weighted by construction: tiny leaves that did not move
cost almost nothing, so an element whose volume moved is kept whole, not split into children.
A greedy cover takes the most general element within a few percent of the best gain, then
lets an ancestor absorb it when the ancestor's other leaves moved its way (at least half its
factor, within noise); an element chosen later that is an ancestor of one chosen earlier
absorbs it too. Saying no: an element must stand beyond noise (its deviation over its own
noise: relative leaf noise read from the dense cluster of leaves around zero, Poisson noise
for counts so a small leaf that jumps by one event does not count), the first at z_first and
each later one at the higher z_element and with a meaningful share of the first one's gain.
A set that would cover most of the leaves is no cause at all: the
change is spread evenly.

A ratio KPI (num / den per leaf) is reduced to an additive one: a leaf's expected numerator is its
real denominator times its predicted rate, so only a moved *rate* deviates, never a moved volume;
its numerators are counts, so their noise is Poisson (over-dispersed by a factor read from the
leaves).
"""

from __future__ import annotations

import dataclasses
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
    # An element is beyond noise when its deviation is z times its own noise (the leaves' noise
    # model summed over its leaves): z_first for the first
    # (the change is already flagged, it needs the best explanation), z_element for each one
    # after it (it must prove itself far beyond chance).
    z_first: float = 5.0
    z_element: float = 10.0
    # Elements within this share of the best gain tie; the most general of them is taken.
    general_tolerance: float = 0.05
    # An ancestor absorbs a chosen element unless its other leaves are significantly below
    # this share of the element's move (on the log scale of the factor), in noise units.
    absorb_share: float = 0.5
    absorb_z: float = 1.0
    # An additional element must explain this share of the first element's gain.
    min_gain_share: float = 0.02
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
    # real and predict are counts (the numerators of a ratio KPI): their noise is Poisson
    counts: bool = False


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
    leaves = _encode(tuple(dimensions), keys, real, predict)
    return dataclasses.replace(leaves, counts=ratio)


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
    return leaves_from_arrays(dimensions, values, codes, real, predict, counts=ratio)


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
    *,
    counts: bool = False,
) -> Leaves:
    """Already-encoded leaves (the fast path for generators and the service)."""
    return Leaves(
        tuple(dimensions),
        tuple(tuple(v) for v in values),
        np.asarray(codes, dtype=np.int64),
        np.asarray(real, dtype=np.float64),
        np.asarray(predict, dtype=np.float64),
        counts,
    )


Cuboid = tuple[int, ...]


@dataclass
class _Search:
    """One localisation's state: the leaves' noise, every cuboid's element ids, and the
    expectation so far (predict, scaled by the factor of each element already chosen)."""

    real: npt.NDArray[np.float64]
    expect: npt.NDArray[np.float64]
    var: npt.NDArray[np.float64]
    remaining: npt.NDArray[np.bool_]
    cards: list[int]
    cuboids: list[Cuboid]
    flat: dict[Cuboid, npt.NDArray[np.int64]]
    sizes: dict[Cuboid, int]

    def element_id(self, cub: Cuboid, codes: Mapping[int, int]) -> int:
        i = 0
        for j in cub:
            i = i * self.cards[j] + codes[j]
        return i

    def element_codes(self, cub: Cuboid, i: int) -> dict[int, int]:
        return dict(zip(cub, _decode(i, [self.cards[j] for j in cub]), strict=True))


def localize(leaves: Leaves, config: RcaConfig | None = None) -> RcaResult:
    """The root-cause set of a change, most likely first (see the module docstring)."""
    cfg = config or RcaConfig()
    real, predict = leaves.real, leaves.predict
    total_r, total_p = float(real.sum()), float(predict.sum())
    nonempty = (np.abs(real) + np.abs(predict)) > 0
    threshold, sigma = _leaf_threshold(real, predict, nonempty, cfg)
    if not (nonempty & (np.abs(_rel_dev(real, predict, nonempty)) > threshold)).any():
        return RcaResult("no_change", [], total_r, total_p, threshold)
    search = _search(leaves, nonempty, sigma, cfg)
    chosen = _cover(search, cfg)
    covered = np.zeros(len(real), dtype=bool)
    for cub, i in chosen:
        covered |= search.flat[cub] == i
    if not chosen or covered[nonempty].mean() >= cfg.spread_share:
        return RcaResult("no_single_cause", [], total_r, total_p, threshold)
    total_change = total_r - total_p
    causes = []
    for cub, i in chosen:
        mask = search.flat[cub] == i
        element = {
            leaves.dimensions[j]: leaves.values[j][c]
            for j, c in search.element_codes(cub, i).items()
        }
        r, p = float(real[mask].sum()), float(predict[mask].sum())
        share = (r - p) / total_change if abs(total_change) > 1e-12 else 0.0
        causes.append(RootCause(element, r, p, r - p, share, int(mask.sum())))
    causes.sort(key=lambda c: -abs(c.change))
    return RcaResult("causes", causes, total_r, total_p, threshold)


def _rel_dev(
    real: npt.NDArray[np.float64], predict: npt.NDArray[np.float64], nonempty: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    diff = real - predict
    dev = np.where(nonempty, diff / np.maximum(np.abs(predict), 1e-12), 0.0)
    # Leaves with predict 0 and real > 0 are abnormal whatever the threshold.
    return np.where((np.abs(predict) < 1e-12) & nonempty, np.sign(diff) * 1e6, dev)


def _leaf_threshold(
    real: npt.NDArray[np.float64],
    predict: npt.NDArray[np.float64],
    nonempty: npt.NDArray[np.bool_],
    cfg: RcaConfig,
) -> tuple[float, float]:
    """The relative deviation a leaf must pass to have moved at all, and the leaf noise."""
    sigma = noise_scale(_rel_dev(real, predict, nonempty)[nonempty], cfg.min_deviation)
    return max(cfg.min_deviation, cfg.k_noise * sigma), sigma


def _search(
    leaves: Leaves, nonempty: npt.NDArray[np.bool_], sigma: float, cfg: RcaConfig
) -> _Search:
    real, predict, codes = leaves.real, leaves.predict, leaves.codes
    d = codes.shape[1]
    expect = np.maximum(predict, 0.0).astype(np.float64)
    if leaves.counts:
        # Poisson, over-dispersed by the leaves' own median squared z (0.455 for chi2(1)): a
        # small leaf that jumps by one event stays inside its noise.
        base = np.maximum(expect, 0.5)
        z2 = (real - expect) ** 2 / base
        phi = max(1.0, float(np.median(z2[nonempty])) / 0.455) if nonempty.any() else 1.0
        var = phi * base
    else:
        floor = 0.1 * float(np.median(expect[expect > 0])) if (expect > 0).any() else 1.0
        # noise-free leaves still get a sliver of noise, so z stays finite and ordered
        rel = max(sigma, 0.01 * cfg.min_deviation)
        var = rel * rel * (expect * expect + floor * floor)
    cards = [len(v) for v in leaves.values]
    cuboids = [
        c for k in range(1, min(cfg.max_order, d) + 1) for c in itertools.combinations(range(d), k)
    ]
    flat: dict[Cuboid, npt.NDArray[np.int64]] = {}
    for cub in cuboids:
        # mixed-radix ids, each cuboid built from its prefix (combinations come prefix first)
        prefix = flat.get(cub[:-1])
        col = np.ascontiguousarray(codes[:, cub[-1]])
        flat[cub] = col if prefix is None else prefix * cards[cub[-1]] + col
    sizes = {cub: int(np.prod([cards[j] for j in cub])) for cub in cuboids}
    return _Search(real, expect, var, nonempty.copy(), cards, cuboids, flat, sizes)


def _best_element(
    s: _Search, cfg: RcaConfig, z_min: float
) -> tuple[float, Cuboid, int, float] | None:
    """The element that explains the most change beyond noise, the most general on near ties:
    (gain, cuboid, element id, its factor real / expected)."""
    idx = np.flatnonzero(s.remaining)
    r, e, v = s.real[idx], s.expect[idx], s.var[idx]
    res0 = np.abs(r - e)
    cands: list[tuple[float, Cuboid, int, float]] = []
    for cub in s.cuboids:
        key, size = s.flat[cub][idx], s.sizes[cub]
        sr = np.bincount(key, r, size)
        se = np.bincount(key, e, size)
        sv = np.bincount(key, v, size)
        z = np.divide(sr - se, np.sqrt(sv), out=np.zeros(size), where=sv > 0)
        beyond = (se > 0) & (np.abs(z) >= z_min)
        if not beyond.any():
            continue
        # the gain only for the elements beyond noise, over their leaves alone (the speed)
        sub = np.flatnonzero(beyond[key])
        ks = key[sub]
        k = np.divide(sr, se, out=np.ones(size), where=beyond)
        gain = np.bincount(ks, res0[sub] - np.abs(r[sub] - e[sub] * k[ks]), size)
        ok = np.flatnonzero(beyond & (gain > 0))
        if ok.size:
            i = int(ok[np.argmax(gain[ok])])
            cands.append((float(gain[i]), cub, i, float(k[i])))
    if not cands:
        return None
    top = max(c[0] for c in cands)
    near = [c for c in cands if c[0] >= (1 - cfg.general_tolerance) * top]
    return min(near, key=lambda c: (len(c[1]), -c[0]))


def _absorb(
    s: _Search, cfg: RcaConfig, cub: Cuboid, i: int, k: float
) -> tuple[Cuboid, int, npt.NDArray[np.bool_]]:
    """The most general ancestor whose other leaves moved the element's way (at least
    `absorb_share` of its factor on the log scale, within noise), else the element itself.
    The test weighs volume, not leaves: tiny leaves that did not move cannot split a cause."""
    mine = s.remaining & (s.flat[cub] == i)
    codes = s.element_codes(cub, i)
    target = math.exp(cfg.absorb_share * math.log(min(max(k, 0.1), 10.0)))
    sign = 1.0 if k >= 1 else -1.0
    for order in range(1, len(cub)):
        best: tuple[float, Cuboid, int, npt.NDArray[np.bool_]] | None = None
        for sub in itertools.combinations(cub, order):
            sid = s.element_id(sub, codes)
            anc = s.remaining & (s.flat[sub] == sid)
            other = anc & ~mine
            rc, ec = float(s.real[other].sum()), float(s.expect[other].sum())
            sd = math.sqrt(float(s.var[other].sum()))
            margin = sign * (rc - target * ec) + cfg.absorb_z * sd
            if margin >= -1e-9 and (best is None or margin > best[0]):
                best = (margin, sub, sid, anc)
        if best is not None:
            return best[1], best[2], best[3]
    return cub, i, mine


def _cover(s: _Search, cfg: RcaConfig) -> list[tuple[Cuboid, int]]:
    """Greedy cover: the best element, widened to its ancestor if that absorbs it, its leaves'
    expectation scaled by its factor; stop when the next explains too little."""
    chosen: list[tuple[Cuboid, int]] = []
    first = 0.0
    while len(chosen) < cfg.max_elements and s.remaining.any():
        best = _best_element(s, cfg, cfg.z_element if chosen else cfg.z_first)
        if best is None:
            break
        gain, cub, i, k = best
        if chosen and gain < cfg.min_gain_share * first:
            break
        first = first or gain
        cub, i, mask = _absorb(s, cfg, cub, i, k)
        e = float(s.expect[mask].sum())
        if e > 0:
            s.expect[mask] *= float(s.real[mask].sum()) / e
        s.remaining &= ~mask
        chosen.append((cub, i))
    # an element chosen later that is an ancestor of one chosen earlier absorbs it
    items = [set(s.element_codes(cub, i).items()) for cub, i in chosen]
    return [c for c, it in zip(chosen, items, strict=True) if not any(o < it for o in items)]


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
