"""Published root-cause methods for the public-data bench, written here (numpy, our own code) from
their papers with the details checked against the public code of RiskLoc's author
(github.com/shaido987/riskloc, which also carries the Squeeze code adapted from its authors'
release): RiskLoc (Kalander, 2022), Squeeze (Li et al., ISSRE 2019) and the simple baseline of
the RS set, the single attribute value whose numerator moved most. Each takes the same Leaves as
the engine; on a ratio KPI both can also take the raw numerators and denominators and work on the
derived measure, as their papers do."""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt
from scipy.signal import fftconvolve

from services.diagnosis.engine.rootcause import Leaves

Element = dict[str, str]
Array = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Cuboid = tuple[int, ...]


def _key(codes: Ints, cards: list[int], cub: Cuboid) -> tuple[Ints, int]:
    """The element id of every leaf in a cuboid (mixed radix over the cuboid's dimensions, so
    ids sort as the elements' values do) and the number of ids."""
    key = np.zeros(codes.shape[0], dtype=np.int64)
    size = 1
    for j in cub:
        key = key * cards[j] + codes[:, j]
        size *= cards[j]
    return key, size


def _element(leaves: Leaves, cub: Cuboid, i: int) -> Element:
    cards = [len(leaves.values[j]) for j in cub]
    codes = []
    for c in reversed(cards):
        codes.append(i % c)
        i //= c
    return {
        leaves.dimensions[j]: leaves.values[j][c] for j, c in zip(cub, codes[::-1], strict=True)
    }


def _layers(leaves: Leaves) -> list[list[Cuboid]]:
    """Every cuboid, layer by layer (both methods search all layers), dimensions in name order
    as the reference code sorts its attributes."""
    dims = sorted(range(len(leaves.dimensions)), key=lambda j: leaves.dimensions[j])
    return [
        [tuple(sorted(c)) for c in itertools.combinations(dims, k)] for k in range(1, len(dims) + 1)
    ]


def _ratio(nums: Array) -> tuple[Array, Array]:
    """A ratio KPI's derived measure per leaf: real and predict rates (0 where undefined)."""
    rn, rd, pn, pd = nums
    real = np.divide(rn, rd, out=np.zeros_like(rn), where=rd != 0)
    predict = np.divide(pn, pd, out=np.zeros_like(pn), where=pd != 0)
    return real, predict


# ---------------------------------------------------------------------------------------------
# RiskLoc


def _riskloc_cutoff(dev: Array, n_remove: int) -> float:
    """The paper's cutoff: the normal leaves' deviations are taken as symmetric around zero and
    the anomaly as one-sided, so the tail that the anomaly does not reach bounds the noise. The
    n_remove most extreme distinct values of each tail are skipped (outliers); of the two tails'
    next values, the nearer to zero is the noise bound and the cutoff is its mirror."""
    devs = np.unique(dev)
    k = min(n_remove + 1, devs.size)
    low, high = float(devs[k - 1]), float(devs[-k])
    return -(low if abs(low) <= abs(high) else high)


def riskloc(
    leaves: Leaves,
    risk_threshold: float = 0.5,
    pep_threshold: float = 0.02,
    n_remove: int = 5,
    prune_elements: bool = True,
    ratio: Array | None = None,
) -> list[Element]:
    """RiskLoc with its published parameters (risk 0.5, proportional EP 0.02, 5 outliers skipped
    for the cutoff, element pruning on). Leaves are split into abnormal and normal at the cutoff
    on the deviation 2 (f - v) / (f + v); each leaf weighs its distance from the cutoff (its own
    deviation if abnormal), at most 1. An element's risk is its weighted abnormal share
    w_a / (w_a + w_n + 1) minus its ripple term (mean |deviation| of its leaves from the ripple
    effect's expectation f * V / F, over their mean |deviation|). Layer by layer from the most
    general, the element with the most explanatory power among those with risk >= 0.5 and EP above
    2% of the abnormal leaves' EP is taken, its leaves removed, and the search repeats while the
    abnormal leaves left hold at least that 2%. Elements of one dimension with too little
    positive EP or no abnormal leaf are pruned from the deeper layers. `ratio` (real num, real
    den, predict num, predict den per leaf) runs it on the derived measure with the derived EP."""
    if ratio is None:
        real, predict = leaves.real, leaves.predict
        denom = float(real.sum() - predict.sum())
        if denom == 0:
            return []
        ep = (real - predict) / denom
    else:
        real, predict = _ratio(ratio)
        ra, rb, pa, pb = ratio[0], ratio[1], ratio[2], ratio[3]
        fa, fb = float(pa.sum()), float(pb.sum())
        d = fb * (fb + rb - pb)
        ep = np.divide((ra - pa) * fb - (rb - pb) * fa, d, out=np.zeros_like(ra), where=d != 0)
        if ep.sum() == 0:
            return []
        ep = ep / ep.sum()
    s = predict + real
    dev = np.divide(2 * (predict - real), s, out=np.zeros_like(s), where=s != 0)
    cutoff = _riskloc_cutoff(dev, n_remove)
    right = cutoff > 0 or (cutoff == 0 and math.copysign(1.0, cutoff) > 0)
    abnormal = dev > cutoff if right else dev < cutoff
    weight = np.where(abnormal, np.abs(dev), np.abs(cutoff - dev))
    weight[(real == 0) & (predict == 0) & ~abnormal] = 0.0
    np.minimum(weight, 1.0, out=weight)
    if ep[abnormal].sum() < 0:
        ep = -ep
    threshold = float(ep[abnormal].sum()) * pep_threshold
    ep_pos = np.maximum(ep, 0.0)
    w_abn, w_nor = weight * abnormal, weight * ~abnormal
    nonzero = (real != 0) & (predict != 0)
    abs_dev = np.abs(dev)

    codes = leaves.codes
    cards = [len(v) for v in leaves.values]
    layers = _layers(leaves)
    keys = {cub: _key(codes, cards, cub) for layer in layers for cub in layer}
    remaining = np.ones(real.size, dtype=bool)
    pruned = np.zeros(codes.shape, dtype=bool)  # per leaf and dimension: its value was pruned
    chosen: list[Element] = []
    while remaining.any() and float(ep[remaining & abnormal].sum()) >= threshold:
        found: tuple[Cuboid, int] | None = None
        for layer in layers:
            best_ep = threshold
            for cub in layer:
                key, size = keys[cub]
                active = remaining & ~pruned[:, list(cub)].any(axis=1)
                ep_el = np.bincount(key, ep * active, size)
                n_abn = np.bincount(key, abnormal & active, size)
                if prune_elements and len(cub) == 1:
                    # a value with too little positive EP, or no abnormal leaf, is pruned from
                    # every deeper cuboid that holds its dimension (for the rest of the search)
                    ep_z = np.bincount(key, ep_pos * active, size)
                    low = (ep_z < threshold) | (n_abn == 0)
                    seen = np.bincount(key, active, size) > 0
                    pruned[:, cub[0]] |= (low & seen)[key] & active
                cand = (n_abn > 0) & (ep_el > best_ep)
                if not cand.any():
                    continue
                wa = np.bincount(key, w_abn * active, size)
                wn = np.bincount(key, w_nor * active, size)
                high = wa / (wa + wn + 1.0)
                # the ripple term on the leaves seen on both sides
                nz = active & nonzero
                sv = np.bincount(key, real * nz, size)
                sf = np.bincount(key, predict * nz, size)
                rate = np.divide(sv, sf, out=np.zeros(size), where=sf != 0)
                a = predict * rate[key]
                t = a + real
                dd = np.divide(2 * np.abs(a - real), t, out=np.zeros_like(t), where=t != 0)
                w1 = np.bincount(key, dd * nz, size)
                w2 = np.bincount(key, abs_dev * nz, size)
                low_risk = np.divide(w1, w2, out=np.zeros(size), where=w2 != 0)
                ok = np.flatnonzero(cand & (high - low_risk >= risk_threshold))
                if ok.size:
                    i = int(ok[np.argmax(ep_el[ok])])
                    best_ep, found = float(ep_el[i]), (cub, i)
            if found is not None:
                break
        if found is None:
            break
        cub, i = found
        chosen.append(_element(leaves, cub, i))
        remaining &= keys[cub][0] != i
    return chosen


# ---------------------------------------------------------------------------------------------
# Squeeze


def _knee(x: Array, y: Array) -> float | None:
    """Kneedle (Satopaa et al. 2011) on a concave increasing curve, offline, sensitivity 1: the
    first local maximum of the normalised difference curve y - x after which the curve falls
    below that maximum minus the mean x step, before the next extremum resets the threshold."""
    xr, yr = float(np.ptp(x)), float(np.ptp(y))
    if xr == 0 or yr == 0 or x.size < 3:
        return None
    xn, yn = (x - x.min()) / xr, (y - y.min()) / yr
    diff = yn - xn
    # local extrema as scipy's argrelextrema finds them (ends compared with themselves)
    prev, nxt = np.concatenate([diff[:1], diff[:-1]]), np.concatenate([diff[1:], diff[-1:]])
    maxima = np.flatnonzero((diff >= prev) & (diff >= nxt))
    minima = set(np.flatnonzero((diff <= prev) & (diff <= nxt)).tolist())
    if maxima.size == 0:
        return None
    step = abs(float(np.diff(xn).mean()))
    is_max = set(maxima.tolist())
    threshold, at = 0.0, 0
    for i in range(int(maxima[0]), x.size - 1):
        if i in is_max:
            threshold, at = float(diff[i]) - step, i
        if i in minima:
            threshold = 0.0
        if diff[i + 1] < threshold:
            return float(x[at])
    return None


def _kde_on_grid(data: Array, m: int = 1000, refine: int = 16) -> tuple[Array, Array]:
    """scipy's gaussian_kde (Scott's bandwidth) at m points spanning the data, computed by linear
    binning onto a grid `refine` times finer and an FFT convolution with the kernel (relative error
    ~1e-5 against the direct sum, whose cost is points x m)."""
    lo, hi = float(data.min()), float(data.max())
    n = data.size
    bw = float(np.std(data, ddof=1)) * n ** (-0.2)
    g = (m - 1) * refine + 1
    h = (hi - lo) / (g - 1)
    pos = (data - lo) / h
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, g - 2)
    frac = pos - i0
    mass = np.bincount(i0, 1 - frac, g) + np.bincount(i0 + 1, frac, g)
    half = min(g - 1, math.ceil(8 * bw / h))
    offsets = np.arange(-half, half + 1) * h
    kernel = np.exp(-0.5 * (offsets / bw) ** 2) / (math.sqrt(2 * math.pi) * bw * n)
    dens = fftconvolve(mass, kernel, mode="same")
    return np.linspace(lo, hi, m), dens[::refine]


def _squeeze_filter(real: Array, predict: Array) -> npt.NDArray[np.bool_]:
    """Squeeze's filter of the leaves that did not move: the knee of the cumulative density
    (Gaussian KDE, Scott's bandwidth) of |v - f| on 1000 points; leaves above it are kept."""
    moved = np.abs(real - predict)
    if moved.size < 2 or float(np.ptp(moved)) == 0:
        return np.zeros(moved.size, dtype=bool)
    x, dens = _kde_on_grid(moved)
    knee = _knee(x, np.cumsum(dens))
    return moved > (moved.min() if knee is None else knee)


def _squeeze_clusters(dev: Array, max_normal: float) -> list[Ints]:
    """Squeeze's density clustering of deviation scores: a histogram (numpy's 'auto' bins, five
    0.1-wide empty bins after the last), smoothed by a moving mean over a tenth of its occupied
    bins; every local maximum with mass is a cluster, bounded by the nearest local minima (the
    ends wrap); clusters whose mean |deviation| is below max_normal are normal and dropped."""
    edges = np.histogram_bin_edges(dev, "auto")
    edges = np.concatenate([edges, edges[-1] + 0.1 * np.arange(1, 6)])
    dens, edges = np.histogram(dev, bins=edges, density=True)
    dens = dens / 100.0
    mids = (edges[:-1] + edges[1:]) / 2
    w = max(int(np.count_nonzero(dens > 0)) // 10, 1)
    if w > 1:
        smooth = dens.copy()
        smooth[w - 1 :] = np.convolve(dens, np.ones(w), mode="valid") / w
        dens = smooth
    prev, nxt = np.roll(dens, 1), np.roll(dens, -1)
    peaks = np.flatnonzero((dens > prev) & (dens > nxt) & (dens > 0))
    bounds = np.concatenate([[-np.inf], mids[(dens <= prev) & (dens <= nxt)], [np.inf]])
    out = []
    for p in peaks:
        lo = bounds[np.searchsorted(bounds, mids[p], side="right") - 1]
        hi = bounds[np.searchsorted(bounds, mids[p], side="left")]
        members = np.flatnonzero((dev >= lo) & (dev <= hi))
        if members.size and float(np.mean(np.abs(dev[members]))) >= max_normal:
            out.append(members)
    return out


def _div(x: float, y: int) -> float:
    return x / y if y > 0 else (0.0 if x == 0 else math.inf)


def _prefix_gps(v: Array, f: Array, parts: Array | None, rank: Ints, k_max: int) -> Array:
    """Squeeze's generalized potential score of each prefix (1..k_max) of a cuboid's ranked
    elements: the prefix's leaves (rank < k) against their ripple-effect expectation f * V / F
    (on a derived measure, the ratio of the summed numerators and denominators), the rest of the
    scored leaves against their forecast; each side as a mean L1 distance."""
    l1 = np.abs(v - f)
    total_l1 = float(l1.sum())
    top = np.flatnonzero(rank < k_max)
    top = top[np.argsort(rank[top], kind="stable")]
    ends = np.searchsorted(rank[top], np.arange(1, k_max + 1), side="left")
    cum = np.concatenate([[0.0], np.cumsum(l1[top])])
    if parts is None:
        cv = np.concatenate([[0.0], np.cumsum(v[top])])[ends]
        cf = np.concatenate([[0.0], np.cumsum(f[top])])[ends]
    else:
        ra, rb, pa, pb = (np.concatenate([[0.0], np.cumsum(x[top])])[ends] for x in parts)
        cv = np.divide(ra, rb, out=np.zeros_like(ra), where=rb != 0)
        cf = np.divide(pa, pb, out=np.zeros_like(pa), where=pb != 0)
    scale = np.divide(cv, cf, out=np.zeros_like(cv), where=cf != 0)
    scores = np.empty(k_max)
    for k in range(k_max):
        m = int(ends[k])
        sel = top[:m]
        fit = float(np.abs(v[sel] - f[sel] * scale[k]).sum())
        n_rest = v.size - m
        rest = _div(total_l1 - float(cum[m]), n_rest) if n_rest else 0.0
        den = _div(float(cum[m]), m) + rest
        scores[k] = 1.0 - (_div(fit, m) + rest) / den if den != 0 else -math.inf
    return scores


def squeeze(
    leaves: Leaves,
    max_num_elements: int = 12,
    ps_upper_bound: float = 0.9,
    max_normal_deviation: float = 0.2,
    ratio: Array | None = None,
) -> list[Element]:
    """Squeeze with the options its released code ships (filter on, histogram clustering, at
    most 12 elements a cluster, stop below the layer where a GPS exceeds 0.9, clusters with mean
    |deviation| under 0.2 normal). Leaves with a forecast are kept; the deviation score is
    (f - v) / (f + v). The leaves that moved are clustered by deviation (one cluster per root
    cause under the generalized ripple effect), each cluster widened to every leaf within its
    deviation range. In each cluster, every cuboid's elements are ranked by descent score (the
    share of an element's leaves in the cluster), the best prefix of them by GPS (over the
    cluster and the normal leaves) is that cuboid's candidate, and the candidate with the best
    cost-weighted score GPS * w - (elements x layer) wins, w set from the number of clusters,
    attribute values and abnormal coverage as in the authors' revised formula. `ratio` (real
    num, real den, predict num, predict den per leaf) runs it on the derived measure: leaf rates,
    and a set's expectation from its summed numerators over its summed denominators."""
    if ratio is None:
        valid = leaves.predict > 0
        v, f = leaves.real[valid].copy(), leaves.predict[valid].copy()
        parts = None
    else:
        r, p = _ratio(ratio)
        valid = p > 0
        v, f = r[valid].copy(), p[valid].copy()
        parts = ratio[:, valid]
    if v.size == 0:
        return []
    v -= min(float(v.min()), 0.0)
    codes = leaves.codes[valid]
    n = v.size
    s = f + v
    dev = np.divide(f - v, s, out=np.zeros_like(s), where=s != 0)
    kept = np.flatnonzero(_squeeze_filter(v, f))
    if kept.size == 0:
        return []
    clusters = []
    for members in _squeeze_clusters(dev[kept], max_normal_deviation):
        lo, hi = dev[kept[members]].min(), dev[kept[members]].max()
        clusters.append(np.flatnonzero((dev >= lo) & (dev <= hi)))
    if not clusters:
        return []
    abnormal = np.unique(np.concatenate(clusters))
    # the reference keeps as normal the leaves closer to zero than the abnormal leaf nearest it
    # (signed, as its code does)
    nearest = dev[abnormal[np.argmin(np.abs(dev[abnormal]))]]
    normal = np.abs(dev) < nearest
    n_attr = sum(len(vals) for vals in leaves.values)
    g_cluster = math.log(len(clusters) + 1) / len(clusters)
    g_attr = n_attr / math.log(n_attr + 1)
    g_cover = -math.log(sum(c.size for c in clusters) / n)
    weight = g_cluster * g_attr * g_cover
    cards = [len(vals) for vals in leaves.values]
    layers = _layers(leaves)
    keys = {cub: _key(codes, cards, cub) for layer in layers for cub in layer}
    n_all = {cub: np.bincount(key, minlength=size) for cub, (key, size) in keys.items()}
    chosen: list[Element] = []
    for members in clusters:
        in_cluster = np.zeros(n, dtype=bool)
        in_cluster[members] = True
        subset = in_cluster | normal
        sv, sf = v[subset], f[subset]
        sparts = None if parts is None else parts[:, subset]
        best: tuple[float, Cuboid, list[int]] | None = None
        stop = False
        for depth, layer in enumerate(layers, start=1):
            for cub in layer:
                key, size = keys[cub]
                n_in = np.bincount(key[members], minlength=size)
                els = np.flatnonzero(n_in)
                descent = n_in[els] / np.maximum(n_all[cub][els], 1e-4)
                els = els[np.argsort(descent, kind="stable")[::-1]]
                k_max = min(els.size, max_num_elements, int(np.count_nonzero(n_all[cub])) - 1)
                if k_max <= 0:
                    rank = (-math.inf, cub, els.tolist())
                else:
                    order = np.full(size, k_max, dtype=np.int64)
                    order[els[:k_max]] = np.arange(k_max)
                    sc = _prefix_gps(sv, sf, sparts, order[key[subset]], k_max)
                    # the best prefix; on ties the longer (the reference's reversed argsort)
                    k = int(np.flatnonzero(sc == sc.max())[-1]) + 1
                    score = float(sc[k - 1])
                    stop |= score > ps_upper_bound
                    rank = (score * weight - k * depth, cub, els[:k].tolist())
                if best is None or rank[0] > best[0]:
                    best = rank
            if stop:
                break
        if best is not None:
            _, cub, els_best = best
            chosen.extend(_element(leaves, cub, int(i)) for i in els_best)
    unique = {tuple(sorted(e.items())): e for e in chosen}
    return list(unique.values())


def _gps_ratio(
    v: Array, f: Array, parts: Array, sel: npt.NDArray[np.bool_], rest_l1: float
) -> float:
    """The GPS on a derived measure: the set's expected rate is its summed real numerators over
    its summed real denominators, scaled onto each leaf's forecast rate as the ripple effect."""
    n1 = int(sel.sum())
    v1, f1 = v[sel], f[sel]
    pa, pb = float(parts[2][sel].sum()), float(parts[3][sel].sum())
    ra, rb = float(parts[0][sel].sum()), float(parts[1][sel].sum())
    tot_v = ra / rb if rb else 0.0
    tot_f = pa / pb if pb else 0.0
    a1 = f1 * (tot_v / tot_f) if tot_f else np.zeros_like(f1)

    def div(x: float, y: int) -> float:
        return x / y if y > 0 else (0.0 if x == 0 else math.inf)

    n2 = v.size - n1
    rest = div(rest_l1, n2)
    num = div(float(np.abs(v1 - a1).sum()), n1) + rest
    den = div(float(np.abs(v1 - f1).sum()), n1) + rest
    return 1.0 - num / den if den != 0 else -math.inf


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
