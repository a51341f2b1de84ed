"""Content on PostgreSQL and the real Kafka broker, fed by the real ingest service: keys and
stores arrive as events, a published copy and a decided experiment leave on content.v1."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from support import (
    Harness,
    Infra,
    assert_models_match_migrations,
    content_settings,
    read_topic,
    wait_until,
)

from services.content.main import MIGRATIONS as CONTENT_MIGRATIONS
from services.content.main import create_app as create_content
from services.content.models import TABLES as CONTENT_TABLES
from shared.events import decode
from shared.events.content import CopyPublishedV1, ExperimentDecidedV1

REPO = Path(__file__).resolve().parents[2]


async def _create_db(infra: Infra) -> str:
    name = f"c_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(infra.dsn("postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def _drop_db(infra: Infra, name: str) -> None:
    conn = await asyncpg.connect(infra.dsn("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def test_content_models_and_migrations_agree_on_postgres(infra: Infra) -> None:
    name = await _create_db(infra)
    try:
        await assert_models_match_migrations(
            infra.async_url(name), CONTENT_TABLES, CONTENT_MIGRATIONS
        )
    finally:
        await _drop_db(infra, name)


@pytest.fixture
async def pg_content(
    tmp_path: Any, infra: Infra, pg_ingest: Harness, topic_prefix: str
) -> AsyncIterator[Harness]:
    name = await _create_db(infra)
    settings = content_settings(
        tmp_path / "content",
        database_url=infra.async_url(name),
        kafka_bootstrap_servers=infra.kafka,
        kafka_topic_prefix=topic_prefix,
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=500,
        outbox_poll_seconds=0.1,
    )
    (tmp_path / "content").mkdir()
    app = create_content(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://test", timeout=60
            ) as client:
                yield Harness(app, client, settings)
    finally:
        await _drop_db(infra, name)


async def test_copy_published_and_experiment_decided_over_kafka(
    pg_ingest: Harness, pg_content: Harness, infra: Infra
) -> None:
    ingest, content = pg_ingest, pg_content
    keys = await ingest.tenant_with_keys("acme", ["acme-a"])
    admin, writer = keys["admin"], keys["operator"]
    r = await ingest.client.post(
        "/v1/users", json={"email": "reviewer@acme.test", "name": "Reviewer"}, headers=admin
    )
    assert r.status_code == 201, r.text
    reviewer_id = r.json()["id"]
    r = await ingest.client.post(
        "/v1/api-keys",
        json={"user_id": reviewer_id, "name": "reviewer", "role": "operator"},
        headers=admin,
    )
    reviewer = {"Authorization": f"Bearer {r.json()['key']}"}

    async def reviewer_assigned() -> bool:
        # Approving needs an admin or an assigned reviewer; the admin key may still be on its way.
        r = await content.client.post("/v1/reviewers", json={"user_id": reviewer_id}, headers=admin)
        return r.status_code == 200

    await wait_until(reviewer_assigned, timeout=60, interval=0.3)

    async def content_knows_the_store() -> bool:
        r = await content.client.post(
            "/v1/copies",
            json={
                "store_id": "acme-a",
                "type": "banner",
                "locale": "en",
                "title": "Probe",
                "body": "Probe",
            },
            headers=reviewer,
        )
        return r.status_code == 201

    await wait_until(content_knows_the_store, timeout=60, interval=0.3)

    c = content.client
    ids = []
    for title in ("Coats 40% off", "Warm coats, 40% off"):
        r = await c.post(
            "/v1/copies",
            json={
                "store_id": "acme-a",
                "type": "banner",
                "locale": "en",
                "title": title,
                "body": "Shop now",
            },
            headers=writer,
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    for action, key in (("submit", writer), ("approve", reviewer), ("publish", reviewer)):
        r = await c.post(f"/v1/copies/{ids[0]}/transitions", json={"action": action}, headers=key)
        assert r.status_code == 200, r.text
    r = await c.post(
        "/v1/experiments",
        json={"store_id": "acme-a", "name": "BF", "copy_ids": ids, "min_sample": 10_000},
        headers=writer,
    )
    assert r.status_code == 201, r.text
    exp_id = r.json()["id"]

    rows = [
        {"date": "2025-11-20", "metric": m, "value": v, "dimensions": {"copy_id": cid}}
        for cid, imp, clk in ((ids[0], 50_000, 1100), (ids[1], 50_000, 850))
        for m, v in (("impressions", imp), ("clicks", clk))
    ]
    r = await ingest.client.post("/v1/stores/acme-a/metrics", json={"rows": rows}, headers=writer)
    assert r.status_code == 202, r.text

    topic = content.settings.kafka_topic_prefix + "content.v1"

    def both(records: list[Any]) -> bool:
        types = {decode(rec.value).type for rec in records}
        return {"content.copy_published", "content.experiment_decided"} <= types

    records = await read_topic(infra, topic, until=both, timeout=90)
    events = [decode(rec.value) for rec in records]
    published = [e for e in events if isinstance(e, CopyPublishedV1)]
    decided = [e for e in events if isinstance(e, ExperimentDecidedV1)]
    assert [str(e.copy_id) for e in published] == [ids[0]]
    assert len(decided) == 1 and str(decided[0].experiment_id) == exp_id
    assert str(decided[0].winner_copy_id) == ids[0]
    assert all(rec.key == b"acme-a" for rec in records)
    got = (await c.get(f"/v1/experiments/{exp_id}", headers=writer)).json()
    assert got["status"] == "decided"


async def test_python_m_services_content_runs_alone_on_postgres_and_kafka(
    infra: Infra, topic_prefix: str, tmp_path: Any
) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = await _create_db(infra)
    log_file = tmp_path / "content.log"
    env = {
        **os.environ,
        "DATABASE_URL": infra.async_url(name),
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "OPS_BOOTSTRAP_API_KEY": "it-content-bootstrap-key-123",
        "PORT": str(port),
        "LOG_LEVEL": "INFO",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.content"],
        cwd=REPO,
        env=env,
        stdout=log_file.open("wb"),
        stderr=subprocess.STDOUT,
    )
    auth = {"Authorization": "Bearer it-content-bootstrap-key-123"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:

            async def ready() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(log_file.read_text())
                try:
                    return (await c.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_until(ready, 60, 0.2)
            r = await c.post(
                "/v1/lint", json={"text": "全网最低价", "locale": "zh-CN"}, headers=auth
            )
            assert r.status_code == 200 and r.json()["errors"] >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        await _drop_db(infra, name)
    assert '"event": "service_stopped"' in log_file.read_text()
