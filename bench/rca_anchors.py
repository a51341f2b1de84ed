"""Published root-cause methods, written here from their papers for the public-data bench (not
from their authors' code, so the figures are our reading of each method): RiskLoc (Kalander,
2022), Squeeze (Li et al., ISSRE 2019) and the simple baseline of the RS set, the single
attribute value whose numerator moved most. Each takes the same Leaves as the engine."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from services.diagnosis.engine.rootcause import Leaves

Element = dict[str, str]
Array = npt.NDArray[np.float64]
Cuboid = tuple[int, ...]


def _cuboids(leaves: Leaves, max_order: int = 3) -> dict[Cuboid, tuple[npt.NDArray[np.int64], int]]:
    """Every cuboid's element id per leaf (mixed radix) and its number of elements."""
    cards = [len(v) for v in leaves.values]
    out: dict[Cuboid, tuple[npt.NDArray[np.int64], int]] = {}
    d = leaves.codes.shape[1]
    for k in range(1, min(max_order, d) + 1):
        for cub in itertools.combinations(range(d), k):
            key = np.zeros(len(leaves.real), dtype=np.int64)
            size = 1
            for j in cub:
                key = key * cards[j] + leaves.codes[:, j]
                size *= cards[j]
            out[cub] = (key, size)
    return out


def _element(leaves: Leaves, cub: Cuboid, i: int) -> Element:
    cards = [len(leaves.values[j]) for j in cub]
    codes = []
    for c in reversed(cards):
        codes.append(i % c)
        i //= c
    return {
        leaves.dimensions[j]: leaves.values[j][c] for j, c in zip(cub, codes[::-1], strict=True)
    }


def _deviation(real: Array, predict: Array) -> Array:
    """Squeeze's deviation score 2 (v - f) / (v + f), in [-2, 2]."""
    s = real + predict
    return np.divide(2 * (real - predict), s, out=np.zeros_like(s), where=s > 0)


def riskloc(
    leaves: Leaves, risk_threshold: float = 0.5, pep: float = 0.02, max_elements: int = 10
) -> list[Element]:
    """RiskLoc: leaves are split into abnormal and normal at a cutoff read from the other side
    of the deviation distribution (the normal leaves are symmetric around zero); each leaf
    weighs its distance to the cutoff; an element's risk is the weighted share of its leaves
    that are abnormal. Over every layer, the riskiest element (the more general on ties) with risk
    >= 0.5 and explanatory power >= pep is taken, its leaves removed, and the search repeats."""
    real, predict = leaves.real, leaves.predict
    cubs = _cuboids(leaves)
    total = float(real.sum() - predict.sum())
    if abs(total) < 1e-12:
        return []
    sign = 1.0 if total > 0 else -1.0
    dev = sign * _deviation(real, predict)
    live = (real + predict) > 0
    # leaves that appear from or vanish to zero sit at +-2 whatever the noise: the cutoff is read
    # from the leaves seen on both sides
    both = (real > 0) & (predict > 0)
    cutoff = max(float(-dev[both].min()), 1e-6) if both.any() else 1.0
    abnormal = live & (dev > cutoff)
    weight = np.abs(dev - cutoff) * live
    remaining = live.copy()
    chosen: list[Element] = []
    while abnormal[remaining].any() and len(chosen) < max_elements:
        w = weight * remaining
        diff = (real - predict) * remaining
        found: tuple[float, float, int, Cuboid, int] | None = None
        for cub, (key, size) in cubs.items():
            wa = np.bincount(key, w * abnormal, size)
            wt = np.bincount(key, w, size)
            risk = np.divide(wa, wt, out=np.zeros(size), where=wt > 0)
            ep = np.bincount(key, diff, size) / total
            ok = np.flatnonzero((risk >= risk_threshold) & (ep >= pep))
            if ok.size:
                i = int(ok[np.argmax(risk[ok] + 1e-6 * ep[ok])])
                # the riskiest element over every layer, the more general on ties
                rank = (round(float(risk[i]), 6), float(ep[i]), -len(cub), cub, i)
                if found is None or rank[:3] > found[:3]:
                    found = (rank[0], rank[1], rank[2], cub, i)
        if found is None:
            break
        _, _, _, cub, i = found
        chosen.append(_element(leaves, cub, i))
        remaining &= cubs[cub][0] != i
    return chosen


def _clusters(dev: Array) -> list[npt.NDArray[np.int64]]:
    """Squeeze's clustering: the density of the abnormal leaves' deviation scores (a Gaussian
    kernel, Silverman's bandwidth), split at its local minima."""
    if dev.size < 3 or float(np.ptp(dev)) < 1e-9:
        return [np.arange(dev.size)]
    bw = max(1.06 * float(np.std(dev)) * dev.size ** (-0.2), 1e-3)
    grid = np.linspace(dev.min() - bw, dev.max() + bw, 256)
    sample = dev if dev.size <= 2000 else np.random.default_rng(0).choice(dev, 2000)
    dens = np.exp(-0.5 * ((grid[:, None] - sample[None, :]) / bw) ** 2).sum(axis=1)
    minima = grid[1:-1][(dens[1:-1] < dens[:-2]) & (dens[1:-1] <= dens[2:])]
    label = np.searchsorted(minima, dev)
    return [np.flatnonzero(label == c) for c in np.unique(label)]


def squeeze(leaves: Leaves, max_candidates: int = 5) -> list[Element]:
    """Squeeze: filter the normal leaves, cluster the rest by deviation score (one cluster per
    root cause under the ripple effect), and per cluster search every cuboid for the top-k
    elements by descent score (share of the element's leaves in the cluster) with the best
    generalized potential score; the best cuboid wins, fewer elements and dimensions on ties."""
    real, predict = leaves.real, leaves.predict
    live = (real + predict) > 0
    dev = _deviation(real, predict)
    mad = float(np.median(np.abs(dev[live]))) if live.any() else 0.0
    abn = np.flatnonzero(live & (np.abs(dev) > max(0.02, 3 * 1.4826 * mad)))
    if abn.size == 0:
        return []
    cubs = _cuboids(leaves)
    base = np.abs(real - predict) * live
    n_live = max(int(live.sum()), 1)
    chosen: list[Element] = []
    for members in _clusters(dev[abn]):
        in_cluster = np.zeros(len(real), dtype=bool)
        in_cluster[abn[members]] = True
        best: tuple[float, int, Cuboid, list[int]] | None = None
        for cub, (key, size) in cubs.items():
            n_el = np.bincount(key, live, size)
            n_in = np.bincount(key, in_cluster, size)
            descent = np.divide(n_in, n_el, out=np.zeros(size), where=n_el > 0)
            top = [int(i) for i in np.argsort(-descent)[:max_candidates] if n_in[i] > 0]
            fsum, vsum = np.bincount(key, predict, size), np.bincount(key, real, size)
            for k in range(1, len(top) + 1):
                sel = np.isin(key, top[:k]) & live
                ratio = np.divide(vsum, fsum, out=np.ones(size), where=fsum > 0)
                a = predict * ratio[key]
                n1, n2 = max(int(sel.sum()), 1), max(n_live - int(sel.sum()), 1)
                rest = live & ~sel
                num = np.abs(real - a)[sel].sum() / n1 + base[rest].sum() / n2
                den = base[sel].sum() / n1 + base[rest].sum() / n2
                gps = 1 - num / den if den > 0 else 0.0
                rank = (gps - 0.01 * k * len(cub), -k * len(cub), cub, top[:k])
                if best is None or rank[:2] > best[:2]:
                    best = rank
        if best is not None:
            _, _, cub, els = best
            chosen.extend(_element(leaves, cub, i) for i in els)
    unique = {tuple(sorted(e.items())): e for e in chosen}
    return list(unique.values())


def numerator_moved_most(leaves: Leaves, nums: Array) -> list[Element]:
    """The RS set's simple baseline: the one attribute value whose numerator (stalled viewers)
    moved most between the predict minutes and the anomalous minute, volume ignored."""
    moved = nums[0] - nums[2]
    best: tuple[float, int, int] | None = None
    for j, vals in enumerate(leaves.values):
        per = np.bincount(leaves.codes[:, j], moved, len(vals))
        i = int(np.argmax(np.abs(per)))
        if best is None or abs(per[i]) > best[0]:
            best = (float(abs(per[i])), j, i)
    if best is None:
        return []
    return [{leaves.dimensions[best[1]]: leaves.values[best[1]][best[2]]}]
