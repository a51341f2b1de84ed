"""POST /v1/rca and POST /v1/anomalies: the command-line tools over HTTP, same results."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from nab_clocks import traffic_like
from support import Harness, api_key_event, apply_events

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "diag-tools-viewer-token-0000000000000"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def cli(module: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"services.diagnosis.{module}", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def leaves(ratio: bool) -> list[dict[str, Any]]:
    rng = random.Random(11)
    out = []
    for ch in ("search", "paid_search", "social", "live", "direct"):
        for dv in ("mobile", "desktop"):
            for rg in ("north", "south", "east", "west"):
                p = rng.uniform(50, 500)
                row: dict[str, Any] = {"channel": ch, "device": dv, "region": rg}
                if ratio:
                    den, rate = p * 30, rng.uniform(0.01, 0.04)
                    f = 0.5 if (ch, dv) == ("live", "mobile") else 1.0
                    row.update(
                        real_num=den * rate * f * (1 + rng.gauss(0, 0.01)),
                        real_den=den,
                        predict_num=den * rate,
                        predict_den=den,
                    )
                else:
                    f = 0.4 if (ch, rg) == ("paid_search", "north") or ch == "social" else 1.0
                    row.update(real=p * f * (1 + rng.gauss(0, 0.02)), predict=p)
                out.append(row)
    return out


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    for r in rows:
        w.writerow({k: repr(v) if isinstance(v, float) else v for k, v in r.items()})
    return buf.getvalue()


async def test_rca_over_http_equals_the_cli(diagnosis: Harness, tmp_path: Path) -> None:
    await apply_events(diagnosis.app, api_key_event(TOKEN, "acme", "viewer"))
    for ratio in (False, True):
        rows = leaves(ratio)
        path = tmp_path / f"leaves-{ratio}.csv"
        path.write_text(to_csv(rows))
        out = cli("rca", path)
        assert out.returncode == 0, out.stderr
        expected = json.loads(out.stdout)
        assert expected  # the case has causes
        r = await diagnosis.client.post(
            "/v1/rca",
            json={"dimensions": ["channel", "device", "region"], "rows": rows},
            headers=AUTH,
        )
        assert r.status_code == 200, r.text
        assert r.json()["root_causes"] == expected
        assert r.json()["ratio"] is ratio and r.json()["verdict"] == "causes"
    bad = leaves(False)
    bad[17]["real"] = "abc"
    r = await diagnosis.client.post(
        "/v1/rca", json={"dimensions": ["channel", "device", "region"], "rows": bad}, headers=AUTH
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["loc"] == ["body", "rows"]
    assert "row 17: real is not a number" in r.json()["detail"]
    r = await diagnosis.client.post(
        "/v1/rca",
        json={"dimensions": ["channel"], "rows": [{"channel": "a", "x": 1}]},
        headers=AUTH,
    )
    assert r.status_code == 422
    r = await diagnosis.client.post("/v1/rca", json={"dimensions": ["c"], "rows": bad})
    assert r.status_code == 401


async def test_anomalies_over_http_equal_the_cli(diagnosis: Harness, tmp_path: Path) -> None:
    await apply_events(diagnosis.app, api_key_event(TOKEN, "acme", "viewer"))
    rng = random.Random(5)
    start = date(2025, 1, 1)
    points: list[dict[str, Any]] = []
    for i in range(120):
        if i in (40, 41):  # a gap: two days absent
            continue
        v: float | None = 1000 * (1 + 0.2 * math.sin(2 * math.pi * i / 7)) + rng.gauss(0, 15)
        if i == 90:
            v = v * 1.8  # a spike
        if i == 100:
            v = None  # a missing value
        points.append({"timestamp": (start + timedelta(days=i)).isoformat(), "value": v})
    path = tmp_path / "series.csv"
    path.write_text(
        "timestamp,value\n"
        + "".join(
            f"{p['timestamp']},{'' if p['value'] is None else repr(p['value'])}\n" for p in points
        )
    )
    out = cli("anomaly", path)
    assert out.returncode == 0, out.stderr
    expected = list(csv.DictReader(io.StringIO(out.stdout)))
    r = await diagnosis.client.post("/v1/anomalies", json={"points": points}, headers=AUTH)
    assert r.status_code == 200, r.text
    got = r.json()["points"]
    assert [(p["timestamp"], p["anomaly_score"], p["label"]) for p in got] == [
        (e["timestamp"], float(e["anomaly_score"]), int(e["label"])) for e in expected
    ]
    assert got[88]["label"] == 1 and got[98]["label"] == 1  # the spike, the missing value
    assert any("gap" in w for w in r.json()["warnings"])
    # a clock set back is taken, scored in file order, and said in the warnings
    back = [
        {"timestamp": "2025-01-02", "value": 1},
        {"timestamp": "2025-01-01", "value": 2},
    ]
    r = await diagnosis.client.post("/v1/anomalies", json={"points": back}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert [p["timestamp"] for p in r.json()["points"]] == ["2025-01-02", "2025-01-01"]
    assert any("earlier than the row before" in w for w in r.json()["warnings"])
    # the NAB traffic files' clock (repeats, steps of 5 to 42 minutes), through the stream mode
    rows = traffic_like()
    for mode in ("stream", "seasonal"):
        body = {"points": [{"timestamp": t, "value": float(v)} for t, v in rows], "mode": mode}
        r = await diagnosis.client.post("/v1/anomalies", json=body, headers=AUTH)
        assert r.status_code == 200, r.text
        assert [p["timestamp"] for p in r.json()["points"]] == [t for t, _ in rows]
        warnings = " ".join(r.json()["warnings"])
        assert "repeated timestamp" in warnings and "irregular steps" in warnings
    # only what cannot be read is refused
    bad = [{"timestamp": "2025-01-01", "value": 1}, {"timestamp": "yesterday", "value": 2}]
    r = await diagnosis.client.post("/v1/anomalies", json={"points": bad}, headers=AUTH)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "points"]
    assert "timestamp is not ISO 8601" in r.json()["detail"]
