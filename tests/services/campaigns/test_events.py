"""Campaigns' events: its copy of the stores (ingest), remedial tasks from diagnosis findings,
and the task_due scheduler (once, on the morning the task is due, in the store's timezone)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support import Harness, campaigns_tenant, publish, store_event, wait_until

from services.campaigns.models import KnownStore
from shared.events import decode
from shared.events.campaigns import CampaignUpdatedV1, TaskDueV1
from shared.events.diagnosis import (
    DiagnosisCompletedV1,
    FindingClosedV1,
    FindingOpenedV1,
    FindingUpdatedV1,
)
from shared.events.ingest import StoreUpdatedV1
from shared.outbox import OutboxMessage


@pytest.fixture
async def keys(campaigns: Harness) -> dict[str, dict[str, str]]:
    return await campaigns_tenant(campaigns, "acme", ["us-shop"])


async def staged(h: Harness) -> list[Any]:
    async with h.app.state.db.session(readonly=True) as s:
        t = OutboxMessage.__table__
        return [decode(r.payload) for r in await s.execute(t.select().order_by(t.c.id))]


def finding(fid: uuid.UUID, *, severity: str = "high", day: dt.date) -> FindingOpenedV1:
    base = FindingOpenedV1.example()
    return base.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "tenant_id": "acme",
            "store_id": "us-shop",
            "finding_id": fid,
            "severity": severity,
            "date": day,
        }
    )


def report(fids: list[uuid.UUID], day: dt.date) -> DiagnosisCompletedV1:
    return DiagnosisCompletedV1.example().model_copy(
        update={
            "event_id": uuid.uuid4(),
            "tenant_id": "acme",
            "store_id": "us-shop",
            "finding_ids": fids,
            "date": day,
            "report_id": uuid.uuid4(),
        }
    )


async def tasks_of(h: Harness, keys: Any, cid: str) -> dict[str, Any]:
    r = await h.client.get(f"/v1/campaigns/{cid}", headers=keys["viewer"])
    return {t["id"]: t for t in r.json()["tasks"]}


async def test_resolving_and_reopening_a_finding_keeps_its_one_remedial_task(
    campaigns: Harness, keys: Any
) -> None:
    """Issue 15, point 7: resolving a finding cancels nothing in campaigns (its remedial task is
    the owner's work item, kept with its status), so reopening has nothing to restore and adds
    no second task."""
    r = await campaigns.client.post(
        "/v1/stores/us-shop/campaigns",
        json={"name": "BFCM", "event": "black_friday", "year": 2027},
        headers=keys["operator"],
    )
    cid = r.json()["id"]
    day = dt.date(2027, 11, 1)
    fid = uuid.uuid4()
    tid = f"fix-{str(fid)[:8]}"
    await publish(campaigns.app, finding(fid, day=day), report([fid], day))

    async def has(task_id: str) -> bool:
        return task_id in await tasks_of(campaigns, keys, cid)

    await wait_until(lambda: has(tid), timeout=20)
    common = {"tenant_id": "acme", "store_id": "us-shop", "finding_id": fid, "date": day}
    closed = FindingClosedV1.example().model_copy(update={"event_id": uuid.uuid4(), **common})
    reopened = FindingUpdatedV1.example().model_copy(
        update={"event_id": uuid.uuid4(), "status": "open", **common}
    )
    marker = store_event("marker-store-2", tenant="acme")
    await publish(campaigns.app, closed, reopened, marker)

    async def marker_seen() -> bool:
        return await campaigns.count(KnownStore, store_id="marker-store-2") == 1

    await wait_until(marker_seen, timeout=20)
    tasks = await tasks_of(campaigns, keys, cid)
    assert [t for t in tasks if t.startswith("fix-")] == [tid]
    assert tasks[tid]["status"] == "todo"


async def test_findings_add_remedial_tasks_once_in_either_order(
    campaigns: Harness, keys: Any
) -> None:
    r = await campaigns.client.post(
        "/v1/stores/us-shop/campaigns",
        json={"name": "BFCM", "event": "black_friday", "year": 2027},
        headers=keys["operator"],
    )
    cid = r.json()["id"]
    day = dt.date(2027, 11, 1)
    f1, f2, f3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    opened = finding(f1, day=day)
    completed = report([f1], day)
    await publish(campaigns.app, opened, completed)

    async def has(tid: str) -> bool:
        return tid in await tasks_of(campaigns, keys, cid)

    await wait_until(lambda: has(f"fix-{str(f1)[:8]}"), timeout=20)
    task = (await tasks_of(campaigns, keys, cid))[f"fix-{str(f1)[:8]}"]
    assert task["owner_role"] == "designer" and task["source"] == "remedial"
    assert task["name"].startswith("designer: Refresh the main image")
    assert dt.date.fromisoformat(task["start"]) > day
    # The report first, the finding after: added as well. A low finding adds nothing.
    await publish(
        campaigns.app,
        report([f2, f3], day),
        finding(f2, day=day),
        finding(f3, severity="low", day=day),
    )
    await wait_until(lambda: has(f"fix-{str(f2)[:8]}"), timeout=20)
    # Redelivery of the same events changes nothing.
    await publish(campaigns.app, opened, completed)
    marker = store_event("marker-store", tenant="acme")
    await publish(campaigns.app, marker)

    async def marker_seen() -> bool:
        return await campaigns.count(KnownStore, store_id="marker-store") == 1

    await wait_until(marker_seen, timeout=20)
    tasks = await tasks_of(campaigns, keys, cid)
    assert sorted(t for t in tasks if t.startswith("fix-")) == sorted(
        [f"fix-{str(f1)[:8]}", f"fix-{str(f2)[:8]}"]
    )
    updates = [e for e in await staged(campaigns) if isinstance(e, CampaignUpdatedV1)]
    assert len(updates) == 2
    assert f"fix-{str(f2)[:8]}" in {t.task_id for t in updates[-1].tasks}


async def test_store_updates_apply_in_event_time_order(campaigns: Harness, keys: Any) -> None:
    newer = StoreUpdatedV1.example().model_copy(
        update={
            "event_id": uuid.uuid4(),
            "tenant_id": "acme",
            "store_id": "us-shop",
            "timezone": "Asia/Tokyo",
            "market": "JP",
            "currency": "JPY",
            "occurred_at": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
        }
    )
    older = newer.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "timezone": "Europe/Paris",
            "occurred_at": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1),
        }
    )
    await publish(campaigns.app, newer, older)

    async def applied() -> bool:
        return await campaigns.count(KnownStore, store_id="us-shop", market="JP") == 1

    await wait_until(applied, timeout=20)
    await publish(campaigns.app, store_event("marker", tenant="acme"))
    await wait_until(lambda: campaigns.count(KnownStore, store_id="marker"), timeout=20)
    assert await campaigns.count(KnownStore, store_id="us-shop", timezone="Asia/Tokyo") == 1


async def test_task_due_once_on_the_local_morning(campaigns: Harness, keys: Any) -> None:
    body = {
        "name": "Winter",
        "start": "2027-01-11",
        "end": "2027-01-29",
        "tasks": [
            {"id": "brief", "name": "Brief", "owner_role": "operations", "duration": 2},
            {
                "id": "banner-copy",
                "name": "Banner copy",
                "owner_role": "content",
                "duration": 1,
                "copy_type": "banner",
                "depends_on": ["brief"],
            },
        ],
    }
    r = await campaigns.client.post(
        "/v1/stores/us-shop/campaigns", json=body, headers=keys["operator"]
    )
    tasks = {t["id"]: t for t in r.json()["tasks"]}
    assert tasks["banner-copy"]["due"] == "2027-01-13"
    scheduler = campaigns.app.state.task_due
    ny = ZoneInfo("America/New_York")
    cid = r.json()["id"]
    # A task that is done is not announced (the brief is due on the 12th).
    await campaigns.client.patch(
        f"/v1/campaigns/{cid}/tasks/brief", json={"status": "done"}, headers=keys["operator"]
    )
    assert await scheduler.run_once(dt.datetime(2027, 1, 12, 10, 0, tzinfo=ny)) == 0
    # The evening before (UTC already the due date), then 08:59 in New York: not yet.
    assert await scheduler.run_once(dt.datetime(2027, 1, 13, 1, 0, tzinfo=dt.UTC)) == 0
    assert await scheduler.run_once(dt.datetime(2027, 1, 13, 8, 59, tzinfo=ny)) == 0
    assert await scheduler.run_once(dt.datetime(2027, 1, 13, 9, 0, tzinfo=ny)) == 1
    assert await scheduler.run_once(dt.datetime(2027, 1, 13, 15, 0, tzinfo=ny)) == 0
    due = [e for e in await staged(campaigns) if isinstance(e, TaskDueV1)]
    assert len(due) == 1
    ev = due[0]
    assert ev.task_id == "banner-copy" and ev.copy_type == "banner" and ev.owner_role == "content"
    assert ev.due == dt.date(2027, 1, 13) and ev.store_id == "us-shop"


async def test_every_consumed_example_is_accepted(campaigns: Harness, keys: Any) -> None:
    from shared.events.ingest import FxRatesIngestedV1, StoreRegisteredV1

    examples = [
        FxRatesIngestedV1.example(),  # not campaigns' business: skipped, never dead-lettered
        StoreRegisteredV1.example(),
        StoreUpdatedV1.example(),
        FindingOpenedV1.example(),
        FindingUpdatedV1.example(),
        FindingClosedV1.example(),
        DiagnosisCompletedV1.example(),
    ]
    await publish(campaigns.app, *examples, store_event("last", tenant="acme"))
    await wait_until(lambda: campaigns.count(KnownStore, store_id="last"), timeout=20)
    bus = campaigns.app.state.bus
    assert await bus.read("ingest.v1.dlq") == [] and await bus.read("diagnosis.v1.dlq") == []
    assert await campaigns.count(KnownStore, store_id=StoreRegisteredV1.example().store_id) == 1
