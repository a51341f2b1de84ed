"""Random mixes of levels of detail for one store: the rows every service must total alike.

A mix draws, per day, rows of channel x device (always), and at random: store-level rows,
channel rows, device rows (whose values need not agree with the finer rows: the rules pick one
grain, they never reconcile), and slices that must never reach a total (copy_id, product_id x
channel, an unknown key such as landing_page).
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

CHANNELS = ("search", "recommendation", "paid_search", "live")
DEVICES = ("mobile", "pc")
METRICS = ("visitors", "buyers", "gmv")


def _value(rng: random.Random, metric: str, scale: float) -> float:
    if metric == "gmv":
        return round(rng.uniform(50, 5000) * scale, 2)
    if metric == "buyers":
        return float(rng.randint(0, 40))
    return float(rng.randint(20, 2000))


def grain_mix(seed: int, end: date, days: int = 15) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    kinds = {
        "store": rng.random() < 0.5,
        "channel": rng.random() < 0.5,
        "device": rng.random() < 0.5,
        "copy": rng.random() < 0.7,
        "product": rng.random() < 0.5,
        "stray": rng.random() < 0.5,
    }
    for k in range(days - 1, -1, -1):
        day = end - timedelta(days=k)
        for m in METRICS:

            def add(dims: dict[str, str], scale: float = 1.0, day: date = day, m: str = m) -> None:
                rows.append(
                    {"date": day, "metric": m, "value": _value(rng, m, scale), "dimensions": dims}
                )

            for ch in CHANNELS:
                for dev in DEVICES:
                    add({"channel": ch, "device": dev})
            # coarser grains on some days only: the rule is decided per store-day-metric
            if kinds["store"] and rng.random() < 0.7:
                add({}, 8)
            if kinds["channel"] and rng.random() < 0.7:
                for ch in CHANNELS:
                    add({"channel": ch}, 2)
            if kinds["device"] and rng.random() < 0.7:
                for dev in DEVICES:
                    add({"device": dev}, 4)
            if kinds["copy"]:
                for c in ("copy-a", "copy-b"):
                    add({"copy_id": c}, 0.05)
            if kinds["product"]:
                for p in ("p1", "p2", "p3"):
                    add({"product_id": p, "channel": rng.choice(CHANNELS)}, 0.2)
            if kinds["stray"] and rng.random() < 0.5:
                add({"landing_page": "/promo"}, 0.01)
    return rows


def as_api(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "date": r["date"].isoformat()} for r in rows]


async def check_store_totals_agree(
    ingest: Any,
    diagnosis: Any,
    headers: dict[str, str],
    store_id: str,
    rows: list[dict[str, Any]],
    day: date,
    *,
    timeout: float = 90.0,
) -> dict[str, Any]:
    """Ingest's read, diagnosis's report and shared/grains.py agree on a store-day's totals.

    `ingest` and `diagnosis` are httpx clients (one app for both in the embedded mode); the rows
    were posted to ingest already. The report is requested until diagnosis's copy has caught up
    with ingest (the events cross the bus), then its KPI values are compared."""
    import asyncio

    from shared import grains

    expect = grains.aggregate(rows)
    r = await ingest.get(
        f"/v1/stores/{store_id}/metrics",
        params={"start": day.isoformat(), "end": day.isoformat(), "metric": ",".join(METRICS)},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    shown = r.json()["items"][0]["values"]
    for m in METRICS:
        assert shown[m] == pytest_approx(expect[(day, m)]), (m, shown[m], expect[(day, m)])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    report: dict[str, Any] = {}
    while True:
        r = await diagnosis.post(
            f"/v1/stores/{store_id}/diagnoses", json={"date": day.isoformat()}, headers=headers
        )
        if r.status_code == 200:
            report = r.json()
            kpis = {k["metric"]: k["value"] for k in report["kpis"]}
            if all(kpis.get(m) == pytest_approx(shown[m]) for m in METRICS):
                return report
        if loop.time() > deadline:
            raise AssertionError(
                f"diagnosis never showed ingest's totals: {r.status_code} {r.text[:500]}"
            )
        await asyncio.sleep(0.5)


def pytest_approx(v: float) -> Any:
    import pytest

    return pytest.approx(v, rel=1e-9, abs=1e-6)
