"""Ingest throughput: a 50,000-row POST end to end (HTTP parse and validation, idempotent upsert,
outbox events), beside a baseline that writes the same rows one at a time (SELECT, then INSERT or
UPDATE per row), measured in the same run. SQLite always; PostgreSQL when TEST_PG_DSN is set
(scripts/bench.sh starts it).

Prints target, measured and pass for each benchmark, appends to docs/benchmarks.md, and exits
non-zero on a miss.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from services.ingest.main import MIGRATIONS, create_app
from services.ingest.models import MetricRow
from services.ingest.service import canonical_dimensions
from shared.config import IngestSettings, ServiceSettings
from shared.db import Database, migrate

KEY = "bench-admin-key-0123456789"
H = {"Authorization": f"Bearer {KEY}"}
N = 50_000


def rows(n: int) -> list[dict[str, Any]]:
    channels = ["search", "recommendation", "paid_search", "social", "live", "direct"]
    out = []
    for i in range(n):
        out.append(
            {
                "date": (date(2025, 1, 1) + timedelta(days=i % 365)).isoformat(),
                "metric": ["visitors", "orders", "gmv", "clicks"][i % 4],
                "value": float(i % 997),
                "dimensions": {"channel": channels[i % 6], "product_id": f"p{i // 1460}"},
            }
        )
    return out


async def platform_run(settings: IngestSettings, payload: list[dict[str, Any]]) -> dict[str, float]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b", timeout=300) as c:
            r = await c.post(
                "/v1/stores",
                json={
                    "id": "bench",
                    "name": "Bench",
                    "platform": "shopify",
                    "timezone": "UTC",
                    "currency": "USD",
                    "market": "US",
                },
                headers=H,
            )
            assert r.status_code == 201, r.text
            t0 = time.perf_counter()
            r = await c.post("/v1/stores/bench/metrics", json={"rows": payload}, headers=H)
            first = time.perf_counter() - t0
            assert r.status_code == 202 and r.json()["accepted"] == len(payload), r.text[:300]
            t0 = time.perf_counter()
            r = await c.post("/v1/stores/bench/metrics", json={"rows": payload}, headers=H)
            resend = time.perf_counter() - t0
            assert r.json()["duplicates"] == len(payload)
    return {"first": first, "resend": resend}


async def baseline_run(url: str, payload: list[dict[str, Any]]) -> float:
    """The naive way: one SELECT and one INSERT/UPDATE per row, in one transaction."""
    db = Database(ServiceSettings(service_name="baseline", database_url=url))
    await migrate(db.engine, MIGRATIONS)
    t = MetricRow.__table__  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    async with db.session() as s:
        now = datetime.now(UTC)
        for r in payload:
            d = date.fromisoformat(r["date"])
            key = canonical_dimensions(r["dimensions"])
            hit = (
                await s.execute(
                    select(t.c.id, t.c.value).where(
                        t.c.tenant_id == "b",
                        t.c.store_id == "bench",
                        t.c.date == d,
                        t.c.metric == r["metric"],
                        t.c.dims_key == key,
                    )
                )
            ).first()
            if hit is None:
                await s.execute(
                    t.insert().values(
                        tenant_id="b",
                        store_id="bench",
                        date=d,
                        metric=r["metric"],
                        dims_key=key,
                        dimensions=r["dimensions"],
                        value=r["value"],
                        source="api",
                        updated_at=now,
                    )
                )
            elif hit.value != r["value"]:
                await s.execute(t.update().where(t.c.id == hit.id).values(value=r["value"]))
        await s.commit()
    elapsed = time.perf_counter() - t0
    await db.dispose()
    return elapsed


async def pg_database(dsn: str) -> str:
    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name


async def main() -> int:
    payload = rows(N)
    results: list[tuple[str, str, float, str, bool, str]] = []
    backends = [("sqlite", None)]
    if os.environ.get("TEST_PG_DSN"):
        backends.append(("postgres", os.environ["TEST_PG_DSN"]))
    for backend, dsn in backends:
        with tempfile.TemporaryDirectory() as tmp:
            if dsn is None:
                url = f"sqlite+aiosqlite:///{tmp}/ingest.db"
                base_url = f"sqlite+aiosqlite:///{tmp}/baseline.db"
            else:
                url, base_url = await pg_database(dsn), await pg_database(dsn)
            settings = IngestSettings(
                var_dir=Path(tmp),
                database_url=url,
                ops_bootstrap_api_key=KEY,
                log_level="WARNING",
                rate_limit_per_second=0,
            )
            ours = await platform_run(settings, payload)
            base = await baseline_run(base_url, payload)
        speedup = base / ours["first"]
        target_s = 10.0
        results.append(
            (
                f"ingest 50k rows, one POST ({backend})",
                f"<= {target_s:.0f} s",
                ours["first"],
                f"{ours['first']:.2f} s",
                ours["first"] <= target_s,
                f"baseline row-by-row {base:.2f} s, {speedup:.1f}x",
            )
        )
        results.append(
            (
                f"re-send 50k rows, all duplicates ({backend})",
                f"<= {target_s:.0f} s",
                ours["resend"],
                f"{ours['resend']:.2f} s",
                ours["resend"] <= target_s,
                f"{N / ours['resend']:.0f} rows/s",
            )
        )
        results.append(
            (
                f"speed-up over the row-by-row baseline ({backend})",
                ">= 3x",
                speedup,
                f"{speedup:.1f}x",
                speedup >= 3,
                "",
            )
        )
    ok = True
    lines = []
    for name, target, _, measured, passed, note in results:
        ok &= passed
        print(
            f"{name}: target {target}, measured {measured}, {'pass' if passed else 'MISS'}"
            + (f" ({note})" if note else "")
        )
        lines.append(
            f"| {name} | {target} | {measured} | {'pass' if passed else 'MISS'} | {note} |"
        )
    out = Path(os.environ.get("BENCH_OUT", "var/bench/bench_ingest.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    header = [
        "## Ingest",
        "",
        "| benchmark | target | measured | result | baseline / note |",
        "|---|---|---|---|---|",
    ]
    out.write_text("\n".join(header + lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
