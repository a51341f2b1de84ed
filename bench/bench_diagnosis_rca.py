"""Root-cause accuracy and speed: labelled cases from a generator of our own (parameters in
docs/diagnosis.md, written down before tuning), F1 of the returned sets against the truth beside
a simple baseline (Adtributor, Bhagwan et al. 2014, in plain Python) run on the same cases in the
same run, a set of ratio-KPI cases, and the time over 5 dimensions and 20,000 leaves.

Tuning runs used BENCH_SEED=0; the figures reported use the default BENCH_SEED=1000, whose case
seeds never meet the tuning ones (docs/diagnosis.md).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.diagnosis.engine.rootcause import Leaves, leaves_from_arrays, localize

CARDS = (10, 10, 8, 5, 5)  # 5 dimensions, 20,000 leaves
DIMS = tuple(f"d{i}" for i in range(len(CARDS)))
HELD_OUT = 1000
CASES = 60  # per (order, noise) cell


@dataclass
class Case:
    leaves: Leaves
    truth: list[dict[str, str]]


def _grid(cards: tuple[int, ...]) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(c) for c in cards], indexing="ij"), -1).reshape(
        -1, len(cards)
    )


GRID = _grid(CARDS)


def make_case(
    seed: int, order: int, noise: float, ratio: bool = False, realistic: bool = True
) -> Case:
    """1 to 3 disjoint root causes of `order` dimensions each; see docs/diagnosis.md ("Our own
    generators"). realistic (the default): heavy-tailed leaf noise (Student-t, 4 degrees) on top
    of the counts' own Poisson noise, a cause's leaves each moving by their own share of its
    magnitude (0.5-1.5 of it), and half of the cases carry a second, smaller concurrent cause
    (10-20%). realistic=False is the clean generator before issue 14."""
    rng = np.random.default_rng(seed)
    codes = GRID
    n = len(codes)
    predict = rng.lognormal(4.0, 1.0, n)
    predict[rng.random(n) < 0.1] = 0.0  # sparse leaves: nothing expected, nothing happened
    k = int(rng.integers(1, 4))
    small = realistic and k < 3 and rng.random() < 0.5  # a second, smaller concurrent cause
    k += small
    masks: list[np.ndarray] = []
    truth: list[dict[str, str]] = []
    covered = np.zeros(n, dtype=bool)
    tries = 0
    while len(truth) < k and tries < 1000:
        tries += 1
        dims = sorted(rng.choice(len(CARDS), order, replace=False).tolist())
        vals = [int(rng.integers(CARDS[j])) for j in dims]
        m = np.ones(n, dtype=bool)
        for j, v in zip(dims, vals, strict=True):
            m &= codes[:, j] == v
        if (m & covered).any() or (m & (predict > 0)).sum() < 2:
            continue
        covered |= m
        masks.append(m)
        truth.append({DIMS[j]: f"v{v}" for j, v in zip(dims, vals, strict=True)})
    if realistic:
        eps = noise * 0.8 * rng.standard_t(4, n) / np.sqrt(2)  # sd = noise, heavy tails
        real = predict * np.maximum(1 + eps, 0.05)
    else:
        real = predict * (1 + rng.normal(0, noise, n))
    factor = np.ones(n)
    for j, m in enumerate(masks):
        last_small = small and j == len(masks) - 1
        mag = rng.uniform(0.1, 0.2) if last_small else rng.uniform(0.25, 0.8)
        mag *= -1 if rng.random() < 0.5 else 1
        if realistic:
            # the leaves of a cause rarely move by one factor
            factor[m] = 1 + mag * rng.uniform(0.5, 1.5, int(m.sum()))
        else:
            factor[m] = 1 + mag
    values = [[f"v{i}" for i in range(c)] for c in CARDS]
    if not ratio:
        real = real * factor
        if realistic:
            real = rng.poisson(np.maximum(real, 0)).astype(float)  # counts: Poisson on top
        return Case(leaves_from_arrays(DIMS, values, codes, np.maximum(real, 0), predict), truth)
    # Ratio KPI: den = visitors, num = buyers; the cause moves the rate, and a decoy element
    # moves only the volume (rate unchanged), which must not be reported.
    den_p = predict * 20
    rate = rng.uniform(0.01, 0.05, n)
    den_r = den_p * (1 + rng.normal(0, noise, n))
    decoy = codes[:, 0] == int(rng.integers(CARDS[0]))
    den_r = np.where(decoy & ~covered, den_r * 0.5, den_r)
    num_p = den_p * rate
    if realistic:
        den_r = rng.poisson(np.maximum(den_r, 0)).astype(float)
        p_r = np.clip(
            rate * np.maximum(1 + noise * 0.8 * rng.standard_t(4, n) / np.sqrt(2), 0.05) * factor,
            0,
            1,
        )
        num_r = rng.binomial(den_r.astype(np.int64), p_r).astype(float)
    else:
        num_r = den_r * rate * (1 + rng.normal(0, noise, n)) * factor
    rate_p = np.divide(num_p, den_p, out=np.zeros(n), where=den_p > 0)
    return Case(
        leaves_from_arrays(DIMS, values, codes, np.maximum(num_r, 0), den_r * rate_p), truth
    )


def adtributor(leaves: Leaves, t_eep: float = 0.1, t_ep: float = 0.67) -> list[dict[str, str]]:
    """Adtributor in plain Python: per dimension, values by surprise until 67% is explained."""
    real, predict = leaves.real.tolist(), leaves.predict.tolist()
    codes = leaves.codes.tolist()
    total_r, total_p = sum(real), sum(predict)
    dchange = total_r - total_p
    if abs(dchange) < 1e-9:
        return []
    best: list[tuple[float, list[dict[str, str]]]] = []
    for j, dim in enumerate(leaves.dimensions):
        agg: dict[int, list[float]] = {}
        for row, r, p in zip(codes, real, predict, strict=True):
            a = agg.setdefault(row[j], [0.0, 0.0])
            a[0] += r
            a[1] += p
        items = []
        for v, (r, p) in agg.items():
            ep = (r - p) / dchange
            pp, qq = p / total_p if total_p else 0, r / total_r if total_r else 0
            s = 0.0
            for x, y in ((pp, qq),):
                if x > 0 and y > 0:
                    m = (x + y) / 2
                    s = 0.5 * (x * math.log(x / m) + y * math.log(y / m))
            items.append((s, ep, v))
        items.sort(reverse=True)
        chosen, acc, surprise = [], 0.0, 0.0
        for s, ep, v in items:
            if ep > t_eep:
                chosen.append({dim: leaves.values[j][v]})
                acc += ep
                surprise += s
            if acc > t_ep:
                break
        if acc > t_ep:
            best.append((surprise, chosen))
    best.sort(key=lambda x: -x[0])
    return best[0][1] if best else []


def f1(pred: list[list[dict[str, str]]], truth: list[list[dict[str, str]]]) -> float:
    tp = fp = fn = 0
    for p, t in zip(pred, truth, strict=True):
        ps = {tuple(sorted(e.items())) for e in p}
        ts = {tuple(sorted(e.items())) for e in t}
        tp += len(ps & ts)
        fp += len(ps - ts)
        fn += len(ts - ps)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def run_cell(order: int, noise: float, seed0: int, ratio: bool = False) -> dict[str, float]:
    ours_p, base_p, truth = [], [], []
    t_ours = t_base = 0.0
    for s in range(CASES):
        case = make_case(seed0 + s * 7 + order * 100_003 + int(noise * 1000), order, noise, ratio)
        t0 = time.perf_counter()
        ours_p.append(localize(case.leaves).elements)
        t_ours += time.perf_counter() - t0
        t0 = time.perf_counter()
        base_p.append(adtributor(case.leaves))
        t_base += time.perf_counter() - t0
        truth.append(case.truth)
    return {
        "f1": f1(ours_p, truth),
        "base_f1": f1(base_p, truth),
        "t": t_ours / CASES,
        "base_t": t_base / CASES,
    }


def main(seed0: int = HELD_OUT) -> int:
    results: list[tuple[str, str, str, bool, str]] = []
    t_all, tb_all = [], []
    for order, target in ((1, 0.95), (2, 0.9), (3, 0.9)):
        for noise in (0.0, 0.05, 0.10):
            r = run_cell(order, noise, seed0)
            t_all.append(r["t"])
            tb_all.append(r["base_t"])
            results.append(
                (
                    f"rca F1, causes of {order} dimension(s), noise {noise:.0%}",
                    f">= {target}",
                    f"{r['f1']:.3f}",
                    r["f1"] >= target,
                    f"Adtributor {r['base_f1']:.3f}",
                )
            )
    for order in (1, 2):
        r = run_cell(order, 0.05, seed0, ratio=True)
        results.append(
            (
                f"rca F1, ratio KPI (rate moved, volume decoy), {order} dimension(s), noise 5%",
                ">= 0.9",
                f"{r['f1']:.3f}",
                r["f1"] >= 0.9,
                f"Adtributor {r['base_f1']:.3f}",
            )
        )
    ours_t, base_t = float(np.mean(t_all)), float(np.mean(tb_all))
    results.append(
        (
            "rca mean time per case, 5 dims x 20,000 leaves",
            "< baseline",
            f"{ours_t * 1000:.1f} ms",
            ours_t < base_t,
            f"Adtributor {base_t * 1000:.1f} ms",
        )
    )
    worst = 0.0
    for s in range(20):
        case = make_case(seed0 + 77 + s, 3, 0.05)
        t0 = time.perf_counter()
        localize(case.leaves)
        worst = max(worst, time.perf_counter() - t0)
    results.append(
        (
            "rca worst time, 5 dims x 20,000 leaves",
            "< 0.25 s",
            f"{worst:.3f} s",
            worst < 0.25,
            "20 cases",
        )
    )
    ok = True
    lines = []
    for name, target, measured, passed, note in results:
        ok &= passed
        res = "pass" if passed else "MISS"
        print(f"{name}: target {target}, measured {measured}, {res} ({note})")
        lines.append(f"| {name} | {target} | {measured} | {res} | {note} |")
    out = Path(os.environ.get("BENCH_OUT", "var/bench/bench_diagnosis_rca.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    header = [
        "## Diagnosis: root cause",
        "",
        f"Held-out seeds from {seed0}, {CASES} cases per row; the realistic generator (heavy-tailed "
        "and Poisson leaf noise, uneven causes, a second smaller cause in half the cases; "
        "docs/diagnosis.md, Our own generators).",
        "",
        "| benchmark | target | measured | result | baseline / note |",
        "|---|---|---|---|---|",
    ]
    out.write_text("\n".join(header + lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    seed = int(os.environ.get("BENCH_SEED", HELD_OUT))
    sys.exit(main(seed))
