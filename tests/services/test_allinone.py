"""The embedded default behind `make run`: every built service in one process on one LocalBus,
with the demo tenant loaded through ingest's own use cases."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import httpx
from sqlalchemy import func, select
from support import wait_until

from services.allinone import AllInOne, available_services
from services.ingest.demo import generate_demo
from services.ingest.models import BenchmarkRow, CompetitorRow, MetricRow
from services.ingest.seed import seed_demo
from shared.bus import LocalBus
from shared.events import decode

END = date(2026, 11, 20)


async def test_all_in_one_with_the_demo(tmp_path: Path) -> None:
    aio = AllInOne(
        {
            "var_dir": tmp_path,
            "database_url": "",
            "kafka_bootstrap_servers": "",
            "log_level": "WARNING",
            "outbox_poll_seconds": 0.05,
        }
    )
    assert "ingest" in aio.apps and available_services()[0] == "ingest"
    async with aio.lifespan():
        state = aio.apps["ingest"].state
        result = await seed_demo(state, end=END)
        assert result.created and result.api_key.startswith("ops_")
        assert (tmp_path / "demo-admin-key.txt").read_text().strip() == result.api_key
        demo = generate_demo(end=END)
        async with state.db.session(readonly=True) as s:
            for store in demo.stores:
                n = await s.scalar(
                    select(func.count())
                    .select_from(MetricRow.__table__)
                    .where(MetricRow.__table__.c.store_id == store["id"])
                )
                assert n == len(demo.rows[store["id"]])
            comps = await s.scalar(
                select(
                    func.count(func.distinct(CompetitorRow.__table__.c.competitor_id))
                ).select_from(CompetitorRow.__table__)
            )
            bench = await s.scalar(select(func.count()).select_from(BenchmarkRow.__table__))
        assert comps == 6 and bench == sum(len(b["rows"]) for b in demo.benchmarks)

        auth = {"Authorization": f"Bearer {result.api_key}"}
        transport = httpx.ASGITransport(app=aio)
        async with httpx.AsyncClient(transport=transport, base_url="http://aio") as c:
            r = await c.get("/v1/stores", headers=auth)
            assert [s["id"] for s in r.json()["items"]] == [
                "demo-shopify",
                "demo-taobao",
                "demo-woo",
            ]
            assert {s["timezone"] for s in r.json()["items"]} == {
                "America/New_York",
                "Asia/Shanghai",
                "Europe/Berlin",
            }
            ready = await c.get("/readyz")
            assert ready.status_code == 200
            checks = ready.json()["checks"]
            assert checks["bus"] is True and checks["ingest.database"] is True
            assert all(checks.values())
            docs = await c.get("/ingest/openapi.json")
            assert docs.status_code == 200 and "/v1/stores" in docs.json()["paths"]
            missing = await c.get("/v1/no-such-thing", headers=auth)
            assert missing.status_code == 404
            assert missing.headers["content-type"] == "application/problem+json"
            assert "storeops_http_requests_total" in (await c.get("/metrics")).text

        # Everything staged reached the bus.
        bus = aio.bus
        assert isinstance(bus, LocalBus)

        async def delivered() -> bool:
            return bool(await state.relay.backlog() == 0)

        await wait_until(delivered, 30)
        types = [decode(m["value"]).type for m in await bus.read("ingest.v1", 0, 10_000)]
        assert types.count("ingest.store_registered") == 3
        assert "ingest.metrics_ingested" in types and "ingest.benchmark_ingested" in types
        assert "ingest.competitor_metrics_ingested" in types

        again = await seed_demo(state, end=END)
        assert not again.created and again.api_key == result.api_key


async def test_concurrent_writers_on_sqlite_never_hit_database_is_locked(
    tmp_path: Path,
) -> None:
    import asyncio

    aio = AllInOne(
        {
            "var_dir": tmp_path,
            "database_url": "",
            "kafka_bootstrap_servers": "",
            "log_level": "WARNING",
            "ops_bootstrap_api_key": "aio-admin-key-1234567",
        }
    )
    auth = {"Authorization": "Bearer aio-admin-key-1234567"}
    async with aio.lifespan():
        transport = httpx.ASGITransport(app=aio)
        async with httpx.AsyncClient(transport=transport, base_url="http://aio") as c:
            r = await c.post(
                "/v1/stores",
                headers=auth,
                json={
                    "id": "s",
                    "name": "S",
                    "platform": "jd",
                    "timezone": "Asia/Shanghai",
                    "currency": "CNY",
                    "market": "CN",
                },
            )
            assert r.status_code == 201

            async def post(i: int) -> int:
                rows = [
                    {
                        "date": f"2026-01-0{1 + i % 9}",
                        "metric": "orders",
                        "value": j,
                        "dimensions": {"product_id": f"w{i}-{j}"},
                    }
                    for j in range(200)
                ]
                resp = await c.post("/v1/stores/s/metrics", json={"rows": rows}, headers=auth)
                return resp.status_code

            statuses = await asyncio.gather(*(post(i) for i in range(16)))
        assert statuses == [202] * 16
        async with aio.apps["ingest"].state.db.session(readonly=True) as s:
            assert await s.scalar(select(func.count()).select_from(MetricRow.__table__)) == 3200
