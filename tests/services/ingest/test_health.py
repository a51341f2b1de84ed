"""Data health: per store and source, when it last delivered, what was rejected or failed, and
which days have no rows, so that a feed that stopped is never read as sales that stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from support import Harness


async def test_health_reports_sources_missing_days_and_rejections(ingest: Harness) -> None:
    keys = await ingest.tenant_with_keys("acme", ["acme-a", "acme-b"])
    c = ingest.client
    r = await c.get("/v1/stores/acme-a/health", headers=keys["viewer"])
    assert r.status_code == 200
    assert r.json()["status"] == "no_data" and r.json()["sources"] == []

    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()  # store is America/New_York
    local_end = date_in_new_york() - timedelta(days=1)
    days = [local_end - timedelta(days=i) for i in (0, 1, 3)]  # day -2 is missing
    rows = [{"date": d.isoformat(), "metric": "orders", "value": 5} for d in days]
    r = await c.post("/v1/stores/acme-a/metrics", json={"rows": rows}, headers=keys["operator"])
    assert r.status_code == 202
    future = (yesterday + timedelta(days=10)).isoformat()
    r = await c.post(
        "/v1/stores/acme-a/metrics",
        headers=keys["operator"],
        json={"rows": [{"date": future, "metric": "orders", "value": 1}]},
    )
    assert r.status_code == 422
    r = await c.post(
        "/v1/stores/acme-a/metrics/import",
        headers={**keys["operator"], "content-type": "text/csv"},
        content=f"date,orders\n{local_end.isoformat()},6\n".encode(),
    )
    assert r.status_code == 202

    health: dict[str, Any] = {}
    for _ in range(100):
        health = (
            await c.get("/v1/stores/acme-a/health", params={"days": 7}, headers=keys["viewer"])
        ).json()
        if any(s["source"] == "import" for s in health["sources"]):
            break
        import asyncio

        await asyncio.sleep(0.05)
    assert health["status"] == "ok"
    assert health["window_end"] == local_end.isoformat()
    assert (local_end - timedelta(days=2)).isoformat() in health["missing_days"]
    assert local_end.isoformat() not in health["missing_days"]
    assert len(health["missing_days"]) == 7 - 3
    sources = {s["source"]: s for s in health["sources"]}
    assert sources["api"]["delivered"] == 1 and sources["api"]["rejected"] == 1
    assert "future" in sources["api"]["last_error"]
    assert sources["import"]["delivered"] == 1
    r = await c.get("/v1/stores/acme-b/health", headers=keys["scoped"])
    assert r.status_code == 404
    metrics = (await c.get("/metrics")).text
    assert 'storeops_ingest_deliveries_total{outcome="rejected",source="api"}' in metrics
    assert "storeops_ingest_stale_stores" in metrics


def date_in_new_york() -> Any:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("America/New_York")).date()
