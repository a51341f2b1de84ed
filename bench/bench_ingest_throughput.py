"""Ingest throughput through POST /v1/stores/{id}/metrics in batches of 5,000 rows, beside a
baseline that does the same work straight against the database (the same upsert with the same
duplicate/update counting, 5,000 rows a transaction), measured in the same run, on SQLite and on
PostgreSQL (TEST_PG_DSN). Target: the API reaches at least 70% of the baseline's rows per second.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.bench_ingest import KEY, H, pg_database, rows
from services.ingest import repository as repo
from services.ingest.main import MIGRATIONS, create_app
from services.ingest.models import MetricRow
from services.ingest.service import canonical_dimensions
from shared.app import GC_THRESHOLD
from shared.config import IngestSettings, ServiceSettings
from shared.db import Database, migrate

N = 100_000
BATCH = 5_000
TARGET = 0.70
REPEATS = 3


async def api_run(settings: IngestSettings, payload: list[dict[str, Any]]) -> float:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b", timeout=300) as c:
            r = await c.post(
                "/v1/stores",
                headers=H,
                json={
                    "id": "bench",
                    "name": "Bench",
                    "platform": "shopify",
                    "timezone": "UTC",
                    "currency": "USD",
                    "market": "US",
                },
            )
            assert r.status_code == 201, r.text
            # The client's own JSON encoding is not the server's work: encode before timing.
            bodies = [
                json.dumps({"rows": payload[i : i + BATCH]}).encode()
                for i in range(0, len(payload), BATCH)
            ]
            headers = {**H, "content-type": "application/json"}
            t0 = time.perf_counter()
            for body in bodies:
                r = await c.post("/v1/stores/bench/metrics", headers=headers, content=body)
                assert r.status_code == 202, r.text[:300]
            return time.perf_counter() - t0


async def baseline_run(url: str, payload: list[dict[str, Any]]) -> float:
    db = Database(ServiceSettings(service_name="baseline", database_url=url))
    await migrate(db.engine, MIGRATIONS)
    table = MetricRow.__table__  # type: ignore[attr-defined]
    keys = ("tenant_id", "store_id", "date", "metric", "dims_key")
    t0 = time.perf_counter()
    for i in range(0, len(payload), BATCH):
        now = datetime.now(UTC)
        records = [
            {
                "tenant_id": "b",
                "store_id": "bench",
                "date": date.fromisoformat(r["date"]),
                "metric": r["metric"],
                "dims_key": canonical_dimensions(r["dimensions"]),
                "dims_level": ",".join(sorted(r["dimensions"])),
                "dimensions": r["dimensions"],
                "value": float(r["value"]),
                "source": "api",
                "updated_at": now,
            }
            for r in payload[i : i + BATCH]
        ]
        async with db.session() as s:
            res = await repo.upsert_rows(s, table, keys, records)
            assert len(res.inserted) == len(records)
            await s.commit()
    elapsed = time.perf_counter() - t0
    await db.dispose()
    return elapsed


async def main() -> int:
    # Both sides under the collector settings the services run with (shared/app.py).
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    payload = rows(N)
    lines = [
        "## Ingest throughput (POST /metrics in batches of 5,000)",
        "",
        "| benchmark | target | measured | result | baseline / note |",
        "|---|---|---|---|---|",
    ]
    ok = True
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if os.environ.get("TEST_PG_DSN"):
        backends.append(("postgres", os.environ["TEST_PG_DSN"]))
    for backend, dsn in backends:
        # Best of REPEATS runs on each side, each on a fresh database, interleaved: the machine's
        # noise then weighs on both sides alike.
        base, api = float("inf"), float("inf")
        for _ in range(REPEATS):
            with tempfile.TemporaryDirectory() as tmp:
                if dsn is None:
                    url = f"sqlite+aiosqlite:///{tmp}/ingest.db"
                    base_url = f"sqlite+aiosqlite:///{tmp}/baseline.db"
                else:
                    url, base_url = await pg_database(dsn), await pg_database(dsn)
                # PostgreSQL runs as deployed, with the real Kafka broker; SQLite as embedded.
                kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "") if dsn else ""
                settings = IngestSettings(
                    var_dir=Path(tmp),
                    database_url=url,
                    kafka_bootstrap_servers=kafka,
                    kafka_topic_prefix=f"bench{os.getpid()}.",
                    ops_bootstrap_api_key=KEY,
                    log_level="WARNING",
                    rate_limit_per_second=0,
                )
                base = min(base, await baseline_run(base_url, payload))
                api = min(api, await api_run(settings, payload))
        api_rate, base_rate = N / api, N / base
        ratio = api_rate / base_rate
        passed = ratio >= TARGET
        ok &= passed
        name = f"API rows/s vs direct upsert ({backend})"
        print(
            f"{name}: target >= {TARGET:.0%}, measured {ratio:.0%} "
            f"({api_rate:,.0f} vs {base_rate:,.0f} rows/s), {'pass' if passed else 'MISS'}"
        )
        lines.append(
            f"| {name} | >= {TARGET:.0%} of baseline | {api_rate:,.0f} rows/s "
            f"({ratio:.0%}) | {'pass' if passed else 'MISS'} | baseline "
            f"{base_rate:,.0f} rows/s, {N:,} rows, best of {REPEATS} |"
        )
    out = Path(os.environ.get("BENCH_OUT", "var/bench/bench_ingest_throughput.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
