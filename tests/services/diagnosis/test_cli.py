"""The two command-line tools end to end, through a subprocess, with the issue's formats."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def run(module: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"services.diagnosis.{module}", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def rca_csv(ratio: bool = False) -> str:
    rng = random.Random(2)
    out = io.StringIO()
    w = csv.writer(out)
    if ratio:
        w.writerow(
            ["channel", "device", "region", "real_num", "real_den", "predict_num", "predict_den"]
        )
    else:
        w.writerow(["channel", "device", "region", "real", "predict"])
    for ch in ("search", "paid_search", "social", "live", "direct"):
        for dv in ("mobile", "desktop"):
            for rg in ("north", "south", "east", "west"):
                p = rng.uniform(50, 500)
                if ratio:
                    den, rate = p * 30, rng.uniform(0.01, 0.04)
                    f = 0.5 if (ch, dv) == ("live", "mobile") else 1.0
                    w.writerow(
                        [
                            ch,
                            dv,
                            rg,
                            den * rate * f * (1 + rng.gauss(0, 0.01)),
                            den,
                            den * rate,
                            den,
                        ]
                    )
                else:
                    f = 0.4 if ch == "paid_search" else 1.0
                    w.writerow([ch, dv, rg, p * f * (1 + rng.gauss(0, 0.02)), p])
    return out.getvalue()


def test_rca_prints_the_set_as_json(tmp_path: Path) -> None:
    r = run("rca", write(tmp_path, "leaves.csv", rca_csv()))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"channel": "paid_search"}]


def test_rca_ratio_columns(tmp_path: Path) -> None:
    r = run("rca", write(tmp_path, "ratio.csv", rca_csv(ratio=True)))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"channel": "live", "device": "mobile"}]


def test_rca_spread_evenly_says_no_single_cause(tmp_path: Path) -> None:
    lines = ["a,b,real,predict"] + [
        f"a{i},b{j},{80 + (i + j) % 3 * 0.1},100" for i in range(5) for j in range(4)
    ]
    r = run("rca", write(tmp_path, "even.csv", "\n".join(lines) + "\n"))
    assert r.returncode == 0 and json.loads(r.stdout) == []
    assert "no single cause" in r.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,predict\nx,y,1\n", "needs the columns real and predict"),
        ("a,real,predict\nx,abc,1\n", "line 2: real is not a number: 'abc'"),
        ("a,real,predict\nx,1,1\nx,2,2\n", "line 3: duplicate leaf {'a': 'x'}"),
        ("a,real,predict\n", "no leaf rows"),
        ("", "the file is empty"),
        ("real,predict\n1,2\n", "at least one dimension"),
        ("a,real,predict\nx,1\n", "line 2: wrong number of fields"),
    ],
)
def test_rca_bad_inputs_get_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    r = run("rca", write(tmp_path, "bad.csv", text))
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_rca_missing_file(tmp_path: Path) -> None:
    r = run("rca", tmp_path / "nope.csv")
    assert r.returncode == 2 and "cannot read" in r.stderr


def series_csv(n: int, step: int, start: int = 1_700_000_000) -> tuple[str, list[float]]:
    rng = random.Random(4)
    vals = [100 + 20 * math.sin(2 * math.pi * i / 24) + rng.gauss(0, 1.5) for i in range(n)]
    vals[n - 20] += 40
    lines = ["timestamp,value"] + [f"{start + i * step},{v:.3f}" for i, v in enumerate(vals)]
    return "\n".join(lines) + "\n", vals


def parse(out: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out)))


def test_anomaly_same_rows_same_order_scores_and_labels(tmp_path: Path) -> None:
    text, vals = series_csv(24 * 10, 3600)
    r = run("anomaly", write(tmp_path, "hourly.csv", text))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "timestamp,value,anomaly_score,label"
    rows = parse(r.stdout)
    src = list(csv.DictReader(io.StringIO(text)))
    assert [(x["timestamp"], x["value"]) for x in rows] == [
        (x["timestamp"], x["value"]) for x in src
    ]
    assert all(0 <= float(x["anomaly_score"]) <= 1 and x["label"] in ("0", "1") for x in rows)
    flagged = [i for i, x in enumerate(rows) if x["label"] == "1"]
    assert flagged == [len(vals) - 20]


def test_anomaly_daily_iso_dates_and_gaps(tmp_path: Path) -> None:
    rng = random.Random(1)
    lines = ["timestamp,value"]
    for i in range(90):
        if i in (40, 41):
            continue  # a gap of two days
        day = f"2025-{1 + (i // 30):02d}-{1 + i % 30:02d}"
        v = 1000 * (1.3 if i % 7 in (5, 6) else 1) * (1 + rng.gauss(0, 0.03))
        lines.append(f"{day},{'' if i == 60 else f'{v:.1f}'}")
    # 30-day months for a regular step: build real dates instead
    import datetime as dt

    d0 = dt.date(2025, 1, 1)
    fixed = ["timestamp,value"]
    for line, i in zip(lines[1:], [i for i in range(90) if i not in (40, 41)], strict=True):
        fixed.append(f"{(d0 + dt.timedelta(days=i)).isoformat()},{line.split(',')[1]}")
    r = run("anomaly", write(tmp_path, "daily.csv", "\n".join(fixed) + "\n"))
    assert r.returncode == 0, r.stderr
    assert "1 gap(s)" in r.stderr and "2 missing timestamp(s)" in r.stderr
    rows = parse(r.stdout)
    assert len(rows) == 88
    missing = [x for x in rows if x["value"] == ""]
    assert len(missing) == 1 and missing[0]["label"] == "1"  # a missing value is a data problem
    assert sum(x["label"] == "1" for x in rows) == 1  # and the gap raised nothing after it


def test_anomaly_daily_local_midnights_across_daylight_saving(tmp_path: Path) -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Europe/Berlin")
    lines = ["timestamp,value"]
    for i in range(60):
        d = dt.datetime(2025, 3, 1, tzinfo=tz) + dt.timedelta(days=i)
        lines.append(f"{d.isoformat()},{100 + (i % 7 == 6) * 20 + (i % 3)}")
    r = run("anomaly", write(tmp_path, "dst.csv", "\n".join(lines) + "\n"))
    assert r.returncode == 0, r.stderr
    assert len(parse(r.stdout)) == 60 and "gap" not in r.stderr


def test_anomaly_constant_series_is_not_an_error(tmp_path: Path) -> None:
    text = "timestamp,value\n" + "".join(f"{i * 60},5\n" for i in range(100))
    r = run("anomaly", write(tmp_path, "const.csv", text))
    assert r.returncode == 0 and "constant" in r.stderr
    assert {x["anomaly_score"] for x in parse(r.stdout)} == {"0.0000"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timestamp,value\n", "the series is empty"),
        ("", "the series is empty"),
        ("time,value\n1,2\n", "needs the columns timestamp and value"),
        ("timestamp,value\n1,2\n2,abc\n", "line 3: value is not a number: 'abc'"),
        ("timestamp,value\n1,2\n2011-08-24 25:00:01,3\n", "line 3: timestamp is not ISO"),
        ("timestamp,value\nyesterday,2\n", "timestamp is not ISO 8601"),
        ("timestamp,value\n1,\n2,\n", "every value is missing"),
    ],
)
def test_anomaly_bad_inputs_get_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    r = run("anomaly", write(tmp_path, "bad.csv", text))
    assert r.returncode == 2, r.stdout
    assert message in r.stderr and "Traceback" not in r.stderr


def test_anomaly_twenty_thousand_points_a_second(tmp_path: Path) -> None:
    text, _ = series_csv(100_000, 300)
    p = write(tmp_path, "big.csv", text)
    t0 = time.perf_counter()
    r = run("anomaly", p)
    elapsed = time.perf_counter() - t0
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 100_001
    assert 100_000 / elapsed >= 20_000, f"{100_000 / elapsed:.0f} points/s"
