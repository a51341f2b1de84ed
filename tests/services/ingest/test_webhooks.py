"""Webhook endpoints end to end: byte-exact payloads signed by openssl, dedupe, aggregation on
the store's calendar, refusals that write nothing, Shopify's privacy topics."""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support import ADMIN, Harness, store_body, wait_until

from services.ingest.models import (
    MetricRow,
    OrderFact,
    RefundFact,
    SourceHealth,
    WebhookDelivery,
)
from services.ingest.webhooks.routes import clock
from services.ingest.webhooks.service import runtime
from shared.outbox import OutboxMessage

PAYLOADS = Path(__file__).parent / "webhook_payloads"
SHOP_SECRET = "shpss_7c1e2f8a90b34d5e"
WOO_SECRET = "wc-secret-with spaces & symbols"
ORDER_ID = "820982911946154508"


def openssl_sign(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body)) computed by openssl, not by the project's code."""
    out = subprocess.run(
        ["sh", "-c", 'openssl dgst -sha256 -hmac "$SECRET" -binary | base64'],
        input=body,
        capture_output=True,
        check=True,
        env={"SECRET": secret, "PATH": "/usr/bin:/bin"},
    )
    return out.stdout.decode().strip()


def openssl_standard_webhooks(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    key_hex = base64.b64decode(secret.removeprefix("whsec_")).hex()
    out = subprocess.run(
        ["sh", "-c", f"openssl dgst -sha256 -mac HMAC -macopt hexkey:{key_hex} -binary | base64"],
        input=f"{msg_id}.{ts}.".encode() + body,
        capture_output=True,
        check=True,
    )
    return "v1," + out.stdout.decode().strip()


async def make_store(
    h: Harness, store_id: str, headers: dict[str, str] = ADMIN, **over: Any
) -> Any:
    r = await h.client.post("/v1/stores", json=store_body(store_id, **over), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def shopify(
    h: Harness,
    store: str,
    name: str,
    topic: str,
    *,
    secret: str = SHOP_SECRET,
    event_id: str | None = None,
    sig: str | None = None,
) -> Any:
    body = (PAYLOADS / name).read_bytes()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sig if sig is not None else openssl_sign(secret, body),
        "X-Shopify-Shop-Domain": "dresses.myshopify.com",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
        "X-Shopify-API-Version": "2025-10",
    }
    return await h.client.post(f"/v1/webhooks/shopify/{store}", content=body, headers=headers)


async def settle(h: Harness) -> None:
    async def done() -> bool:
        # The inbox first: a delivery leaves it only once webhook_deliveries holds it.
        if await runtime(h.app.state).backlog():
            return False
        return await h.count(WebhookDelivery, status="pending") == 0

    await wait_until(done, timeout=20, interval=0.02)


async def counts(h: Harness) -> tuple[int, ...]:
    return (
        await h.count(WebhookDelivery),
        await h.count(OrderFact),
        await h.count(RefundFact),
        await h.count(MetricRow),
        await h.count(OutboxMessage),
    )


async def metrics(h: Harness, store: str) -> dict[tuple[date, str, str], float]:
    t = MetricRow.__table__  # type: ignore[attr-defined]
    async with h.app.state.db.session(readonly=True) as s:
        rows = (await s.execute(select(t).where(t.c.store_id == store))).all()
    return {(r.date, r.metric, r.dimensions.get("channel", "")): r.value for r in rows}


async def all_text(h: Harness) -> str:
    """Every stored value of the webhook tables, for searching personal data."""
    out = []
    async with h.app.state.db.session(readonly=True) as s:
        for model in (WebhookDelivery, OrderFact, RefundFact, MetricRow, OutboxMessage):
            t = model.__table__  # type: ignore[attr-defined]
            for row in (await s.execute(select(t))).all():
                out.append(" ".join(str(v) for v in row))
    return "\n".join(out).lower()


async def test_order_updated_three_times_counts_once_and_refund_lands_on_its_local_date(
    ingest: Harness,
) -> None:
    h = ingest
    await make_store(
        h,
        "dresses",
        timezone="Asia/Shanghai",
        currency="CNY",
        market="CN",
        webhook_secret=SHOP_SECRET,
    )
    r = await shopify(h, "dresses", "shopify_order_create.json", "orders/create")
    assert r.status_code == 202, r.text
    for i in (1, 2, 3):
        r = await shopify(h, "dresses", f"shopify_order_updated_{i}.json", "orders/updated")
        assert r.status_code == 202, r.text
    r = await shopify(h, "dresses", "shopify_refund_create.json", "refunds/create")
    assert r.status_code == 202, r.text
    for name in ("shopify_order_social.json", "shopify_order_cancelled.json"):
        r = await shopify(h, "dresses", name, "orders/create")
        assert r.status_code == 202, r.text
    await settle(h)
    assert await h.count(WebhookDelivery, status="processed") == 7
    assert await h.count(OrderFact) == 3
    m = await metrics(h, "dresses")
    nov10, nov11 = date(2026, 11, 10), date(2026, 11, 11)
    # Created 23:30 Shanghai time on the 10th, updated three times: one order, latest total.
    assert m[(nov10, "orders", "paid_search")] == 1
    assert m[(nov10, "buyers", "paid_search")] == 1
    assert m[(nov10, "gmv", "paid_search")] == 130.0
    # Refunded at 2026-11-10T17:30Z = 01:30 on the 11th in Shanghai, on the order's channel.
    assert m[(nov11, "refunds", "paid_search")] == 30.0
    assert (nov10, "refunds", "paid_search") not in m
    # UTM attribution; the cancelled order (utm_medium=email) drops out.
    assert m[(nov11, "orders", "social")] == 1 and m[(nov11, "gmv", "social")] == 80.0
    assert m[(nov11, "orders", "email_sms")] == 0 and m[(nov11, "gmv", "email_sms")] == 0
    assert m[(nov11, "buyers", "email_sms")] == 0
    t = MetricRow.__table__  # type: ignore[attr-defined]
    async with h.app.state.db.session(readonly=True) as s:
        sources = {r[0] for r in await s.execute(select(t.c.source))}
    assert sources == {"webhook"}
    types = await outbox_types(h)
    assert "ingest.metrics_ingested" in types
    async with h.app.state.db.session(readonly=True) as s:
        sh = (await s.execute(select(SourceHealth.__table__))).all()  # type: ignore[attr-defined]
    assert [(r.source, r.delivered, r.failed) for r in sh] == [("webhook:shopify", 7, 0)]
    text = await all_text(h)
    for pii in ("jon.doe", "mary.major", "example.com", "cupertino", "infinite loop", "5551212"):
        assert pii not in text


async def test_an_older_order_state_arriving_late_never_overwrites_a_newer_one(
    ingest: Harness,
) -> None:
    """Shopify does not deliver in order: the state with the newest `updated_at` wins, in the
    same processing round and across rounds; arrival order only decides without timestamps."""
    h = ingest
    await make_store(
        h, "late", timezone="Asia/Shanghai", currency="CNY", market="CN", webhook_secret=SHOP_SECRET
    )
    nov10 = date(2026, 11, 10)
    # One round: updated_3 (23:55, 130.00) arrives first, then updated_1 (23:40, 110.00).
    for name in ("shopify_order_updated_3.json", "shopify_order_updated_1.json"):
        r = await shopify(h, "late", name, "orders/updated")
        assert r.status_code == 202, r.text
    await settle(h)
    assert (await metrics(h, "late"))[(nov10, "gmv", "paid_search")] == 130.0
    # Later rounds: the create (23:30, 100.00) and updated_2 (23:50, 120.00) come late, each
    # processed on its own: the stored newer state stays.
    for name, topic in (
        ("shopify_order_create.json", "orders/create"),
        ("shopify_order_updated_2.json", "orders/updated"),
    ):
        r = await shopify(h, "late", name, topic)
        assert r.status_code == 202, r.text
        await settle(h)
        m = await metrics(h, "late")
        assert m[(nov10, "gmv", "paid_search")] == 130.0, name
        assert m[(nov10, "orders", "paid_search")] == 1
    assert await h.count(OrderFact) == 1
    t = OrderFact.__table__  # type: ignore[attr-defined]
    async with h.app.state.db.session(readonly=True) as s:
        (kept,) = (await s.execute(select(t.c.gmv, t.c.source_updated_at))).all()
    assert kept.gmv == 130.0
    assert kept.source_updated_at.isoformat().startswith("2026-11-10T15:55:00")


async def outbox_types(h: Harness) -> list[str]:
    t = OutboxMessage.__table__  # type: ignore[attr-defined]
    async with h.app.state.db.session(readonly=True) as s:
        return [r[0] for r in await s.execute(select(t.c.event_type))]


async def test_replayed_delivery_is_answered_200_and_changes_nothing(ingest: Harness) -> None:
    h = ingest
    await make_store(h, "dresses", webhook_secret=SHOP_SECRET)
    r = await shopify(h, "dresses", "shopify_order_create.json", "orders/create", event_id="e-1")
    assert r.status_code == 202
    await settle(h)
    before = await counts(h)
    r = await shopify(h, "dresses", "shopify_order_create.json", "orders/create", event_id="e-1")
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    await settle(h)
    assert await counts(h) == before


async def test_refusals_write_nothing(ingest: Harness) -> None:
    h = ingest
    await make_store(h, "dresses", webhook_secret=SHOP_SECRET)
    await make_store(h, "gen", platform="generic")
    before = await counts(h)
    health = await h.count(SourceHealth)
    body = (PAYLOADS / "shopify_order_create.json").read_bytes()
    # A bad signature: signed with another secret, and a body changed after signing.
    r = await shopify(h, "dresses", "shopify_order_create.json", "orders/create", secret="nope")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    r = await h.client.post(
        "/v1/webhooks/shopify/dresses",
        content=body.replace(b"100.00", b"999.00"),
        headers={
            "X-Shopify-Hmac-Sha256": openssl_sign(SHOP_SECRET, body),
            "X-Shopify-Topic": "orders/create",
        },
    )
    assert r.status_code == 401
    r = await h.client.post(
        "/v1/webhooks/shopify/dresses", content=body, headers={"X-Shopify-Topic": "orders/create"}
    )
    assert r.status_code == 401
    # An unknown store, and a store on another platform's endpoint.
    r = await shopify(h, "ghost", "shopify_order_create.json", "orders/create")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    sig = openssl_sign(SHOP_SECRET, body)
    r = await h.client.post(
        "/v1/webhooks/woocommerce/dresses", content=body, headers={"X-WC-Webhook-Signature": sig}
    )
    assert r.status_code == 404
    r = await h.client.post("/v1/webhooks/magento/dresses", content=body)
    assert r.status_code in (404, 422)
    # A stale Standard Webhooks timestamp, correctly signed (openssl) but six minutes old.
    async with h.app.state.db.session(readonly=True) as s:
        t = WebhookDelivery.metadata.tables["stores"]
        secret = (await s.execute(select(t.c.webhook_secret).where(t.c.id == "gen"))).scalar_one()
    gbody = b'{"type":"order.created","timestamp":"2026-11-10T00:00:00Z","data":{"id":"g1"}}'
    for ts in (int(time.time()) - 360, int(time.time()) + 360):
        r = await h.client.post(
            "/v1/webhooks/generic/gen",
            content=gbody,
            headers={
                "webhook-id": "msg_stale",
                "webhook-timestamp": str(ts),
                "webhook-signature": openssl_standard_webhooks(secret, "msg_stale", ts, gbody),
            },
        )
        assert r.status_code == 401, r.text
        assert r.headers["content-type"] == "application/problem+json"
    assert await counts(h) == before
    assert await h.count(SourceHealth) == health


async def test_generic_standard_webhooks_with_the_published_vector_and_an_injected_clock(
    ingest: Harness,
) -> None:
    h = ingest
    await make_store(
        h, "gen", platform="generic", webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    )
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    body = b'{"test": 2432232314}'
    r = await h.client.post("/v1/webhooks/generic/gen", content=body, headers=headers)
    assert r.status_code == 401  # 2021 is more than five minutes ago
    h.app.dependency_overrides[clock] = lambda: lambda: 1614265330 + 120.0
    try:
        r = await h.client.post("/v1/webhooks/generic/gen", content=body, headers=headers)
        assert r.status_code == 200 and r.json()["status"] == "ignored", r.text
        r = await h.client.post("/v1/webhooks/generic/gen", content=body, headers=headers)
        assert r.json()["status"] == "duplicate"
    finally:
        h.app.dependency_overrides.clear()
    # A real order through the generic endpoint, signed now.
    order = (
        b'{"type":"order.created","timestamp":"2026-11-10T10:00:00Z","data":{"id":"A-1",'
        b'"created_at":"2026-11-10T10:00:00Z","total":"42.50","currency":"USD",'
        b'"email":"someone@example.com","utm_source":"google","utm_medium":"organic"}}'
    )
    ts = int(time.time())
    r = await h.client.post(
        "/v1/webhooks/generic/gen",
        content=order,
        headers={
            "webhook-id": "msg_2",
            "webhook-timestamp": str(ts),
            "webhook-signature": "v1,bm9wZQ== "
            + openssl_standard_webhooks(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_2", ts, order
            ),
        },
    )
    assert r.status_code == 202, r.text
    await settle(h)
    m = await metrics(h, "gen")
    assert m[(date(2026, 11, 10), "gmv", "search")] == 42.5
    assert "someone@example.com" not in await all_text(h)


async def test_woocommerce_ping_and_order(ingest: Harness) -> None:
    h = ingest
    await make_store(h, "woo", platform="woocommerce", webhook_secret=WOO_SECRET)
    before = await counts(h)
    r = await h.client.post(
        "/v1/webhooks/woocommerce/woo",
        content=b"webhook_id=15",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert 200 <= r.status_code < 300
    assert await counts(h) == before
    body = (PAYLOADS / "woocommerce_order_created.json").read_bytes()
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": "https://shop.example.org/",
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Resource": "order",
        "X-WC-Webhook-Event": "created",
        "X-WC-Webhook-Signature": openssl_sign(WOO_SECRET, body),
        "X-WC-Webhook-ID": "15",
        "X-WC-Webhook-Delivery-ID": "9c1b5e7f0a2d",
    }
    r = await h.client.post("/v1/webhooks/woocommerce/woo", content=body, headers=headers)
    assert r.status_code == 202, r.text
    r = await h.client.post("/v1/webhooks/woocommerce/woo", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    await settle(h)
    m = await metrics(h, "woo")
    # 02:30 UTC on the 11th is the evening of the 10th in New York; utm_medium=email.
    assert m[(date(2026, 11, 10), "gmv", "email_sms")] == 59.9
    assert m[(date(2026, 11, 10), "orders", "email_sms")] == 1
    text = await all_text(h)
    for pii in ("alice", "liddell", "969 market", "198.51.100.4"):
        assert pii not in text


async def test_same_store_id_in_two_tenants_the_signature_decides(ingest: Harness) -> None:
    h = ingest
    keys = await h.tenant_with_keys("acme", ["acme-other"])
    await make_store(h, "dresses", webhook_secret=SHOP_SECRET)
    await make_store(h, "dresses", headers=keys["admin"], webhook_secret="acme-secret")
    r = await shopify(
        h, "dresses", "shopify_order_create.json", "orders/create", secret="acme-secret"
    )
    assert r.status_code == 202
    await settle(h)
    assert await h.count(OrderFact, tenant_id="acme") == 1
    assert await h.count(OrderFact, tenant_id="default") == 0


async def test_privacy_topics(ingest: Harness) -> None:
    h = ingest
    await make_store(h, "dresses", timezone="Asia/Shanghai", webhook_secret=SHOP_SECRET)
    await shopify(h, "dresses", "shopify_order_create.json", "orders/create")
    await shopify(h, "dresses", "shopify_order_social.json", "orders/create")
    await settle(h)
    before_metrics = await metrics(h, "dresses")
    t = OrderFact.__table__  # type: ignore[attr-defined]
    async with h.app.state.db.session(readonly=True) as s:
        keys = dict((await s.execute(select(t.c.order_id, t.c.buyer_key))).all())
    r = await shopify(h, "dresses", "shopify_customers_data_request.json", "customers/data_request")
    assert r.status_code == 202
    r = await shopify(h, "dresses", "shopify_customers_redact.json", "customers/redact")
    assert r.status_code == 202
    await settle(h)
    async with h.app.state.db.session(readonly=True) as s:
        after = dict((await s.execute(select(t.c.order_id, t.c.buyer_key))).all())
    # Jon's key is replaced everywhere (facts and kept payloads); Mary's is untouched.
    assert after[ORDER_ID] != keys[ORDER_ID]
    assert after["820982911946154600"] == keys["820982911946154600"]
    assert keys[ORDER_ID] not in await all_text(h)
    assert await metrics(h, "dresses") == before_metrics
    text = await all_text(h)
    assert "jon.doe" not in text and "5551212" not in text
    r = await shopify(h, "dresses", "shopify_shop_redact.json", "shop/redact")
    assert r.status_code == 202
    await settle(h)
    assert await h.count(OrderFact) == 0 and await h.count(RefundFact) == 0
    d = WebhookDelivery.__table__  # type: ignore[attr-defined]
    async with h.app.state.db.session(readonly=True) as s:
        payloads = {r[0] for r in await s.execute(select(d.c.payload))}
    assert payloads == {"{}"}
    assert await h.count(WebhookDelivery, status="processed") == 5


async def test_poison_delivery_fails_alone(ingest: Harness) -> None:
    h = ingest
    await make_store(h, "dresses", webhook_secret=SHOP_SECRET)
    bad = b'{"id": 1, "created_at": "yesterday", "total_price": "5.00"}'
    r = await h.client.post(
        "/v1/webhooks/shopify/dresses",
        content=bad,
        headers={
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": openssl_sign(SHOP_SECRET, bad),
        },
    )
    assert r.status_code == 202
    await shopify(h, "dresses", "shopify_order_social.json", "orders/create")
    await settle(h)
    assert await h.count(WebhookDelivery, status="failed") == 1
    assert await h.count(WebhookDelivery, status="processed") == 1
    assert await h.count(OrderFact) == 1
    async with h.app.state.db.session(readonly=True) as s:
        row = (await s.execute(select(SourceHealth.__table__))).one()  # type: ignore[attr-defined]
    assert (row.delivered, row.failed) == (1, 1) and "timestamp" in row.last_error
    # Signed but not JSON: 400, counted as rejected, nothing else written.
    junk = b"not json"
    r = await h.client.post(
        "/v1/webhooks/shopify/dresses",
        content=junk,
        headers={
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": openssl_sign(SHOP_SECRET, junk),
        },
    )
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert await h.count(WebhookDelivery) == 2
    assert await h.count(SourceHealth, rejected=1) == 1


@pytest.mark.parametrize("tolerance", [60])
async def test_tolerance_is_configurable(make_harness: Any, tolerance: int) -> None:
    async with make_harness(webhook_timestamp_tolerance_seconds=tolerance) as h:
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        await make_store(h, "gen", platform="generic", webhook_secret=secret)
        body = b'{"type":"ping"}'
        for age, code in ((90, 401), (30, 200)):
            ts = int(time.time()) - age
            r = await h.client.post(
                "/v1/webhooks/generic/gen",
                content=body,
                headers={
                    "webhook-id": f"m{age}",
                    "webhook-timestamp": str(ts),
                    "webhook-signature": openssl_standard_webhooks(secret, f"m{age}", ts, body),
                },
            )
            assert r.status_code == code, r.text
