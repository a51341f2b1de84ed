"""Diagnosis on the real broker and database: ingest's events arrive from Kafka into its own
copy of the series (PostgreSQL), the scheduler diagnoses the store-day, and the report and the
finding leave through the outbox relay to the "diagnosis.v1" topic. A redelivered batch changes
nothing and opens no second finding."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select
from support import ADMIN_KEY, Harness, Infra, api_key_event, publish, read_topic, wait_until

from services.diagnosis.main import create_app
from services.diagnosis.models import FindingRow, KnownStore, SeriesRow
from services.ingest.demo import generate_demo
from shared.config import DiagnosisSettings
from shared.events.ingest import StoreUpdatedV1

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "diagnosis"))
from diagnosis_helpers import (
    benchmark_events,
    metrics_events,
    store_registered,
    window,
)

END = date(2026, 3, 20)
DEMO = generate_demo(end=END)
SHOP = next(s for s in DEMO.stores if s["id"] == "demo-shopify")
INCIDENT = next(i for i in DEMO.incidents if i.id == "paid_traffic_collapse")


@pytest.fixture
async def kafka_diagnosis(tmp_path: Path, infra: Infra) -> AsyncIterator[Harness]:
    name = f"dk_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(infra.dsn("postgres"))
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    settings = DiagnosisSettings(
        var_dir=tmp_path,
        ops_bootstrap_api_key=ADMIN_KEY,
        log_level="WARNING",
        database_url=infra.async_url(name),
        kafka_bootstrap_servers=infra.kafka,
        kafka_topic_prefix=f"it{uuid.uuid4().hex[:8]}.",
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=500,
        outbox_poll_seconds=0.1,
        auto_diagnose=False,  # the test drives the scheduler with its own clock
        debounce_seconds=0.0,
        backfill_days=1,
    )
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://test", timeout=60
            ) as client:
                yield Harness(app, client, settings)
    finally:
        conn = await asyncpg.connect(infra.dsn("postgres"))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def test_metrics_from_kafka_report_and_findings_to_kafka(
    kafka_diagnosis: Harness, infra: Infra
) -> None:
    h = kafka_diagnosis
    rows = window(DEMO.rows["demo-shopify"], INCIDENT.date - timedelta(days=40), INCIDENT.date)
    metrics = metrics_events("acme", "k-shop", rows)
    token = "ops_kafka_diag_viewer_0123456789abcd"
    # Metrics first, the store after: the consumer must keep rows of a store it does not know.
    await publish(h.app, api_key_event(token, "acme", "viewer"), *metrics)
    await publish(
        h.app,
        store_registered(SHOP, "acme", "k-shop"),
        *benchmark_events("acme", next(b for b in DEMO.benchmarks if b["market"] == "US")),
    )

    async def count(model: Any, **where: Any) -> int:
        return await h.count(model, **where)

    async def copied() -> bool:
        return await count(SeriesRow, store_id="k-shop") == len(rows)

    await wait_until(copied, timeout=90)
    sched = h.app.state.scheduler
    now = datetime.combine(INCIDENT.date + timedelta(days=1), time(12), tzinfo=UTC)

    async def diagnosed() -> bool:
        # the store event and the benchmark may still be on their way: retry the round
        await sched.run_until_idle(now=now)
        return await count(FindingRow, store_id="k-shop", code="paid_traffic_drop") == 1

    await wait_until(diagnosed, timeout=90, interval=0.5)

    topic = h.settings.kafka_topic_prefix + "diagnosis.v1"

    def complete(records: list[Any]) -> bool:
        types = [json.loads(r.value)["type"] for r in records]
        return "diagnosis.diagnosis_completed" in types and "diagnosis.finding_opened" in types

    records = await read_topic(infra, topic, until=complete, timeout=90)
    payloads = [json.loads(r.value) for r in records]
    done = [
        p
        for p in payloads
        if p["type"] == "diagnosis.diagnosis_completed" and p["date"] == INCIDENT.date.isoformat()
    ]
    assert done and done[0]["store_id"] == "k-shop" and done[0]["report_version"] == 1
    opened = [
        p
        for p in payloads
        if p["type"] == "diagnosis.finding_opened" and p["code"] == "paid_traffic_drop"
    ]
    assert len(opened) == 1
    assert opened[0]["owner"] == "promotion" and opened[0]["dimensions"] == {
        "channel": "paid_search"
    }
    assert str(opened[0]["finding_id"]) in [str(f) for f in done[0]["finding_ids"]]
    assert all(r.key.decode() == "k-shop" for r in records)  # keyed by store: ordered per store

    # The same batch delivered again from the broker: nothing changes, nothing is redone.
    # A rename after them, on the same partition (key = store): once it is applied, the
    # redelivered batch before it has been handled.
    renamed = StoreUpdatedV1(
        **{
            **store_registered(SHOP, "acme", "k-shop").model_dump(
                exclude={"type", "event_id", "occurred_at"}
            ),
            "name": "K shop renamed",
        }
    )
    await publish(h.app, *metrics, renamed)

    async def applied() -> bool:
        async with h.app.state.db.session(readonly=True) as s:
            t = KnownStore.__table__
            name = await s.scalar(select(t.c.name).where(t.c.store_id == "k-shop"))
        return name == "K shop renamed"

    await wait_until(applied, timeout=60)
    assert await sched.run_once(now=now) == 0
    assert await count(FindingRow, store_id="k-shop", code="paid_traffic_drop") == 1
    r = await h.client.get(
        f"/v1/stores/k-shop/diagnoses/{INCIDENT.date}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200 and r.json()["version"] == 1
