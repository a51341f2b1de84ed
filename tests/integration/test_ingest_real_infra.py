"""Ingest on the real PostgreSQL and Kafka: events arrive on the real topic, the outbox rides out
a broker outage, a poison message is dead-lettered, and a PostgreSQL restart under load loses no
accepted row. Each test has its own database and its own topics."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select
from support import (
    REPO,
    Harness,
    Infra,
    assert_models_match_migrations,
    read_topic,
    services_script,
    store_body,
    wait_until,
)

from services.ingest.main import MIGRATIONS as INGEST_MIGRATIONS
from services.ingest.models import TABLES as INGEST_TABLES
from services.ingest.models import MetricRow
from shared.bus import KafkaBus, Message
from shared.config import ServiceSettings
from shared.events import Event, decode, topic_for
from shared.events.ingest import MetricsIngestedV1, StoreRegisteredV1
from shared.outbox import OutboxMessage, claim_event

pytestmark = pytest.mark.integration
TOPIC = topic_for("ingest")


def rows(day0: int, n: int, channel: str = "search") -> list[dict[str, Any]]:
    return [
        {
            # Dates wrap within a past year; the product id keeps every row distinct.
            "date": (date(2025, 1, 1) + timedelta(days=(day0 + i) % 300)).isoformat(),
            "metric": "visitors",
            "value": 10 + i,
            "dimensions": {"channel": channel, "product_id": f"p{(day0 + i) // 300}"},
        }
        for i in range(n)
    ]


async def setup_store(h: Harness) -> dict[str, str]:
    keys = await h.tenant_with_keys("acme", ["acme-a"])
    return keys["operator"]


async def outbox_ids(h: Harness) -> list[str]:
    t = OutboxMessage.__table__
    async with h.app.state.db.session(readonly=True) as s:
        return [r[0] for r in await s.execute(select(t.c.event_id).order_by(t.c.id))]


async def test_rows_posted_over_http_arrive_on_the_real_topic(
    pg_ingest: Harness, infra: Infra
) -> None:
    h = pg_ingest
    op = await setup_store(h)
    r = await h.client.post("/v1/stores/acme-a/metrics", json={"rows": rows(0, 5)}, headers=op)
    assert r.status_code == 202 and r.json()["accepted"] == 5
    topic = h.settings.kafka_topic_prefix + TOPIC

    def has_metrics(records: list[Any]) -> bool:
        return any(decode(rec.value).type == "ingest.metrics_ingested" for rec in records)

    records = await read_topic(infra, topic, until=has_metrics)
    events = [decode(rec.value) for rec in records]
    metrics = [e for e in events if isinstance(e, MetricsIngestedV1)]
    assert len(metrics) == 1 and metrics[0].accepted == 5
    assert sorted(r.value for r in metrics[0].rows) == [10, 11, 12, 13, 14]
    rec = next(rec for rec in records if decode(rec.value).type == "ingest.metrics_ingested")
    assert rec.key == b"acme-a"  # keyed by store: a store's events stay in order
    assert any(isinstance(e, StoreRegisteredV1) and e.store_id == "acme-a" for e in events)
    assert await h.app.state.relay.backlog() == 0


async def test_broker_outage_keeps_accepting_and_delivers_everything_once(
    pg_ingest: Harness, infra: Infra
) -> None:
    h = pg_ingest
    op = await setup_store(h)
    r = await h.client.post("/v1/stores/acme-a/metrics", json={"rows": rows(0, 3)}, headers=op)
    assert r.status_code == 202
    await wait_until(lambda: _zero(h), 60)

    services_script("stop-kafka")
    try:
        for i in range(10):
            t0 = time.monotonic()
            r = await h.client.post(
                "/v1/stores/acme-a/metrics", json={"rows": rows(10 + i * 5, 5)}, headers=op
            )
            assert r.status_code == 202, r.text
            assert time.monotonic() - t0 < 5  # the API does not wait for the broker
        assert await h.app.state.relay.backlog() >= 10
        ready = await h.client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["bus"] is False
    finally:
        services_script("start-kafka")

    await wait_until(lambda: _zero(h), 120, 0.5)
    staged = await outbox_ids(h)
    applied: dict[str, int] = {}
    group = "it-dedupe"

    async def handle(event: Event) -> None:
        async with h.app.state.db.session() as s:
            if await claim_event(s, group, event):
                applied[str(event.event_id)] = applied.get(str(event.event_id), 0) + 1
            await s.commit()

    bus = KafkaBus(
        ServiceSettings(
            service_name="it",
            kafka_bootstrap_servers=infra.kafka,
            kafka_topic_prefix=h.settings.kafka_topic_prefix,
            kafka_session_timeout_ms=6000,
            kafka_heartbeat_interval_ms=500,
        )
    )
    bus.subscribe(group, [TOPIC], handle)
    await bus.start()
    try:
        await wait_until(lambda: set(applied) >= set(staged), 60, 0.2)
    finally:
        await bus.stop()
    assert set(applied) == set(staged)
    assert all(n == 1 for n in applied.values())
    async with h.app.state.db.session(readonly=True) as s:
        assert await s.scalar(select(func.count()).select_from(MetricRow.__table__)) == 53


async def _zero(h: Harness) -> bool:
    return await h.app.state.relay.backlog() == 0


async def test_poison_message_goes_to_the_dlq_and_the_consumer_goes_on(
    infra: Infra, topic_prefix: str
) -> None:
    handled: list[str] = []

    async def handle(event: Event) -> None:
        handled.append(str(event.event_id))

    settings = ServiceSettings(
        service_name="it",
        kafka_bootstrap_servers=infra.kafka,
        kafka_topic_prefix=topic_prefix,
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=500,
    )
    bus = KafkaBus(settings)
    bus.subscribe("it-poison", [TOPIC], handle)
    await bus.start()
    good = StoreRegisteredV1.example()
    try:
        await bus.publish(
            [Message(TOPIC, "demo-shopify", b'{"type": 42'), Message.from_event(good)]
        )
        await wait_until(lambda: handled == [str(good.event_id)], 60)
    finally:
        await bus.stop()
    dead = await read_topic(infra, topic_prefix + TOPIC + ".dlq", until=lambda r: len(r) >= 1)
    assert dead[0].value == b'{"type": 42'
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert "UndecodableEvent" in headers["error"] and headers["group"] == "it-poison"


async def test_postgres_restart_under_load_loses_no_accepted_row(pg_ingest: Harness) -> None:
    h = pg_ingest
    op = await setup_store(h)
    accepted = 0
    statuses: list[int] = []
    stop = asyncio.Event()

    async def writer(w: int) -> None:
        nonlocal accepted
        i = 0
        while not stop.is_set():
            body = {"rows": rows(i * 7, 7, channel=["search", "social", "direct", "live"][w])}
            try:
                r = await h.client.post("/v1/stores/acme-a/metrics", json=body, headers=op)
            except httpx.HTTPError:
                statuses.append(-1)
                await asyncio.sleep(0.2)
                continue
            statuses.append(r.status_code)
            if r.status_code == 202:
                accepted += r.json()["accepted"]
                i += 1
            else:
                assert r.status_code == 503, r.text
                assert r.headers["content-type"] == "application/problem+json"
                await asyncio.sleep(0.2)

    tasks = [asyncio.create_task(writer(w)) for w in range(4)]
    await asyncio.sleep(2)
    await asyncio.to_thread(services_script, "stop-pg")
    await asyncio.sleep(2)
    await asyncio.to_thread(services_script, "start-pg")
    await asyncio.sleep(3)
    stop.set()
    await asyncio.gather(*tasks)
    assert 503 in statuses, "the restart never hit a request"
    assert statuses.count(202) > 20
    async with h.app.state.db.session(readonly=True) as s:
        stored = await s.scalar(select(func.count()).select_from(MetricRow.__table__))
    assert stored == accepted
    await wait_until(lambda: _zero(h), 60, 0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_python_m_services_ingest_runs_alone_on_postgres_and_kafka(
    infra: Infra, pg_database: str, topic_prefix: str, tmp_path: Any
) -> None:
    log_file = tmp_path / "ingest.log"
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": pg_database,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "OPS_BOOTSTRAP_API_KEY": "it-bootstrap-key-123",
        "PORT": str(port),
        "LOG_LEVEL": "INFO",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.ingest"],
        cwd=REPO,
        env=env,
        stdout=log_file.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer it-bootstrap-key-123"}
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:

            async def ready() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(log_file.read_text())
                try:
                    return (await c.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_until(ready, 60, 0.2)
            r = await c.post("/v1/stores", json=store_body("solo"), headers=auth)
            assert r.status_code == 201, r.text
            r = await c.post("/v1/stores/solo/metrics", json={"rows": rows(0, 2)}, headers=auth)
            assert r.status_code == 202
        records = await read_topic(
            infra,
            topic_prefix + TOPIC,
            until=lambda recs: any(b"metrics_ingested" in rec.value for rec in recs),
        )
        types = [decode(rec.value).type for rec in records]
        assert types == ["ingest.store_registered", "ingest.metrics_ingested"]
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal (exit status -SIGTERM).
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert '"event": "service_stopped"' in log_file.read_text()


async def test_models_and_migrations_agree_on_postgres(infra: Infra) -> None:
    name = f"m_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(infra.dsn("postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        await assert_models_match_migrations(
            infra.async_url(name), INGEST_TABLES, INGEST_MIGRATIONS
        )
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def test_reading_series_on_postgres(pg_ingest: Harness) -> None:
    h = pg_ingest
    op = await setup_store(h)
    rows = [
        {
            "date": "2026-10-01",
            "metric": "visitors",
            "value": 1000,
            "dimensions": {"channel": "search", "device": "mobile"},
        },
        {
            "date": "2026-10-01",
            "metric": "visitors",
            "value": 500,
            "dimensions": {"channel": "search", "device": "desktop"},
        },
        {
            "date": "2026-10-01",
            "metric": "buyers",
            "value": 10,
            "dimensions": {"channel": "search", "device": "mobile"},
        },
        {
            "date": "2026-10-01",
            "metric": "buyers",
            "value": 20,
            "dimensions": {"channel": "search", "device": "desktop"},
        },
        {"date": "2026-10-01", "metric": "visitors", "value": 1500, "dimensions": {}},
    ]
    r = await h.client.post("/v1/stores/acme-a/metrics", json={"rows": rows}, headers=op)
    assert r.status_code == 202
    r = await h.client.get(
        "/v1/stores/acme-a/metrics",
        headers=op,
        params={
            "start": "2026-10-01",
            "end": "2026-10-01",
            "metric": "visitors,cvr",
            "group_by": "device",
        },
    )
    items = {i["dimensions"]["device"]: i["values"] for i in r.json()["items"]}
    assert items["desktop"]["cvr"] == pytest.approx(20 / 500)
    r = await h.client.get(
        "/v1/stores/acme-a/metrics",
        headers=op,
        params={"start": "2026-10-01", "end": "2026-10-01", "metric": "visitors"},
    )
    assert r.json()["items"][0]["values"]["visitors"] == 1500
