"""Loaders for the public root-cause sets in ../shared/data (formats in its README): Squeeze's B0
(additive, one leaf per row) and RobustSpot's RS (ratio, one row per leaf and minute), each case
as Leaves plus its true elements. The data is never copied into the repository."""

from __future__ import annotations

import csv
import gzip
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from services.diagnosis.engine.rootcause import Leaves, leaves_from_columns

Element = dict[str, str]
B0_DIMS = ("a", "b", "c", "d")
# RS: the predict of a minute is the mean of the minutes before it (the README's fair conversion)
RS_HISTORY_MINUTES = 4


@dataclass
class PublicCase:
    name: str
    setting: str
    leaves: Leaves
    truth: list[Element]
    # ratio cases keep the raw counts for the baseline on the numerator alone
    nums: np.ndarray | None = None


def data_dir() -> Path:
    """$STOREOPS_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("STOREOPS_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def require(path: Path) -> Path:
    if not path.is_dir():
        print(
            f"public data missing: {path} is not a folder. Set STOREOPS_DATA to the folder that "
            "holds rca/squeeze_B0_dev and rca/rs_dev (default ../shared/data).",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return path


def _element(text: str) -> Element:
    return dict(pair.split("=", 1) for pair in text.split("&"))


def load_b0(root: Path) -> list[PublicCase]:
    cases = []
    for setting in sorted(p for p in root.iterdir() if p.is_dir()):
        with open(setting / "injection_info.csv", newline="") as f:
            truth = {row["timestamp"]: row["set"] for row in csv.DictReader(f)}
        for ts, sets in sorted(truth.items()):
            with gzip.open(setting / f"{ts}.csv.gz", "rt", newline="") as f:
                rows = list(csv.DictReader(f))
            keys = [tuple(r[d] for d in B0_DIMS) for r in rows]
            nums = np.array([[float(r["real"]) for r in rows], [float(r["predict"]) for r in rows]])
            leaves = leaves_from_columns(B0_DIMS, keys, nums)
            elements = [_element(e) for e in sets.split(";")]
            cases.append(PublicCase(ts, setting.name, leaves, elements))
    return cases


def load_rs(root: Path) -> list[PublicCase]:
    with open(root / "anomaly.yaml") as f:
        index = yaml.safe_load(f)
    cases = []
    for item in index:
        with open(root / f"{item['data']}.csv", newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            fields = reader.fieldnames or []
        dims = tuple(c for c in fields if c not in ("min", "value", "cnt"))
        ts = int(item["timestamp"])
        history = {ts - 60 * k for k in range(1, RS_HISTORY_MINUTES + 1)}
        # per leaf: real num, real den, summed history num, summed history den
        acc: dict[tuple[str, ...], list[float]] = {}
        for r in rows:
            minute = int(r["min"])
            if minute != ts and minute not in history:
                continue
            a = acc.setdefault(tuple(r[d] for d in dims), [0.0, 0.0, 0.0, 0.0])
            off = 0 if minute == ts else 2
            a[off] += float(r["value"])
            a[off + 1] += float(r["cnt"])
        keys = list(acc)
        v = np.array([acc[k] for k in keys], dtype=np.float64).T
        v[2:] /= RS_HISTORY_MINUTES
        leaves = leaves_from_columns(dims, keys, v, ratio=True)
        cause = item["cause"]
        causes = cause if isinstance(cause, list) else [cause]
        truth = [{str(k): str(x) for k, x in c.items()} for c in causes]
        cases.append(PublicCase(str(item["data"]), "rs", leaves, truth, v))
    return cases
