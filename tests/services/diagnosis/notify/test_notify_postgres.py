"""Notifications on the real PostgreSQL (the distributed mode's database): the upserts and claims
use PostgreSQL's ON CONFLICT, and two workers (two pods) lease disjoint batches with
FOR UPDATE SKIP LOCKED, so every message is sent once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from support import assert_models_match_migrations

from services.diagnosis.main import MIGRATIONS
from services.diagnosis.models import TABLES
from services.diagnosis.notify.delivery import Notifier
from services.diagnosis.notify.models import NotificationAlert, NotificationDigest

pytestmark = pytest.mark.integration
BASE = "/v1/notification-targets"


async def test_models_and_migrations_agree_on_postgres(pg_url: str) -> None:
    await assert_models_match_migrations(pg_url, TABLES, MIGRATIONS)


async def test_alerts_budget_digest_and_two_workers_on_postgres(
    pg_notify: Any, finding: Any
) -> None:
    h = pg_notify
    t = await h.target(h.keys["acme:admin"], alert_budget=5, timezone="Europe/Paris")
    events = [finding(severity="high", title=f"F{i}", impact=-10.0 * (i + 1)) for i in range(8)]
    await h.publish(*events)
    # A replay, and an update that changes nothing that matters: no alerts.
    again = finding("updated", finding_id=events[1].finding_id, title="F1", impact=-20.0)
    await h.publish(events[0], again)
    assert await h.count(NotificationAlert, state="sent") == 5
    assert await h.count(NotificationAlert, state="held") == 3

    async with httpx.AsyncClient() as c1, httpx.AsyncClient() as c2:
        settings = h.app.state.notify_settings
        one, two = Notifier(h.app.state, c1, settings), Notifier(h.app.state, c2, settings)
        sent = await asyncio.gather(one.deliver_due(), two.deliver_due())
        assert sum(sent) == 5  # each pending delivery leased by exactly one worker
        assert await one.deliver_due() == 0
        ids = [r.headers["webhook-id"] for r in h.receiver.on("/hook")]
        assert len(ids) == len(set(ids)) == 5

        at = (datetime.now(UTC) + timedelta(days=1)).replace(hour=12)  # 13:00 in Paris
        claimed = await asyncio.gather(one.run_digests(at), two.run_digests(at))
        assert sum(claimed) == 1
        assert await h.count(NotificationDigest, target_id=t["id"]) == 1
        await asyncio.gather(one.deliver_due(), two.deliver_due())
    digest = h.receiver.on("/hook")[-1].json()["data"]
    assert digest["held_count"] == 3 and digest["open_count"] == 8
    assert [f["title"] for f in digest["findings"]][:3] == ["F7", "F6", "F5"]
    assert await h.count(NotificationAlert, state="digested") == 3
