"""Levels of detail: what a mixed-grain read costs beside a single-grain read of the same size.

A store's 30 days as 120,000 rows, read back through GET /v1/stores/{id}/metrics (store totals
of visitors, buyers, gmv and the derived cvr and aov), two ways in the same run:
- single grain: every row at channel x device x region (the baseline: one grain to sum);
- six grains: the same number of rows spread over the store level, channel, channel x device,
  channel x device x region, copy_id and product_id x channel, so the read has to choose a
  grain per store-day-metric (shared/grains.py) and leave the slices out.
And diagnosis's side: the engine's aggregation (diagnose.py's _aggregate) of the same two
frames. Target: the mixed read costs no more than 1.2x the single-grain read (median of 5).
SQLite always; PostgreSQL too when TEST_PG_DSN is set.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.bench_ingest import KEY, H, pg_database
from bench.report import report
from services.diagnosis.engine.columns import Frame, SeriesColumns
from services.diagnosis.engine.diagnose import _aggregate, _Grains
from services.ingest.main import create_app
from shared import grains
from shared.config import IngestSettings

END = date(2026, 11, 20)
DAYS = 30
METRICS = ("visitors", "buyers", "gmv")
CHANNELS = ("search", "recommendation", "paid_search", "paid_display", "social", "live")
DEVICES = ("mobile", "pc", "tablet", "app")
TARGET = 1.2
REPEAT = 5


def _v(i: int, m: str) -> float:
    return float(i % 97 + 1) if m != "gmv" else round((i % 997) * 1.5, 2)


def single_grain(n: int = 120_000) -> list[dict[str, Any]]:
    regions = n // (DAYS * len(METRICS) * len(CHANNELS) * len(DEVICES))
    out = []
    i = 0
    for k in range(DAYS):
        d = (END - timedelta(days=k)).isoformat()
        for m in METRICS:
            for c in CHANNELS:
                for dev in DEVICES:
                    for r in range(regions):
                        out.append(
                            {
                                "date": d,
                                "metric": m,
                                "value": _v(i, m),
                                "dimensions": {"channel": c, "device": dev, "region": f"r{r}"},
                            }
                        )
                        i += 1
    return out


def six_grains(n: int = 120_000) -> list[dict[str, Any]]:
    per_day_metric = n // (DAYS * len(METRICS))
    out = []
    i = 0
    for k in range(DAYS):
        d = (END - timedelta(days=k)).isoformat()
        for m in METRICS:
            block: list[dict[str, str]] = [{}]
            block += [{"channel": c} for c in CHANNELS]
            block += [{"channel": c, "device": dev} for c in CHANNELS for dev in DEVICES]
            regions = 30
            block += [
                {"channel": c, "device": dev, "region": f"r{r}"}
                for c in CHANNELS
                for dev in DEVICES
                for r in range(regions)
            ]
            block += [{"copy_id": f"c{j}"} for j in range(40)]
            rest = per_day_metric - len(block)
            block += [
                {"product_id": f"p{j // len(CHANNELS)}", "channel": CHANNELS[j % len(CHANNELS)]}
                for j in range(rest)
            ]
            for dims in block:
                out.append({"date": d, "metric": m, "value": _v(i, m), "dimensions": dims})
                i += 1
    return out


async def read_cost(settings: IngestSettings, payload: list[dict[str, Any]]) -> tuple[float, Any]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b", timeout=300) as c:
            r = await c.post(
                "/v1/stores",
                json={
                    "id": "bench",
                    "name": "Bench",
                    "platform": "taobao",
                    "timezone": "UTC",
                    "currency": "CNY",
                    "market": "CN",
                },
                headers=H,
            )
            assert r.status_code == 201, r.text
            for i in range(0, len(payload), 50_000):
                r = await c.post(
                    "/v1/stores/bench/metrics",
                    json={"rows": payload[i : i + 50_000]},
                    headers=H,
                )
                assert r.status_code == 202, r.text[:300]
            params = {
                "start": (END - timedelta(days=DAYS - 1)).isoformat(),
                "end": END.isoformat(),
                "metric": "visitors,buyers,gmv,cvr,aov",
                "limit": 10_000,
            }
            times = []
            body = None
            for _ in range(REPEAT):
                t0 = time.perf_counter()
                r = await c.get("/v1/stores/bench/metrics", params=params, headers=H)
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text[:300]
                body = r.json()["items"]
    return statistics.median(times), body


def engine_cost(payload: list[dict[str, Any]]) -> float:
    rows = [{**r, "date": date.fromisoformat(r["date"])} for r in payload]
    cols = SeriesColumns.from_rows(rows)
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        frame = Frame.of(cols)
        _aggregate(frame, _Grains.of(frame, grains.registry()))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def main() -> int:
    single, mixed = single_grain(), six_grains()
    assert abs(len(single) - len(mixed)) < 0.02 * len(single), (len(single), len(mixed))
    expect = grains.aggregate({**r, "date": date.fromisoformat(r["date"])} for r in mixed)
    results: list[tuple[str, str, str, bool, str]] = []
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if os.environ.get("TEST_PG_DSN"):
        backends.append(("postgres", os.environ["TEST_PG_DSN"]))
    for backend, dsn in backends:
        costs = {}
        for name, payload in (("single", single), ("mixed", mixed)):
            with tempfile.TemporaryDirectory() as tmp:
                url = (
                    f"sqlite+aiosqlite:///{tmp}/ingest.db"
                    if dsn is None
                    else await pg_database(dsn)
                )
                settings = IngestSettings(
                    var_dir=Path(tmp),
                    database_url=url,
                    ops_bootstrap_api_key=KEY,
                    log_level="WARNING",
                    rate_limit_per_second=0,
                )
                costs[name], body = await read_cost(settings, payload)
                if name == "mixed":
                    got = {
                        (date.fromisoformat(i["date"]), m): v
                        for i in body
                        for m, v in i["values"].items()
                        if m in METRICS
                    }
                    assert got == {k: round(v, 6) for k, v in expect.items()}, "totals differ"
        ratio = costs["mixed"] / costs["single"]
        results.append(
            (
                f"store read, 30 days, 120,000 rows in 6 grains vs 1 grain ({backend})",
                f"<= {TARGET}x",
                f"{ratio:.2f}x",
                ratio <= TARGET,
                f"mixed {costs['mixed'] * 1000:.0f} ms, single grain {costs['single'] * 1000:.0f} ms "
                f"(median of {REPEAT}; {len(mixed):,} vs {len(single):,} rows); totals equal "
                "grains.aggregate: True",
            )
        )
    e_single, e_mixed = engine_cost(single), engine_cost(mixed)
    ratio = e_mixed / e_single
    results.append(
        (
            "diagnosis aggregation of the same rows, 6 grains vs 1 grain",
            f"<= {TARGET}x",
            f"{ratio:.2f}x",
            ratio <= TARGET,
            f"mixed {e_mixed * 1000:.0f} ms, single grain {e_single * 1000:.0f} ms",
        )
    )
    return report(
        "bench_grains",
        "Levels of detail",
        [
            "A store's 30 days read back as store totals (visitors, buyers, gmv, cvr, aov) "
            "through the API; the same 120,000 rows in one grain or six (docs/ingest.md, "
            "Levels of detail)."
        ],
        results,
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
