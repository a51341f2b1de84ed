"""Anomaly detection: labelled daily series of our own making, one kind of anomaly per series
(spikes, level shifts, trend changes, seasonality changes, missing days, and festival peaks that
must NOT be flagged), precision, recall and F1 per kind beside a rolling z-score baseline in the
same run; and the throughput of the online detector. Parameters in docs/diagnosis.md.

Tuning runs used BENCH_SEED=0; the figures reported use the default BENCH_SEED=1000, whose case
seeds never meet the tuning ones (docs/diagnosis.md).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.diagnosis.engine.anomaly import score_series

N_DAYS = 210
START = 70  # anomalies are placed from here on; scoring counts from day 28
SERIES = 40  # per kind
HELD_OUT = 1000
KINDS = ("spike", "level_shift", "trend_change", "seasonality_change", "missing", "festival")
# What a good detector should reach on the realistic generator, set before measuring ours (a
# 25-60% spike is 6-15 noise sd on a mid-size series but 2-4 on a series of 50 a day; a ramped
# shift is found within its week; a slow ramp is the hardest; a missing day is always known).
FLOORS = {
    "spike": 0.8,
    "level_shift": 0.85,
    "trend_change": 0.6,
    "seasonality_change": 0.75,
    "missing": 0.95,
    "festival": 0.8,
}


@dataclass
class Series:
    values: list[float | None]
    windows: list[tuple[int, int]]  # truth events [start, end)
    expected: list[bool] = field(default_factory=list)
    festival: tuple[int, int] | None = None


def make_series(kind: str, seed: int, realistic: bool = True) -> Series:
    """One labelled series (docs/diagnosis.md, "Our own generators"). realistic (the default):
    the level spans small volumes too (50-5,000 a day, log-uniform), the day noise is
    heavy-tailed (Student-t, 4 degrees, sd 4%) and the values are counts drawn from it
    (Poisson: a small series is noisier), level shifts ramp in over 1-3 days and give a fifth
    back over the next two weeks, and a spike may leave a smaller echo the next day.
    realistic=False is the clean generator before issue 14."""
    rng = np.random.default_rng(seed)
    t = np.arange(N_DAYS)
    level = (
        float(np.exp(rng.uniform(np.log(50), np.log(5000))))
        if realistic
        else rng.uniform(500, 5000)
    )
    slope = rng.uniform(-0.001, 0.002) * level
    week = np.array([1.0, 0.97, 0.95, 1.0, 1.05, 1.0, 1.0]) * rng.uniform(0.95, 1.05, 7)
    weekend = rng.uniform(0.65, 1.35)
    week[5] *= weekend
    week[6] *= weekend
    base = (level + slope * t) * week[t % 7]
    if realistic:
        noise = 0.04 * 0.8 * rng.standard_t(4, N_DAYS) / np.sqrt(2)
        noise = np.maximum(noise, -0.9)
    else:
        noise = rng.normal(0, 0.04, N_DAYS)
    y = base * (1 + noise)
    windows: list[tuple[int, int]] = []
    expected = [False] * N_DAYS
    fest = None
    t0 = int(rng.integers(START, N_DAYS - 40))
    if kind == "spike" or kind == "festival":
        pos: list[int] = []
        if kind == "festival":
            f0 = int(rng.integers(START, N_DAYS - 40))
            fest = (f0, f0 + 14)
            for d in range(f0 - 3, f0 + 17):
                expected[d] = True
            # pre-sale, eve, peak x2-x3.5, lull
            shape = np.ones(14)
            shape[:9] = rng.uniform(1.2, 1.4)
            shape[9] = rng.uniform(1.5, 1.8)
            shape[10] = rng.uniform(2.0, 3.5)
            shape[11:] = rng.uniform(0.7, 0.85)
            y[f0 : f0 + 14] *= shape
        while len(pos) < 3:
            p = int(rng.integers(START, N_DAYS))
            if all(abs(p - q) > 7 for q in pos) and not expected[p]:
                pos.append(p)
        for p in pos:
            mag = rng.uniform(0.25, 0.6) * (1 if rng.random() < 0.5 else -1)
            y[p] *= 1 + mag
            echo = realistic and p + 1 < N_DAYS and not expected[p + 1] and rng.random() < 0.3
            if echo:
                y[p + 1] *= 1 + mag * rng.uniform(0.2, 0.5)
            windows.append((p, p + 1 + echo))
    elif kind == "level_shift":
        mag = rng.uniform(0.2, 0.5) * (1 if rng.random() < 0.5 else -1)
        if realistic:
            ramp = int(rng.integers(1, 4))
            share = np.clip((t - t0 + 1) / ramp, 0, 1)
            share = share * (1 - 0.2 * np.clip((t - t0 - ramp) / 14, 0, 1))
            y *= 1 + mag * share
        else:
            y[t0:] *= 1 + mag
        windows.append((t0, t0 + 7))
    elif kind == "trend_change":
        d = rng.uniform(0.012, 0.025) * level * (1 if rng.random() < 0.5 else -1)
        y[t0:] += d * (t[t0:] - t0) * week[t[t0:] % 7]
        windows.append((t0, t0 + 21))
    elif kind == "seasonality_change":
        # the weekend moves the other way: weekend +x% becomes -x% and vice versa
        new = week.copy()
        new[5], new[6] = week[5] / weekend**2, week[6] / weekend**2
        if abs(weekend - 1) < 0.25:
            new[5], new[6] = week[5] * 1.5, week[6] * 1.5
        y[t0:] = (level + slope * t[t0:]) * new[t[t0:] % 7] * (1 + noise[t0:])
        windows.append((t0, t0 + 21))
    if realistic:
        y = rng.poisson(np.maximum(y, 0)).astype(float)  # counts: Poisson noise on top
    if kind == "missing":
        vals: list[float | None] = [float(v) for v in y]
        for p in sorted(rng.choice(np.arange(START, N_DAYS), 3, replace=False).tolist()):
            vals[p] = None
            windows.append((p, p + 1))
        return Series(vals, windows, expected)
    return Series([float(v) for v in y], windows, expected, fest)


def rolling_z(values: list[float | None], window: int = 28, k: float = 3.0) -> list[int]:
    """The baseline: z-score against the previous `window` non-missing points (as
    pandas.Series.rolling(window, min_periods=7) skips NaN); a missing point gets no score."""
    out = []
    past: list[float] = []
    for v in values:
        if v is None or math.isnan(v):
            out.append(0)
            continue
        w = past[-window:]
        if len(w) >= 7:
            mu = sum(w) / len(w)
            sd = math.sqrt(sum((x - mu) ** 2 for x in w) / (len(w) - 1)) or 1e-9
            out.append(int(abs(v - mu) / sd > k))
        else:
            out.append(0)
        past.append(v)
    return out


def evaluate(labels: list[int], s: Series) -> tuple[int, int, int, int]:
    """Event-level: an event is found when any point of its window is labelled; a labelled point
    outside every window (from day 28) is a false positive. Also counts flags on festival days."""
    tp = sum(1 for a, b in s.windows if any(labels[a:b]))
    fn = len(s.windows) - tp
    inside = set()
    for a, b in s.windows:
        inside.update(range(a, b))
    fp = sum(1 for i in range(28, N_DAYS) if labels[i] and i not in inside)
    fest_flags = sum(labels[i] for i in range(N_DAYS) if s.expected[i]) if s.expected else 0
    return tp, fp, fn, fest_flags


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def run_kind(kind: str, seed0: int) -> dict[str, tuple[float, ...]]:
    acc = {"ours": [0, 0, 0, 0], "base": [0, 0, 0, 0]}
    for i in range(SERIES):
        s = make_series(kind, seed0 + i * 31 + KINDS.index(kind))
        ours = [p.label for p in score_series(s.values, period=7, expected_windows=s.expected)]
        base = rolling_z(s.values)
        for name, lab in (("ours", ours), ("base", base)):
            for j, x in enumerate(evaluate(lab, s)):
                acc[name][j] += x
    return {k: (*prf(*v[:3]), v[3]) for k, v in acc.items()}


def main(seed0: int = HELD_OUT) -> int:
    results: list[tuple[str, str, str, bool, str]] = []
    for kind in KINDS:
        r = run_kind(kind, seed0)
        p, rc, f, ff = r["ours"]
        bp, br, bf, bff = r["base"]
        note = f"P {p:.2f} R {rc:.2f}; rolling z P {bp:.2f} R {br:.2f} F1 {bf:.3f}"
        if kind == "festival":
            note += f"; flags on festival days: ours {ff}, rolling z {bff}"
        passed = f > bf and f >= FLOORS[kind] and (kind != "festival" or ff == 0)
        target = f">= {FLOORS[kind]:g} and > rolling z" + (
            ", 0 festival flags" if kind == "festival" else ""
        )
        results.append((f"anomaly F1, {kind.replace('_', ' ')}", target, f"{f:.3f}", passed, note))
    rng = np.random.default_rng(seed0)
    n = 200_000
    tt = np.arange(n)
    y = (100 + 30 * np.sin(2 * np.pi * tt / 288) + rng.normal(0, 3, n)).tolist()
    t0 = time.perf_counter()
    score_series(y, period=288)
    rate = n / (time.perf_counter() - t0)
    results.append(
        (
            "anomaly throughput, 5-minute stream (period 288)",
            ">= 20,000 points/s",
            f"{rate:,.0f} points/s",
            rate >= 20_000,
            f"{n:,} points",
        )
    )
    ok = True
    lines = []
    for name, target, measured, passed, note in results:
        ok &= passed
        res = "pass" if passed else "MISS"
        print(f"{name}: target {target}, measured {measured}, {res} ({note})")
        lines.append(f"| {name} | {target} | {measured} | {res} | {note} |")
    out = Path(os.environ.get("BENCH_OUT", "var/bench/bench_diagnosis_anomaly.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    header = [
        "## Diagnosis: anomalies",
        "",
        f"Held-out seeds from {seed0}, {SERIES} daily series of {N_DAYS} days per kind, the "
        "realistic generator (heavy-tailed and Poisson noise, 50-5,000 a day, ramped shifts, "
        "spike echoes); event-level precision/recall (docs/diagnosis.md, Our own generators).",
        "",
        "| benchmark | target | measured | result | baseline / note |",
        "|---|---|---|---|---|",
    ]
    out.write_text("\n".join(header + lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(int(os.environ.get("BENCH_SEED", HELD_OUT))))
