"""Stores: create, list, get, update; validation of timezone, currency and market; events."""

from __future__ import annotations

from typing import Any

import pytest
from support import ADMIN, Harness, store_body

from services.ingest.models import Store
from shared.events import decode
from shared.events.ingest import StoreRegisteredV1, StoreUpdatedV1
from shared.outbox import OutboxMessage


@pytest.fixture
async def keys(ingest: Harness) -> dict[str, dict[str, str]]:
    return await ingest.tenant_with_keys("acme", ["acme-a", "acme-b", "acme-c"])


async def staged(h: Harness) -> list[Any]:
    async with h.app.state.db.session(readonly=True) as s:
        t = OutboxMessage.__table__
        return [decode(r.payload) for r in await s.execute(t.select().order_by(t.c.id))]


async def test_create_get_update_and_events(ingest: Harness, keys: Any) -> None:
    c = ingest.client
    r = await c.post(
        "/v1/stores",
        json=store_body(
            "acme-new", platform="taobao", timezone="Asia/Shanghai", currency="CNY", market="CN"
        ),
        headers=keys["operator"],
    )
    assert r.status_code == 201
    assert r.headers["location"] == "/v1/stores/acme-new"
    body = r.json()
    assert body["timezone"] == "Asia/Shanghai" and body["status"] == "active"
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")
    r = await c.get("/v1/stores/acme-new", headers=keys["viewer"])
    assert r.status_code == 200 and r.json()["currency"] == "CNY"
    r = await c.patch(
        "/v1/stores/acme-new",
        json={"name": "Renamed", "status": "archived"},
        headers=keys["operator"],
    )
    assert r.status_code == 200 and r.json()["name"] == "Renamed"
    events = [e for e in await staged(ingest) if e.store_id == "acme-new"]
    assert [type(e) for e in events] == [StoreRegisteredV1, StoreUpdatedV1]
    assert events[1].name == "Renamed" and events[1].status == "archived"
    assert events[0].tenant_id == "acme"


async def test_generic_store_gets_a_whsec_secret_shown_once(ingest: Harness, keys: Any) -> None:
    c = ingest.client
    r = await c.post(
        "/v1/stores", json=store_body("acme-gen", platform="generic"), headers=keys["operator"]
    )
    secret = r.json()["webhook_secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    again = await c.get("/v1/stores/acme-gen", headers=keys["operator"])
    assert "webhook_secret" not in again.json() and again.json()["has_webhook_secret"]
    listed = await c.get("/v1/stores", headers=keys["operator"])
    assert secret not in listed.text
    events = await staged(ingest)
    assert all(secret not in e.model_dump_json() for e in events)
    r = await c.post(
        "/v1/stores",
        json=store_body("acme-shop2", webhook_secret="shpss_abc12345"),
        headers=keys["operator"],
    )
    assert "webhook_secret" not in r.json() and r.json()["has_webhook_secret"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timezone", "Mars/Olympus"),
        ("timezone", "EST5EDT8"),
        ("currency", "usd"),
        ("currency", "XYZ"),
        ("market", "XX"),
        ("market", "USA"),
        ("platform", "ebay"),
        ("id", "Bad Id!"),
        ("name", ""),
    ],
)
async def test_store_validation(ingest: Harness, keys: Any, field: str, value: str) -> None:
    before = await ingest.count(Store)
    r = await ingest.client.post(
        "/v1/stores", json=store_body("acme-x", **{field: value}), headers=keys["operator"]
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["loc"] == ["body", field]
    assert await ingest.count(Store) == before
    r = await ingest.client.patch(
        "/v1/stores/acme-a", json={field: value}, headers=keys["operator"]
    )
    if field in ("timezone", "currency", "market", "name"):
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", field]


async def test_duplicate_store_is_409(ingest: Harness, keys: Any) -> None:
    r = await ingest.client.post("/v1/stores", json=store_body("acme-a"), headers=keys["admin"])
    assert r.status_code == 409 and r.json()["errors"][0]["loc"] == ["body", "id"]


async def test_same_store_id_in_two_tenants_is_isolated(ingest: Harness, keys: Any) -> None:
    other = await ingest.tenant_with_keys("beta", ["acme-a"])
    r = await ingest.client.patch(
        "/v1/stores/acme-a", json={"name": "Beta's"}, headers=other["admin"]
    )
    assert r.status_code == 200
    r = await ingest.client.get("/v1/stores/acme-a", headers=keys["admin"])
    assert r.json()["name"] == "Acme-A"


async def test_list_is_paginated_and_scoped(ingest: Harness, keys: Any) -> None:
    c = ingest.client
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = await c.get("/v1/stores", params=params, headers=keys["viewer"])
        assert r.status_code == 200
        seen += [s["id"] for s in r.json()["items"]]
        cursor = r.json().get("next_cursor")
        if not cursor:
            break
    assert seen == ["acme-a", "acme-b", "acme-c"]
    r = await c.get("/v1/stores", headers=keys["scoped"])
    assert [s["id"] for s in r.json()["items"]] == ["acme-a"]
    r = await c.get("/v1/stores/acme-b", headers=keys["scoped"])
    assert r.status_code == 404
    r = await c.get("/v1/stores", params={"cursor": "!!garbage"}, headers=keys["viewer"])
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "cursor"]
    r = await c.get("/v1/stores", params={"limit": 0}, headers=keys["viewer"])
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "limit"]


async def test_roles(ingest: Harness, keys: Any) -> None:
    c = ingest.client
    r = await c.post("/v1/stores", json=store_body("acme-v"), headers=keys["viewer"])
    assert r.status_code == 403 and r.json()["status"] == 403
    r = await c.post("/v1/stores", json=store_body("acme-v"), headers=keys["scoped"])
    assert r.status_code == 403
    r = await c.post("/v1/tenants", json={"id": "zzz", "name": "Z"}, headers=keys["admin"])
    assert r.status_code == 403  # only the default tenant's admins create tenants
    r = await c.post("/v1/tenants", json={"id": "zzz", "name": "Z"}, headers=ADMIN)
    assert r.status_code == 201
    r = await c.get("/v1/api-keys", headers=keys["operator"])
    assert r.status_code == 403
    r = await c.get("/v1/api-keys", headers=keys["admin"])
    assert r.status_code == 200 and all("key" not in k or k["key"] is None for k in r.json())
