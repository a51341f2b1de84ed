"""Campaigns on the real broker and database: stores and keys arrive from Kafka, a created
campaign leaves through the outbox relay to the "campaigns.v1" topic."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from support import (
    Harness,
    Infra,
    api_key_event,
    campaigns_settings,
    publish,
    read_topic,
    store_event,
    wait_until,
)

from services.campaigns.main import create_app
from services.campaigns.models import KnownStore


@pytest.fixture
async def kafka_campaigns(tmp_path: Path, infra: Infra) -> AsyncIterator[Harness]:
    name = f"ck_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(infra.dsn("postgres"))
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    settings = campaigns_settings(
        tmp_path,
        database_url=infra.async_url(name),
        kafka_bootstrap_servers=infra.kafka,
        kafka_topic_prefix=f"it{uuid.uuid4().hex[:8]}.",
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=500,
        outbox_poll_seconds=0.1,
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


async def test_store_from_kafka_and_campaign_to_kafka(
    kafka_campaigns: Harness, infra: Infra
) -> None:
    h = kafka_campaigns
    token = "ops_kafka_operator_0123456789abcdef"
    await publish(
        h.app,
        api_key_event(token, "acme", "operator"),
        store_event("k-shop", tenant="acme", market="US"),
    )

    async def arrived() -> bool:
        return await h.count(KnownStore, store_id="k-shop") == 1

    await wait_until(arrived, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    await wait_until(lambda: _ok(h, headers), timeout=60)  # the key, from the same topic
    r = await h.client.post(
        "/v1/stores/k-shop/campaigns",
        json={"name": "Prime Day", "event": "prime_day", "year": 2027},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    planned = r.json()["tasks"]
    topic = h.settings.kafka_topic_prefix + "campaigns.v1"

    def has_campaign(records: list) -> bool:  # type: ignore[type-arg]
        return any(json.loads(rec.value).get("campaign_id") == cid for rec in records)

    records = await read_topic(infra, topic, until=has_campaign, timeout=60)
    payload = next(
        json.loads(r.value) for r in records if json.loads(r.value)["campaign_id"] == cid
    )
    assert payload["type"] == "campaigns.campaign_created"
    assert payload["event"] == "prime_day" and payload["store_id"] == "k-shop"
    # the plan as created travels whole; a Shopify (DTC) store's plan has no marketplace steps
    assert [t["task_id"] for t in payload["tasks"]] == [t["id"] for t in planned]
    assert len(planned) >= 10
    assert not any("registration" in t["name"].lower() for t in payload["tasks"])


async def _ok(h: Harness, headers: dict[str, str]) -> bool:
    r = await h.client.get("/v1/slots", headers=headers)
    return r.status_code == 200
