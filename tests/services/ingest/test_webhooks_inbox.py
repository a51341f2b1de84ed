"""The embedded mode's webhook inbox (services/ingest/webhooks/inbox.py): deliveries received
into their own SQLite file survive a restart unprocessed, are moved and processed exactly once
(also when a crash fell between the move and the inbox clean-up), and deduplication stays exact
whether the first copy is still in the inbox or already in webhook_deliveries."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select
from support import ADMIN, Harness, store_body, wait_until

from services.ingest.models import MetricRow, OrderFact, SourceHealth, WebhookDelivery
from services.ingest.webhooks import repository as repo
from services.ingest.webhooks import service
from services.ingest.webhooks.inbox import Inbox, inbox_path
from shared.db import Database

PAYLOADS = Path(__file__).parent / "webhook_payloads"
SHOP_SECRET = "shpss_7c1e2f8a90b34d5e"


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


async def make_store(h: Harness, store_id: str, **over: Any) -> None:
    r = await h.client.post("/v1/stores", json=store_body(store_id, **over), headers=ADMIN)
    assert r.status_code == 201, r.text


async def settle(h: Harness) -> None:
    async def done() -> bool:
        if await service.runtime(h.app.state).backlog():
            return False
        return await h.count(WebhookDelivery, status="pending") == 0

    await wait_until(done, timeout=20, interval=0.02)


async def metrics(h: Harness, store: str) -> dict[tuple[date, str, str], float]:
    t = MetricRow.__table__  # type: ignore[attr-defined]
    async with h.app.state.db.session(readonly=True) as s:
        rows = (await s.execute(select(t).where(t.c.store_id == store))).all()
    return {(r.date, r.metric, r.dimensions.get("channel", "")): r.value for r in rows}


ORDERS = (
    ("shopify_order_create.json", "orders/create"),
    ("shopify_order_updated_1.json", "orders/updated"),
    ("shopify_order_updated_2.json", "orders/updated"),
    ("shopify_order_updated_3.json", "orders/updated"),
    ("shopify_order_social.json", "orders/create"),
)


def headers(name: str, topic: str, event_id: str) -> dict[str, str]:
    body = (PAYLOADS / name).read_bytes()
    return {
        "content-type": "application/json",
        "x-shopify-topic": topic,
        "x-shopify-hmac-sha256": openssl_sign(SHOP_SECRET, body),
        "x-shopify-event-id": event_id,
    }


async def receive(rt: service.Runtime, name: str, topic: str, event_id: str) -> str:
    """The receive use case, as the route calls it."""
    got = await service.receive(
        rt,
        "shopify",
        "dresses",
        headers(name, topic, event_id),
        (PAYLOADS / name).read_bytes(),
        now=time.time(),
        tolerance_seconds=300,
    )
    return got.status


def inbox_rows(tmp_path: Path) -> int:
    con = sqlite3.connect(tmp_path / "ingest-inbox.db")
    try:
        return int(con.execute("SELECT count(*) FROM inbox").fetchone()[0])
    finally:
        con.close()


async def receive_then_die(tmp_path: Path, settings: Any) -> list[str]:
    """Deliveries received and answered by a process that stops before its processor ran:
    the receive path alone, on the app's files, no processor."""
    db = Database(settings)
    rt = service.Runtime(db)
    ids = [str(uuid.uuid4()) for _ in ORDERS]
    try:
        for (name, topic), event_id in zip(ORDERS, ids, strict=True):
            assert await receive(rt, name, topic, event_id) == "accepted"
        # A replay while the first copy is still in the inbox.
        assert await receive(rt, *ORDERS[0], ids[0]) == "duplicate"
    finally:
        await rt.close()
        await db.dispose()
    return ids


def test_the_inbox_is_a_file_beside_a_sqlite_database_only() -> None:
    assert inbox_path("sqlite+aiosqlite:////var/x/ingest.db") == Path("/var/x/ingest-inbox.db")
    assert inbox_path("sqlite+aiosqlite:///:memory:") is None
    assert inbox_path("postgresql+asyncpg://u@h/ingest") is None


async def test_inbox_survives_a_restart_and_is_processed_once(
    make_harness: Any, tmp_path: Path
) -> None:
    async with make_harness() as h:
        await make_store(
            h, "dresses", timezone="Asia/Shanghai", currency="CNY", webhook_secret=SHOP_SECRET
        )
        settings = h.settings
    ids = await receive_then_die(tmp_path, settings)
    assert inbox_rows(tmp_path) == len(ORDERS)  # durable, answered, not processed

    async with make_harness() as h:
        await settle(h)
        assert inbox_rows(tmp_path) == 0
        assert await h.count(WebhookDelivery) == len(ORDERS)
        assert await h.count(WebhookDelivery, status="processed") == len(ORDERS)
        assert await h.count(OrderFact) == 2
        m = await metrics(h, "dresses")
        # Created then updated three times: one order at its latest total; plus the social one.
        assert m[(date(2026, 11, 10), "orders", "paid_search")] == 1
        assert m[(date(2026, 11, 10), "gmv", "paid_search")] == 130.0
        assert m[(date(2026, 11, 11), "orders", "social")] == 1
        sh = await h.count(SourceHealth, delivered=len(ORDERS))
        assert sh == 1
        # A replay once the first copy has left the inbox: still a duplicate, nothing written.
        body = (PAYLOADS / ORDERS[0][0]).read_bytes()
        r = await h.client.post(
            "/v1/webhooks/shopify/dresses",
            content=body,
            headers=headers(*ORDERS[0], ids[0]),
        )
        assert r.status_code == 200 and r.json()["status"] == "duplicate"
        await settle(h)
        assert await h.count(WebhookDelivery) == len(ORDERS)
        assert inbox_rows(tmp_path) == 0


async def test_a_crash_between_the_move_and_the_inbox_clean_up_processes_once(
    make_harness: Any, tmp_path: Path
) -> None:
    async with make_harness() as h:
        await make_store(
            h, "dresses", timezone="Asia/Shanghai", currency="CNY", webhook_secret=SHOP_SECRET
        )
        settings = h.settings
    await receive_then_die(tmp_path, settings)
    # The move's first half: copied into webhook_deliveries and committed, then the process
    # dies before removing them from the inbox.
    db = Database(settings)
    inbox = Inbox.for_database(db.url)
    assert inbox is not None
    try:
        rows = await inbox.take(100)
        async with db.session() as s:
            await repo.insert_deliveries(
                s,
                [
                    {k: v for k, v in r.items() if k != "id"}
                    | {"error": None, "attempts": 0, "processed_at": None}
                    for r in rows
                ],
            )
            await s.commit()
    finally:
        await inbox.close()
        await db.dispose()
    assert inbox_rows(tmp_path) == len(ORDERS)

    async with make_harness() as h:
        await settle(h)
        assert inbox_rows(tmp_path) == 0
        assert await h.count(WebhookDelivery) == len(ORDERS)
        assert await h.count(WebhookDelivery, status="processed") == len(ORDERS)
        assert await h.count(SourceHealth, delivered=len(ORDERS)) == 1
        m = await metrics(h, "dresses")
        assert m[(date(2026, 11, 10), "orders", "paid_search")] == 1
        assert m[(date(2026, 11, 11), "orders", "social")] == 1


async def test_replays_racing_the_move_are_all_duplicates(ingest: Any, tmp_path: Path) -> None:
    """Many replays of one delivery sent while the processor moves and processes it: exactly
    one is accepted, whichever file holds the first copy when each replay is checked."""
    h = ingest
    await make_store(h, "dresses", webhook_secret=SHOP_SECRET)
    body = (PAYLOADS / ORDERS[0][0]).read_bytes()
    event_id = str(uuid.uuid4())

    async def send() -> str:
        r = await h.client.post(
            "/v1/webhooks/shopify/dresses", content=body, headers=headers(*ORDERS[0], event_id)
        )
        assert r.status_code in (200, 202), r.text
        return str(r.json()["status"])

    statuses: list[str] = []
    for _ in range(10):
        statuses += await asyncio.gather(*(send() for _ in range(5)))
        await asyncio.sleep(0.05)
    assert statuses.count("accepted") == 1
    assert statuses.count("duplicate") == len(statuses) - 1
    await settle(h)
    assert await h.count(WebhookDelivery) == 1
    assert await h.count(WebhookDelivery, status="processed") == 1
    assert inbox_rows(tmp_path) == 0
