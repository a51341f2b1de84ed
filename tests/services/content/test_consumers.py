"""content's consumers on the LocalBus: every contract example is accepted; campaigns open
briefs, click-through findings open refresh briefs, metric rows with copy_id feed experiments
that decide and publish content.experiment_decided."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from support import Harness, apply_events, content_key

from services.content.models import Brief, ContentStore, CopyMetric, Experiment
from shared.events import examples as ex
from shared.events.campaigns import CampaignCreatedV1, CampaignUpdatedV1, TaskDueV1
from shared.events.content import ExperimentDecidedV1
from shared.events.diagnosis import (
    DiagnosisCompletedV1,
    FindingClosedV1,
    FindingOpenedV1,
    FindingUpdatedV1,
)
from shared.events.ingest import (
    ApiKeyCreatedV1,
    ApiKeyRevokedV1,
    BenchmarkIngestedV1,
    CompetitorMetricsIngestedV1,
    FxRatesIngestedV1,
    MetricRowV1,
    MetricsIngestedV1,
    StoreRegisteredV1,
    StoreUpdatedV1,
    TenantCreatedV1,
    TenantUpdatedV1,
)
from shared.outbox import OutboxMessage

T = ex.EXAMPLE_TENANT
STORE = ex.EXAMPLE_STORE

EXAMPLES = [
    TenantCreatedV1,
    TenantUpdatedV1,
    ApiKeyCreatedV1,
    ApiKeyRevokedV1,
    StoreRegisteredV1,
    StoreUpdatedV1,
    MetricsIngestedV1,
    BenchmarkIngestedV1,
    CompetitorMetricsIngestedV1,
    FxRatesIngestedV1,
    CampaignCreatedV1,
    CampaignUpdatedV1,
    TaskDueV1,
    DiagnosisCompletedV1,
    FindingOpenedV1,
    FindingUpdatedV1,
    FindingClosedV1,
]


async def test_every_contract_example_is_accepted(content: Harness) -> None:
    events = [cls.example() for cls in EXAMPLES]
    await apply_events(content.app, *events)
    bus = content.app.state.bus
    for topic in ("ingest.v1.dlq", "campaigns.v1.dlq", "diagnosis.v1.dlq"):
        assert await bus.read(topic) == []
    assert await content.count(ContentStore, store_id=STORE) == 1
    # The example campaign has one copy task (one brief); the ctr finding opens a refresh brief.
    assert await content.count(Brief, kind="campaign") == 1
    assert await content.count(Brief, kind="refresh") == 1
    # A redelivery is applied once.
    await apply_events(content.app, CampaignCreatedV1.example())
    assert await content.count(Brief) == 2


async def brief_rows(h: Harness, **where: Any) -> list[Any]:
    table = Brief.__table__  # type: ignore[attr-defined]
    q = select(table)
    for k, v in where.items():
        q = q.where(table.c[k] == v)
    async with h.app.state.db.session(readonly=True) as s:
        return list((await s.execute(q)).all())


async def test_campaign_copy_tasks_become_briefs_answered_by_copies(content: Harness) -> None:
    await apply_events(content.app, StoreRegisteredV1.example(), CampaignCreatedV1.example())
    writer = await content_key(content.app, tenant=T, role="operator")
    reviewer = await content_key(content.app, tenant=T, role="operator", reviewer=True)
    c = content.client
    listed = (await c.get("/v1/briefs?owner=copywriter", headers=writer)).json()["items"]
    assert len(listed) == 1
    brief = listed[0]
    assert brief["due"] == "2025-11-12" and brief["copy_type"] == "banner"
    assert brief["campaign_id"] == str(ex.EXAMPLE_CAMPAIGN_ID) and brief["status"] == "open"
    by_campaign = await c.get(f"/v1/briefs?campaign_id={ex.EXAMPLE_CAMPAIGN_ID}", headers=writer)
    assert [b["id"] for b in by_campaign.json()["items"]] == [brief["id"]]
    assert (await c.get("/v1/briefs?owner=designer", headers=writer)).json()["items"] == []

    r = await c.post(
        "/v1/copies",
        json={
            "store_id": STORE,
            "type": "banner",
            "locale": "en",
            "title": "Black Friday starts now",
            "body": "Up to 40% off coats",
            "campaign_id": str(ex.EXAMPLE_CAMPAIGN_ID),
            "brief_id": brief["id"],
        },
        headers=writer,
    )
    cid = r.json()["id"]
    got = (await c.get(f"/v1/briefs/{brief['id']}", headers=writer)).json()
    assert got["answered_by"] == [cid] and got["status"] == "in_progress"
    for action, key in (("submit", writer), ("approve", reviewer), ("publish", reviewer)):
        r = await c.post(f"/v1/copies/{cid}/transitions", json={"action": action}, headers=key)
        assert r.status_code == 200, r.text
    assert (await c.get(f"/v1/briefs/{brief['id']}", headers=writer)).json()["status"] == "done"

    # The task moves: the brief follows; a plan without it cancels an untouched brief.
    moved = CampaignUpdatedV1.example().model_copy(
        update={
            "event_id": uuid.uuid4(),
            "tasks": [
                t.model_copy(update={"due": dt.date(2025, 11, 14)})
                if t.task_id == ex.EXAMPLE_COPY_TASK_ID
                else t
                for t in CampaignUpdatedV1.example().tasks
            ],
        }
    )
    await apply_events(content.app, moved)
    assert (await brief_rows(content, id=brief["id"]))[0].due == dt.date(2025, 11, 14)
    second = uuid.uuid4()
    created = CampaignCreatedV1.example().model_copy(
        update={"event_id": uuid.uuid4(), "campaign_id": second}
    )
    await apply_events(content.app, created)
    emptied = CampaignUpdatedV1.model_validate(
        {
            **CampaignUpdatedV1.example().model_dump(),
            "event_id": uuid.uuid4(),
            "campaign_id": second,
            "tasks": [
                {**t.model_dump(), "depends_on": [d for d in t.depends_on if d != "banner-copy"]}
                for t in CampaignUpdatedV1.example().tasks
                if t.copy_type is None
            ],
        }
    )
    await apply_events(content.app, emptied)
    assert [b.status for b in await brief_rows(content, campaign_id=str(second))] == ["cancelled"]


async def test_task_due_opens_a_brief_even_before_the_campaign_arrives(content: Harness) -> None:
    await apply_events(content.app, TaskDueV1.example())
    rows = await brief_rows(content, kind="campaign")
    assert len(rows) == 1 and rows[0].due == dt.date(2025, 11, 12)
    not_copy = TaskDueV1.example().model_copy(
        update={"event_id": uuid.uuid4(), "task_id": "ads-setup", "copy_type": None}
    )
    await apply_events(content.app, not_copy)
    assert await content.count(Brief) == 1


async def test_a_ctr_finding_opens_a_refresh_brief_for_the_copies_involved(
    content: Harness,
) -> None:
    await apply_events(content.app, StoreRegisteredV1.example())
    writer = await content_key(content.app, tenant=T, role="operator")
    reviewer = await content_key(content.app, tenant=T, role="operator", reviewer=True)
    c = content.client
    cid = (
        await c.post(
            "/v1/copies",
            json={
                "store_id": STORE,
                "type": "banner",
                "locale": "en",
                "title": "Coats",
                "body": "Warm coats",
            },
            headers=writer,
        )
    ).json()["id"]
    for action, key in (("submit", writer), ("approve", reviewer), ("publish", reviewer)):
        await c.post(f"/v1/copies/{cid}/transitions", json={"action": action}, headers=key)
    await apply_events(content.app, FindingOpenedV1.example())
    briefs = (await c.get("/v1/briefs?owner=designer", headers=writer)).json()["items"]
    assert len(briefs) == 1
    b = briefs[0]
    assert b["kind"] == "refresh" and b["copy_ids"] == [cid]
    assert b["finding_id"] == str(ex.EXAMPLE_FINDING_ID)
    assert b["due"] == str(ex.EXAMPLE_METRICS_DATE + dt.timedelta(days=2))  # severity high
    # About one copy: that copy only.
    one = FindingOpenedV1.example().model_copy(
        update={
            "event_id": uuid.uuid4(),
            "finding_id": uuid.uuid4(),
            "dimensions": {"copy_id": "c-1"},
        }
    )
    other = FindingOpenedV1.example().model_copy(
        update={
            "event_id": uuid.uuid4(),
            "finding_id": uuid.uuid4(),
            "metric": "cvr",
            "code": "cvr_drop",
        }
    )
    await apply_events(content.app, one, other)
    assert [r.copy_ids for r in await brief_rows(content, finding_id=str(one.finding_id))] == [
        ["c-1"]
    ]
    assert await brief_rows(content, finding_id=str(other.finding_id)) == []
    await apply_events(content.app, FindingClosedV1.example())
    assert (await brief_rows(content, id=b["id"]))[0].status == "cancelled"


async def test_reopening_a_finding_restores_the_brief_its_closing_cancelled(
    content: Harness,
) -> None:
    """Issue 15, point 7: resolving a click-through finding cancels its refresh brief; reopening
    it (diagnosis' finding_updated back to open, or finding_opened when a new report raises it
    again) restores that same brief to the status it had, never a second brief."""

    def again(event: Any, **update: Any) -> Any:
        return event.model_copy(update={"event_id": uuid.uuid4(), **update})

    fid = str(ex.EXAMPLE_FINDING_ID)
    await apply_events(content.app, StoreRegisteredV1.example(), FindingOpenedV1.example())
    (brief,) = await brief_rows(content, finding_id=fid)
    assert brief.status == "open"
    await apply_events(content.app, FindingClosedV1.example())
    assert [(b.id, b.status) for b in await brief_rows(content, finding_id=fid)] == [
        (brief.id, "cancelled")
    ]
    # an operator reopens the finding (POST /v1/findings/{id}/transitions {"action": "reopen"})
    reopened = again(FindingUpdatedV1.example(), status="open")
    await apply_events(content.app, reopened)
    rows = await brief_rows(content, finding_id=fid)
    assert [(b.id, b.status, b.cancelled_from) for b in rows] == [(brief.id, "open", None)]
    # closed as superseded, then raised again by a newer report version of its day
    await apply_events(content.app, again(FindingClosedV1.example(), resolution="superseded"))
    assert (await brief_rows(content, finding_id=fid))[0].status == "cancelled"
    await apply_events(content.app, again(FindingOpenedV1.example()))
    rows = await brief_rows(content, finding_id=fid)
    assert [(b.id, b.status) for b in rows] == [(brief.id, "open")]
    # a brief someone started is not cancelled by the closing, and reopening leaves it be
    table = Brief.__table__  # type: ignore[attr-defined]
    async with content.app.state.db.session() as s:
        await s.execute(table.update().where(table.c.id == brief.id).values(status="in_progress"))
        await s.commit()
    await apply_events(content.app, again(FindingClosedV1.example()))
    await apply_events(content.app, again(FindingUpdatedV1.example(), status="open"))
    assert [b.status for b in await brief_rows(content, finding_id=fid)] == ["in_progress"]
    # one brief for the finding through it all
    assert await content.count(Brief, kind="refresh") == 1


def metrics(rows: list[tuple[str, str, float, dict[str, str]]], day: dt.date) -> MetricsIngestedV1:
    return MetricsIngestedV1(
        tenant_id=T,
        store_id=STORE,
        batch_id=uuid.uuid4(),
        chunk=0,
        chunks=1,
        source="api",
        accepted=len(rows),
        duplicates=0,
        updated=0,
        rows=[
            MetricRowV1(date=day, metric=m, value=v, dimensions={"copy_id": c, **d})
            for c, m, v, d in rows
        ],
    )


async def decided_events(h: Harness) -> list[ExperimentDecidedV1]:
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    async with h.app.state.db.session(readonly=True) as s:
        rows = (
            await s.execute(
                select(table.c.payload).where(table.c.event_type == "content.experiment_decided")
            )
        ).all()
    return [ExperimentDecidedV1.model_validate_json(r[0]) for r in rows]


async def test_metric_rows_with_copy_id_decide_an_experiment(content: Harness) -> None:
    await apply_events(content.app, StoreRegisteredV1.example())
    writer = await content_key(content.app, tenant=T, role="operator")
    c = content.client
    ids = []
    for title in ("Coats 40% off", "Warm coats, 40% off"):
        r = await c.post(
            "/v1/copies",
            json={
                "store_id": STORE,
                "type": "banner",
                "locale": "en",
                "title": title,
                "body": "Shop now",
            },
            headers=writer,
        )
        ids.append(r.json()["id"])
    before = await content.count(Experiment)
    for payload, status in [
        ({"store_id": STORE, "name": "one", "copy_ids": ids[:1]}, 422),
        ({"store_id": STORE, "name": "dup", "copy_ids": [ids[0], ids[0]]}, 422),
        ({"store_id": STORE, "name": "ghost", "copy_ids": [ids[0], str(uuid.uuid4())]}, 422),
        ({"store_id": STORE, "name": "w", "copy_ids": ids, "weights": [1]}, 422),
        ({"store_id": "elsewhere", "name": "x", "copy_ids": ids}, 404),
    ]:
        r = await c.post("/v1/experiments", json=payload, headers=writer)
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    assert await content.count(Experiment) == before
    r = await c.post(
        "/v1/experiments",
        json={"store_id": STORE, "name": "BF banner", "copy_ids": ids, "min_sample": 10_000},
        headers=writer,
    )
    assert r.status_code == 201, r.text
    exp_id = r.json()["id"]
    assert r.json()["evaluation"]["decision"] is None

    day = dt.date(2025, 11, 20)
    # Half the data: no decision yet (below the minimum sample); a manual decide is refused.
    first = metrics(
        [
            (ids[0], "impressions", 5000, {}),
            (ids[0], "clicks", 110, {}),
            (ids[1], "impressions", 5000, {}),
            (ids[1], "clicks", 80, {}),
            (ids[0], "impressions", 2500, {"channel": "search"}),  # finer breakdown: not re-added
        ],
        day,
    )
    await apply_events(content.app, first, first)  # a redelivery counts once
    got = (await c.get(f"/v1/experiments/{exp_id}", headers=writer)).json()
    assert got["status"] == "running"
    assert [v["impressions"] for v in got["evaluation"]["variants"]] == [5000, 5000]
    r = await c.post(f"/v1/experiments/{exp_id}/decide", json={}, headers=writer)
    assert r.status_code == 409 and "impressions" in r.json()["detail"]
    assert await decided_events(content) == []

    second = metrics(
        [
            (ids[0], "impressions", 45000, {}),
            (ids[0], "clicks", 1000, {}),
            (ids[1], "impressions", 45000, {}),
            (ids[1], "clicks", 760, {}),
            (ids[0], "orders", 40, {}),
        ],
        day + dt.timedelta(days=1),
    )
    await apply_events(content.app, second)
    got = (await c.get(f"/v1/experiments/{exp_id}", headers=writer)).json()
    assert (got["status"], got["decision"], got["winner_copy_id"]) == ("decided", "winner", ids[0])
    events = await decided_events(content)
    assert len(events) == 1
    e = events[0]
    assert str(e.winner_copy_id) == ids[0] and e.decision == "winner" and e.metric == "ctr"
    assert [v.impressions for v in e.variants] == [50000, 50000]
    assert e.variants[0].probability_best > 0.95 and e.p_value is not None and e.p_value < 0.05
    assert got["evaluation"]["variants"][0]["orders"] == 40
    assert await content.count(CopyMetric) == 10  # the redelivered batch added nothing
    r = await c.post(f"/v1/experiments/{exp_id}/decide", json={"stop": True}, headers=writer)
    assert r.status_code == 409 and len(await decided_events(content)) == 1


async def test_an_experiment_can_be_stopped_without_a_winner(content: Harness) -> None:
    await apply_events(content.app, StoreRegisteredV1.example())
    writer = await content_key(content.app, tenant=T, role="operator")
    viewer = await content_key(content.app, tenant=T, role="viewer")
    c = content.client
    ids = [
        (
            await c.post(
                "/v1/copies",
                json={
                    "store_id": STORE,
                    "type": "push",
                    "locale": "en",
                    "title": f"T{i}",
                    "body": "B",
                },
                headers=writer,
            )
        ).json()["id"]
        for i in range(3)
    ]
    r = await c.post(
        "/v1/experiments",
        json={
            "store_id": STORE,
            "name": "push",
            "copy_ids": ids,
            "baseline_ctr": 0.02,
            "minimum_detectable_effect": 0.1,
        },
        headers=writer,
    )
    exp = r.json()
    assert exp["rule"]["min_sample"] > 80_000  # sized for 2 comparisons at 80% power
    assert (
        await c.post(f"/v1/experiments/{exp['id']}/decide", json={"stop": True}, headers=viewer)
    ).status_code == 403
    r = await c.post(f"/v1/experiments/{exp['id']}/decide", json={"stop": True}, headers=writer)
    assert (r.json()["status"], r.json()["decision"]) == ("stopped", "stopped")
    listed = (await c.get(f"/v1/experiments?store_id={STORE}", headers=viewer)).json()
    assert [(e["id"], e["status"]) for e in listed["items"]] == [(exp["id"], "stopped")]
    assert (await c.get("/v1/experiments?status=running", headers=viewer)).json()["items"] == []
    events = await decided_events(content)
    assert [(e.decision, e.winner_copy_id) for e in events] == [("stopped", None)]


async def test_each_planned_look_is_analysed_once(content: Harness) -> None:
    await apply_events(content.app, StoreRegisteredV1.example())
    writer = await content_key(content.app, tenant=T, role="operator")
    c = content.client
    ids = [
        (
            await c.post(
                "/v1/copies",
                json={
                    "store_id": STORE,
                    "type": "banner",
                    "locale": "en",
                    "title": f"V{i}",
                    "body": "B",
                },
                headers=writer,
            )
        ).json()["id"]
        for i in range(2)
    ]
    r = await c.post(
        "/v1/experiments",
        json={
            "store_id": STORE,
            "name": "looks",
            "copy_ids": ids,
            "min_sample": 10_000,
            "looks": 2,
        },
        headers=writer,
    )
    exp_id = r.json()["id"]
    day = dt.date(2025, 11, 20)
    even = [(ids[0], "impressions", 12_000, {}), (ids[0], "clicks", 240, {})]
    even += [(ids[1], "impressions", 12_000, {}), (ids[1], "clicks", 238, {})]
    await apply_events(content.app, metrics(even, day))
    got = (await c.get(f"/v1/experiments/{exp_id}", headers=writer)).json()
    assert got["status"] == "running" and got["evaluation"]["look"] == 1
    r = await c.post(f"/v1/experiments/{exp_id}/decide", json={}, headers=writer)
    assert r.status_code == 409 and r.json()["next_look_at"] == 20_000
    # The second (last) look without a winner: no difference, published.
    more = [(ids[0], "impressions", 9_000, {}), (ids[0], "clicks", 180, {})]
    more += [(ids[1], "impressions", 9_000, {}), (ids[1], "clicks", 181, {})]
    await apply_events(content.app, metrics(more, day + dt.timedelta(days=1)))
    got = (await c.get(f"/v1/experiments/{exp_id}", headers=writer)).json()
    assert (got["status"], got["decision"]) == ("decided", "no_difference")
    assert [(e.decision, e.winner_copy_id) for e in await decided_events(content)] == [
        ("no_difference", None)
    ]
