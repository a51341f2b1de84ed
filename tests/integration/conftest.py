"""Integration fixtures: a fresh PostgreSQL database per test (cloned from a migrated template)
and topics of its own on the real Kafka broker (a unique topic prefix)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from support import Harness, Infra, ingest_settings

from services.ingest.main import MIGRATIONS, create_app
from shared.config import ServiceSettings
from shared.db import Database, migrate

TEMPLATE = "ingest_template"
_template_ready: set[str] = set()


async def _admin(infra: Infra) -> asyncpg.Connection:
    return await asyncpg.connect(infra.dsn("postgres"))


async def ensure_template(infra: Infra) -> None:
    if TEMPLATE in _template_ready:
        return
    conn = await _admin(infra)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await conn.close()
    db = Database(ServiceSettings(service_name="tpl", database_url=infra.async_url(TEMPLATE)))
    await migrate(db.engine, MIGRATIONS)
    await db.dispose()
    _template_ready.add(TEMPLATE)


@pytest.fixture
async def pg_database(infra: Infra) -> AsyncIterator[str]:
    """A fresh, migrated ingest database; yields its asyncpg SQLAlchemy URL."""
    await ensure_template(infra)
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await _admin(infra)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    finally:
        await conn.close()
    yield infra.async_url(name)
    conn = await _admin(infra)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def topic_prefix() -> str:
    return f"it{uuid.uuid4().hex[:8]}."


@pytest.fixture
async def pg_ingest(
    tmp_path: Any, infra: Infra, pg_database: str, topic_prefix: str
) -> AsyncIterator[Harness]:
    settings = ingest_settings(
        tmp_path,
        database_url=pg_database,
        kafka_bootstrap_servers=infra.kafka,
        kafka_topic_prefix=topic_prefix,
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=500,
        outbox_poll_seconds=0.1,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", timeout=60
        ) as client:
            yield Harness(app, client, settings)
