"""Helpers shared by the whole suite (fixtures live in conftest.py).

Unit and route tests run each service on SQLite files in a temporary folder with the LocalBus, with
the app's lifespan really running. Integration tests (tests/integration) use the real PostgreSQL
and Kafka started by scripts/services.sh (see tests/integration/conftest.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from services.ingest.models import MetricRow
from shared.config import IngestSettings
from shared.outbox import OutboxMessage

ADMIN_KEY = "test-bootstrap-admin-key-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Any

    async def count(self, model: Any, **where: Any) -> int:
        table = model.__table__
        q = select(func.count()).select_from(table)
        for k, v in where.items():
            q = q.where(table.c[k] == v)
        async with self.app.state.db.session(readonly=True) as s:
            return int(await s.scalar(q) or 0)

    async def state_counts(self) -> tuple[int, int]:
        """(metric rows, outbox rows): what a refused request must leave unchanged."""
        return await self.count(MetricRow), await self.count(OutboxMessage)

    async def tenant_with_keys(self, tenant: str, stores: list[str]) -> dict[str, dict[str, str]]:
        """A tenant with stores and one key per role, plus a key scoped to the first store."""
        c = self.client
        r = await c.post("/v1/tenants", json={"id": tenant, "name": tenant.title()}, headers=ADMIN)
        assert r.status_code == 201, r.text
        r = await c.post(
            "/v1/users",
            json={"email": f"admin@{tenant}.test", "name": "Admin", "tenant_id": tenant},
            headers=ADMIN,
        )
        assert r.status_code == 201, r.text
        admin_user = r.json()["id"]
        r = await c.post(
            f"/v1/api-keys?tenant_id={tenant}",
            json={"user_id": admin_user, "name": "admin", "role": "admin"},
            headers=ADMIN,
        )
        assert r.status_code == 201, r.text
        admin = {"Authorization": f"Bearer {r.json()['key']}"}
        for sid in stores:
            r = await c.post("/v1/stores", json=store_body(sid), headers=admin)
            assert r.status_code == 201, r.text
        keys = {"admin": admin}
        for role in ("operator", "viewer"):
            r = await c.post(
                "/v1/api-keys",
                json={"user_id": admin_user, "name": role, "role": role},
                headers=admin,
            )
            assert r.status_code == 201, r.text
            keys[role] = {"Authorization": f"Bearer {r.json()['key']}"}
        r = await c.post(
            "/v1/api-keys",
            json={
                "user_id": admin_user,
                "name": "scoped",
                "role": "operator",
                "store_ids": stores[:1],
            },
            headers=admin,
        )
        assert r.status_code == 201, r.text
        keys["scoped"] = {"Authorization": f"Bearer {r.json()['key']}"}
        keys["scoped_id"] = {"id": r.json()["id"]}
        return keys


def store_body(store_id: str, **over: Any) -> dict[str, Any]:
    body = {
        "id": store_id,
        "name": store_id.title(),
        "platform": "shopify",
        "timezone": "America/New_York",
        "currency": "USD",
        "market": "US",
        "category": "apparel",
    }
    body.update(over)
    return body


def ingest_settings(tmp_path: Path, **over: Any) -> IngestSettings:
    values: dict[str, Any] = {
        # Unit tests: SQLite and the LocalBus, whatever the environment of the run says.
        "database_url": "",
        "kafka_bootstrap_servers": "",
        "var_dir": tmp_path,
        "ops_bootstrap_api_key": ADMIN_KEY,
        "outbox_poll_seconds": 0.05,
        "log_level": "WARNING",
        "consumer_retry_base_seconds": 0.01,
        "consumer_retry_max_seconds": 0.05,
    }
    values.update(over)
    return IngestSettings(**values)


REPO = Path(__file__).resolve().parent.parent


@dataclass
class Infra:
    """The real PostgreSQL and Kafka of this test run."""

    pg_dsn: str  # postgresql://postgres@127.0.0.1:55432/postgres
    kafka: str

    def dsn(self, database: str) -> str:
        return self.pg_dsn.rsplit("/", 1)[0] + "/" + database

    def async_url(self, database: str) -> str:
        return self.dsn(database).replace("postgresql://", "postgresql+asyncpg://", 1)


def services_script(*args: str) -> None:
    import subprocess

    subprocess.run([str(REPO / "scripts" / "services.sh"), *args], check=True, cwd=REPO)


async def read_topic(infra: Infra, topic: str, *, until: Any, timeout: float = 60.0) -> list[Any]:
    """Read a topic from the beginning until `until(records)` holds (aiokafka records)."""
    import asyncio
    import uuid

    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=infra.kafka,
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not until(records):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"topic {topic}: condition not met, got {len(records)}")
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def wait_until(cond: Any, timeout: float = 60.0, interval: float = 0.1) -> None:
    """Await an async or sync condition until it holds."""
    import asyncio
    import inspect

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = cond()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def assert_models_match_migrations(url: str, tables: list[Any], migrations: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import MetaData

    from shared.config import ServiceSettings
    from shared.db import Database, migrate

    db = Database(ServiceSettings(service_name="layout", database_url=url))
    try:
        await migrate(db.engine, migrations)
        target = MetaData()
        for t in tables:
            t.to_metadata(target)

        def diff(conn):  # type: ignore[no-untyped-def]
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, target)

        async with db.engine.connect() as conn:
            changes = await conn.run_sync(diff)
        assert changes == [], changes
    finally:
        await db.dispose()


# ---- campaigns ------------------------------------------------------------------------------


def campaigns_settings(tmp_path: Path, **over: Any) -> Any:
    from shared.config import CampaignsSettings

    values: dict[str, Any] = {
        "database_url": "",
        "kafka_bootstrap_servers": "",
        "var_dir": tmp_path,
        "ops_bootstrap_api_key": ADMIN_KEY,
        "outbox_poll_seconds": 0.05,
        "log_level": "WARNING",
        "consumer_retry_base_seconds": 0.01,
        "consumer_retry_max_seconds": 0.05,
        # Tests drive the task_due scheduler themselves (run_once with a chosen time).
        "task_due_interval_seconds": 3600.0,
    }
    values.update(over)
    return CampaignsSettings(**values)


async def publish(app: FastAPI, *events: Any) -> None:
    """Put events on the app's bus, as their producer's relay would."""
    from shared.bus import Message

    await app.state.bus.publish([Message.from_event(e) for e in events])


def api_key_event(token: str, tenant: str, role: str, store_ids: list[str] | None = None) -> Any:
    """ingest.api_key_created for a token of our choosing (the services store only its hash)."""
    import hashlib
    import uuid
    from datetime import UTC, datetime

    from shared.events.ingest import ApiKeyCreatedV1

    digest = hashlib.sha256(token.encode()).hexdigest()
    return ApiKeyCreatedV1(
        tenant_id=tenant,
        key_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        name=f"{role} key",
        role=role,  # type: ignore[arg-type]
        store_ids=store_ids,
        lookup=digest[:16],
        secret_hash=digest,
        created_at=datetime.now(UTC),
    )


def store_event(
    store_id: str,
    *,
    tenant: str = "default",
    market: str = "US",
    timezone: str = "America/New_York",
    currency: str = "USD",
    platform: str = "shopify",
) -> Any:
    from shared.events.ingest import StoreRegisteredV1

    return StoreRegisteredV1(
        tenant_id=tenant,
        store_id=store_id,
        name=store_id.title(),
        platform=platform,
        timezone=timezone,
        currency=currency,
        market=market,
        category="apparel",
    )


async def campaigns_counts(h: Harness) -> dict[str, int]:
    """What a refused campaigns request must leave unchanged."""
    from services.campaigns.models import (
        Booking,
        CalendarSettings,
        Campaign,
        CampaignTask,
        FeedToken,
        SlotDay,
        TaskDependency,
    )

    return {
        m.__name__: await h.count(m)
        for m in (
            Campaign,
            CampaignTask,
            TaskDependency,
            Booking,
            SlotDay,
            FeedToken,
            CalendarSettings,
            OutboxMessage,
        )
    }


async def campaigns_tenant(
    h: Harness,
    tenant: str,
    stores: list[str],
    *,
    market: str = "US",
    timezone: str = "America/New_York",
    currency: str = "USD",
    platform: str = "shopify",
) -> dict[str, dict[str, str]]:
    """Stores and keys of a tenant, delivered to campaigns as ingest events (as in production):
    one key per role plus an operator key scoped to the first store."""
    from services.campaigns.models import KnownStore
    from shared.auth import AuthKey

    keys: dict[str, dict[str, str]] = {}
    events: list[Any] = []
    for role, scope in (
        ("admin", None),
        ("operator", None),
        ("viewer", None),
        ("scoped", stores[:1]),
    ):
        token = f"ops_{tenant}_{role}_0123456789abcdef"
        events.append(api_key_event(token, tenant, "operator" if role == "scoped" else role, scope))
        keys[role] = {"Authorization": f"Bearer {token}"}
    for sid in stores:
        events.append(
            store_event(
                sid,
                tenant=tenant,
                market=market,
                timezone=timezone,
                currency=currency,
                platform=platform,
            )
        )
    before_keys = await h.count(AuthKey)
    before_stores = await h.count(KnownStore)
    await publish(h.app, *events)

    async def arrived() -> bool:
        return await h.count(AuthKey) >= before_keys + 4 and await h.count(
            KnownStore
        ) >= before_stores + len(stores)

    await wait_until(arrived, timeout=20)
    return keys


# ---- content -----------------------------------------------------------------------------------


def content_settings(tmp_path: Path, **over: Any) -> Any:
    from shared.config import ContentSettings

    values: dict[str, Any] = {
        "database_url": "",
        "kafka_bootstrap_servers": "",
        "var_dir": tmp_path,
        "ops_bootstrap_api_key": ADMIN_KEY,
        "outbox_poll_seconds": 0.05,
        "log_level": "WARNING",
        "consumer_retry_base_seconds": 0.01,
        "consumer_retry_max_seconds": 0.05,
    }
    values.update(over)
    return ContentSettings(**values)


async def apply_events(app: FastAPI, *events: Any) -> None:
    """Publish events on the service's LocalBus and wait until every consumer group of the
    service has moved its cursor past them (handled, or skipped as not its business)."""
    from shared.bus import Message, bus_cursor, bus_log

    bus = app.state.bus
    await bus.publish([Message.from_event(e) for e in events])

    async def done() -> bool:
        async with bus._engine.connect() as conn:
            for sub in bus.subscriptions:
                for topic in sub.topics:
                    top = await conn.scalar(
                        select(func.coalesce(func.max(bus_log.c.id), 0)).where(
                            bus_log.c.topic == topic
                        )
                    )
                    pos = await conn.scalar(
                        select(bus_cursor.c.position).where(
                            bus_cursor.c.grp == sub.group, bus_cursor.c.topic == topic
                        )
                    )
                    if (pos or 0) < (top or 0):
                        return False
        return True

    await wait_until(done, timeout=20, interval=0.02)


async def content_key(
    app: FastAPI,
    *,
    tenant: str,
    role: str,
    user_id: str | None = None,
    store_ids: list[str] | None = None,
    reviewer: bool = False,
    user_name: str | None = None,
) -> dict[str, str]:
    """An API key as ingest would issue it, applied to content's key table the way the key-sync
    consumer does (shared.auth.upsert_key); `reviewer` also assigns its user as a content
    reviewer of the tenant, `user_name` records the name the audit shows."""
    import uuid
    from datetime import UTC, datetime

    from shared.auth import generate_token, hash_token, upsert_key
    from shared.events.ingest import ApiKeyCreatedV1

    token = generate_token()
    lookup, digest = hash_token(token)
    event = ApiKeyCreatedV1(
        tenant_id=tenant,
        key_id=uuid.uuid4(),
        user_id=uuid.UUID(user_id) if user_id else uuid.uuid4(),
        name=f"{role} key",
        role=role,  # type: ignore[arg-type]
        store_ids=store_ids,
        lookup=lookup,
        secret_hash=digest,
        created_at=datetime.now(UTC),
        user_name=user_name,
    )
    async with app.state.db.session() as s:
        await upsert_key(s, event)
        if reviewer or user_name:
            from services.content import repository as content_repo
            from services.content import service as content_service

            await content_service.on_api_key(s, event)
            if reviewer:
                await content_repo.upsert_reviewer(
                    s,
                    {
                        "tenant_id": tenant,
                        "user_id": str(event.user_id),
                        "note": None,
                        "added_by": "test",
                        "added_at": datetime.now(UTC),
                    },
                )
        await s.commit()
    return {"Authorization": f"Bearer {token}"}
