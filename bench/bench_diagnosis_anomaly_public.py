"""Anomaly detection on public data: the Numenta Anomaly Benchmark (NAB v1.1) development split,
scored as NAB scores (standard profile, one threshold for every series swept by NAB's optimiser),
beside two anchors implemented here from their papers and run in the same process, and the
published per-row outputs of ARTime and the windowed Gaussian on the same files.

- ours: `services.diagnosis.anomaly.score_rows` (the CLI's and `POST /v1/anomalies`' path, so
  the real clocks are read the same way), online: a row's score uses only the rows before it;
- windowed Gaussian (NAB's baseline, Lavin & Ahmad 2015): the tail probability of the value under
  a normal fitted to the last 6400 values, refitted every 100;
- KNN-CAD (Burnaev & Ishimtsev 2016, "Conformalized density- and distance-based anomaly
  detection in time-series data"): 19-lag windows, the non-conformity of a window is the sum of
  its 27 nearest Mahalanobis distances to a training set, its conformal p-value against a
  calibration set; NAB's settings (training = probation, an alarm holds for probation / 5).

The data folder is $STOREOPS_DATA (default ../shared/data beside the repository); the scorer is
$STOREOPS_NAB_SCORE (default <data>/../tools/nab_score.py), imported, never copied.
STOREOPS_NAB_ANCHORS=0 runs ours only (KNN-CAD takes minutes); the default run keeps the anchors.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from services.diagnosis.anomaly import score_rows
from services.diagnosis.engine.stream import StreamConfig

ROOT = Path(__file__).resolve().parents[1]
TARGET = 72.8  # Numenta HTM on these 34 files
PUBLISHED = {"ARTime": 80.4, "windowedGaussian": 50.9}  # data/README.md, nab_score.py on them
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
Series = dict[str, tuple[list[str], list[float], list[str]]]  # name -> stamps, values, raw


def data_dir() -> Path:
    return Path(os.environ.get("STOREOPS_DATA", ROOT.parent / "shared" / "data"))


def load_scorer(data: Path) -> ModuleType:
    path = Path(os.environ.get("STOREOPS_NAB_SCORE", data.parent / "tools" / "nab_score.py"))
    if not path.is_file():
        raise FileNotFoundError(f"NAB scorer not found at {path} (set STOREOPS_NAB_SCORE)")
    spec = importlib.util.spec_from_file_location("nab_score", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_series(nab: Path, windows: dict[str, Any]) -> Series:
    out: Series = {}
    for name in sorted(windows):
        with (nab / "data" / name).open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        stamps = [r["timestamp"] for r in rows]
        raw = [r["value"] for r in rows]
        out[name] = (stamps, [float(v) for v in raw], raw)
    return out


# --- anchors, from their papers -------------------------------------------------------------


def windowed_gaussian(values: list[float], window: int = 6400, step: int = 100) -> list[float]:
    """1 - Q(|x - mean| / std) under a normal of the last `window` values, refitted every
    `step` values once the window is full (every value before)."""
    out: list[float] = []
    win: list[float] = []
    buf: list[float] = []
    mean, std = 0.0, 1.0
    for x in values:
        if win:
            z = abs(x - mean) / std
            out.append(1.0 - 0.5 * math.erfc(z / math.sqrt(2)))
        else:
            out.append(0.0)
        if len(win) < window:
            win.append(x)
        else:
            buf.append(x)
            if len(buf) < step:
                continue
            win = win[step:] + buf
            buf = []
        a = np.asarray(win)
        mean, std = float(a.mean()), float(a.std()) or 1e-6
    return out


def knn_cad(values: list[float], probation: int, k: int = 27, dim: int = 19) -> list[float]:
    """KNN-CAD with NAB's settings: the first `probation` windows train; then each window's
    non-conformity (sum of its k smallest Mahalanobis distances to the training windows) is
    ranked against the calibration scores; the metric is re-fitted twice per probation; after
    2 x probation the oldest calibration window joins training; an alarm (p >= 0.9965) holds
    the output at 0.5 for probation / 5 rows."""
    out: list[float] = []
    train: list[np.ndarray] = []
    calib: list[np.ndarray] = []
    scores: list[float] = []
    sigma = np.eye(dim)
    hold = -1

    def ncm(item: np.ndarray, tr: np.ndarray, own: bool = False) -> float:
        d = tr - item
        dist = np.einsum("ij,jk,ik->i", d, sigma, d)
        kk = min(k + int(own), len(dist))
        return float(np.sum(np.partition(dist, kk - 1)[:kk]))

    for n, _ in enumerate(values, start=1):
        if n < dim:
            out.append(0.0)
            continue
        item = np.asarray(values[n - dim : n], dtype=float)
        if n < probation:
            train.append(item)
            out.append(0.0)
            continue
        tr = np.asarray(train)
        ost = n % probation
        if ost == 0 or ost == probation // 2:
            # a singular metric: keep the last one, as the authors' code does
            with contextlib.suppress(np.linalg.LinAlgError):
                sigma = np.linalg.inv(tr.T @ tr)
        if not scores:
            scores = [ncm(v, tr, own=True) for v in train]
        s = ncm(item, tr)
        result = sum(1 for c in scores if c < s) / len(scores)
        if n >= 2 * probation and calib:
            train.pop(0)
            train.append(calib.pop(0))
        scores.pop(0)
        calib.append(item)
        scores.append(s)
        if hold > 0:
            hold -= 1
            out.append(0.5)
            continue
        if result >= 0.9965:
            hold = probation // 5
        out.append(result)
    return out


# --- running and scoring --------------------------------------------------------------------


def run_detector(
    series: Series, fn: Callable[[list[str], list[float], list[str]], list[float]]
) -> tuple[dict[str, list[float]], float]:
    scores: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    for name, (stamps, values, raw) in series.items():
        scores[name] = fn(stamps, values, raw)
    points = sum(len(s[0]) for s in series.values())
    return scores, (time.perf_counter() - t0) / points


def write_results(folder: Path, det: str, series: Series, scores: dict[str, list[float]]) -> None:
    for name, (stamps, _values, raw) in series.items():
        cat, file = name.split("/")
        path = folder / det / cat / f"{det}_{file}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["timestamp", "value", "anomaly_score"])
            w.writerows(zip(stamps, raw, (repr(s) for s in scores[name]), strict=True))


def nab_scores(
    ns: ModuleType, results: Path, nab: Path, windows: dict[str, Any], at: float | None = None
) -> dict[str, float]:
    """Normalised score per profile, the threshold swept (or fixed at `at`)."""
    detections = ns.load_results(str(results), str(nab))
    points = ns.corpus_points(detections, {k: windows[k] for k in detections})
    out = {}
    for profile in PROFILES:
        if at is None:
            _, raw = ns.optimize_points(points, profile)
        else:
            raw = ns.score_points(points, profile, at)
        out[profile] = ns.normalized(raw, windows, profile)
    out["threshold"] = ns.optimize_points(points, "standard")[0]
    return out


def main() -> int:
    data = data_dir()
    nab = data / "anomaly" / "nab_dev"
    if not (nab / "labels" / "combined_windows.json").is_file():
        print(
            f"error: NAB data not found at {nab} (set STOREOPS_DATA to the folder holding "
            "anomaly/nab_dev; see ../shared/data/README.md)",
            file=sys.stderr,
        )
        return 2
    try:
        ns = load_scorer(data)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    windows = json.loads((nab / "labels" / "combined_windows.json").read_text())
    series = load_series(nab, windows)
    n_points = sum(len(s[0]) for s in series.values())

    def ours(stamps: list[str], _values: list[float], raw: list[str]) -> list[float]:
        scored, _warnings = score_rows(list(zip(stamps, raw, strict=True)), mode="auto")
        return [s for _, _, s, _ in scored]

    def knn(_stamps: list[str], values: list[float], _raw: list[str]) -> list[float]:
        # NAB hands a detector its probationary period: 15% of the file, at most 750 rows
        return knn_cad(values, min(math.floor(0.15 * len(values)), 750))

    detectors: dict[str, Callable[[list[str], list[float], list[str]], list[float]]] = {
        "ours": ours,
        "windowedGaussian": lambda _s, v, _r: windowed_gaussian(v),
        "knncad": knn,
    }
    # STOREOPS_NAB_ANCHORS=0 skips the anchors run here (KNN-CAD is slow) while iterating;
    # the default run keeps them
    anchors = os.environ.get("STOREOPS_NAB_ANCHORS", "1") != "0"
    if not anchors:
        detectors = {"ours": ours}
    figures: dict[str, dict[str, float]] = {}
    per_point: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for det, fn in detectors.items():
            scores, per_point[det] = run_detector(series, fn)
            write_results(Path(tmp), det, series, scores)
            figures[det] = nab_scores(ns, Path(tmp) / det, nab, windows)
        at_label = nab_scores(ns, Path(tmp) / "ours", nab, windows, at=StreamConfig().threshold)
    published = {d: nab_scores(ns, nab / "results" / d, nab, windows) for d in PUBLISHED}

    def note(f: dict[str, float]) -> str:
        return (
            f"low-FP {f['reward_low_FP_rate']:.1f}, low-FN {f['reward_low_FN_rate']:.1f}, "
            f"threshold {f['threshold']:.4f}"
        )

    ok_score = figures["ours"]["standard"] >= TARGET
    results: list[tuple[str, str, str, bool | None, str]] = [
        (
            "NAB dev standard score, ours (CLI path, online)",
            f">= {TARGET} (Numenta HTM)",
            f"{figures['ours']['standard']:.1f}",
            ok_score,
            f"{note(figures['ours'])}; at the label threshold "
            f"{StreamConfig().threshold}: {at_label['standard']:.1f}; "
            f"{len(series)} series, {n_points:,} rows",
        ),
        (
            "NAB dev time per point, ours",
            "<= 50 us",
            f"{per_point['ours'] * 1e6:.1f} us",
            per_point["ours"] <= 50e-6,
            "parsing and clock included, one core",
        ),
    ]
    if anchors:
        results += [
            (
                "anchor: windowed Gaussian (bench/, this run)",
                "-",
                f"{figures['windowedGaussian']['standard']:.1f}",
                None,
                f"{note(figures['windowedGaussian'])}; "
                f"{per_point['windowedGaussian'] * 1e6:.1f} us/pt",
            ),
            (
                "anchor: KNN-CAD (bench/, this run)",
                "-",
                f"{figures['knncad']['standard']:.1f}",
                None,
                f"{note(figures['knncad'])}; {per_point['knncad'] * 1e6:.1f} us/pt; "
                "published on these files 60.4",
            ),
        ]
    else:
        results.append(
            ("anchors: windowed Gaussian, KNN-CAD", "-", "skipped", None, "STOREOPS_NAB_ANCHORS=0")
        )
    for det, want in PUBLISHED.items():
        f = published[det]
        results.append(
            (
                f"reference: {det}, published per-row outputs",
                "-",
                f"{f['standard']:.1f}",
                None,
                f"{note(f)}; README figure {want}",
            )
        )
    ok = True
    lines = []
    for name, target, measured, passed, extra in results:
        res = "-" if passed is None else ("pass" if passed else "MISS")
        ok &= passed is not False
        print(f"{name}: target {target}, measured {measured}, {res} ({extra})")
        lines.append(f"| {name} | {target} | {measured} | {res} | {extra} |")
    out = Path(os.environ.get("BENCH_OUT", "var/bench/bench_diagnosis_anomaly_public.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    header = [
        "## Diagnosis: anomalies on public data",
        "",
        "NAB v1.1 development split (../shared/data/anomaly/nab_dev, 34 series, 67 windows), "
        "standard profile, scored by ../shared/tools/nab_score.py; one threshold for every "
        "series (NAB's optimiser); anchors implemented in bench/ and run in the same process.",
        "",
        "| benchmark | target | measured | result | note |",
        "|---|---|---|---|---|",
    ]
    out.write_text("\n".join(header + lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
