"""Campaigns on the real PostgreSQL: models and migrations agree, parallel bookings never
oversell a slot nor a store's share, and the PostgreSQL upserts (stores, feed tokens) work."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from support import (
    ADMIN,
    Harness,
    Infra,
    assert_models_match_migrations,
    campaigns_settings,
    publish,
    store_event,
    wait_until,
)

from services.campaigns.main import MIGRATIONS, create_app
from services.campaigns.models import TABLES, Booking, KnownStore, SlotDay


@pytest.fixture
async def pg_url(infra: Infra) -> AsyncIterator[str]:
    name = f"c_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(infra.dsn("postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield infra.async_url(name)
    conn = await asyncpg.connect(infra.dsn("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def pg_campaigns(tmp_path: Path, pg_url: str) -> AsyncIterator[Harness]:
    settings = campaigns_settings(tmp_path, database_url=pg_url, database_pool_size=20)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", timeout=60
        ) as client:
            h = Harness(app, client, settings)
            await publish(app, *(store_event(f"s{i}") for i in range(8)))

            async def stores() -> bool:
                return await h.count(KnownStore) == 8

            await wait_until(stores, timeout=30)
            yield h


async def test_models_and_migrations_agree_on_postgresql(pg_url: str) -> None:
    await assert_models_match_migrations(pg_url, TABLES, MIGRATIONS)


async def test_parallel_bookings_never_oversell(pg_campaigns: Harness) -> None:
    c = pg_campaigns.client
    r = await c.post("/v1/slots", json={"name": "Banner", "capacity": 10}, headers=ADMIN)
    slot = r.json()["id"]
    day = (dt.date.today() + dt.timedelta(days=7)).isoformat()

    async def book(i: int) -> int:
        r = await c.post(
            f"/v1/slots/{slot}/bookings",
            json={"store_id": f"s{i % 8}", "day": day, "tier": "gold"},
            headers=ADMIN,
        )
        assert r.status_code in (201, 409), r.text
        return r.status_code

    codes = await asyncio.gather(*(book(i) for i in range(60)))
    assert codes.count(201) == 10 and codes.count(409) == 50
    assert await pg_campaigns.count(Booking, slot_id=slot) == 10
    async with pg_campaigns.app.state.db.session(readonly=True) as s:
        booked = await s.scalar(
            SlotDay.__table__.select().with_only_columns(SlotDay.__table__.c.booked)
        )
    assert booked == 10


async def test_parallel_bookings_respect_the_maximum_share(pg_campaigns: Harness) -> None:
    c = pg_campaigns.client
    r = await c.post(
        "/v1/slots",
        json={"name": "Live", "capacity": 20, "rules": {"max_share": 0.25}},
        headers=ADMIN,
    )
    slot = r.json()["id"]
    day = (dt.date.today() + dt.timedelta(days=3)).isoformat()

    async def book(store: str) -> Any:
        return (
            await c.post(
                f"/v1/slots/{slot}/bookings",
                json={"store_id": store, "day": day, "tier": "gold"},
                headers=ADMIN,
            )
        ).status_code

    codes = await asyncio.gather(*(book("s1") for _ in range(30)), *(book("s2") for _ in range(3)))
    assert codes.count(201) == 5 + 3
    assert await pg_campaigns.count(Booking, slot_id=slot, store_id="s1") == 5


async def test_campaign_and_feed_on_postgresql(pg_campaigns: Harness) -> None:
    c = pg_campaigns.client
    r = await c.post(
        "/v1/stores/s1/campaigns",
        json={"name": "BF", "event": "black_friday", "year": 2027},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    t1 = (await c.post("/v1/stores/s1/calendar-token", headers=ADMIN)).json()["token"]
    t2 = (await c.post("/v1/stores/s1/calendar-token", headers=ADMIN)).json()["token"]
    assert (await c.get(f"/v1/stores/s1/calendar.ics?token={t1}")).status_code == 401
    r = await c.get(f"/v1/stores/s1/calendar.ics?token={t2}")
    assert r.status_code == 200 and b"BEGIN:VCALENDAR" in r.content
