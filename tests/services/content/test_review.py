"""The review: who may approve (admins and the reviewers a tenant's admins assign), names in the
audit from ingest.api_key_created, briefs closed by the copies that answer them without a brief
id passed by hand, the A/B readout with lift intervals and sentences, and product categories."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from support import Harness, apply_events, content_key

from services.content.readout import sentences
from services.content.stats import DecisionRule, Variant, evaluate, lift_interval
from shared.events import examples as ex
from shared.events.campaigns import CampaignCreatedV1, CampaignUpdatedV1
from shared.events.ingest import ApiKeyCreatedV1, MetricRowV1, MetricsIngestedV1, StoreRegisteredV1

T = ex.EXAMPLE_TENANT
STORE = ex.EXAMPLE_STORE
BANNER = {"store_id": STORE, "type": "banner", "locale": "en", "title": "Coats", "body": "Shop"}


async def act(h: Harness, cid: str, action: str, key: dict[str, str], **kw: Any) -> Any:
    return await h.client.post(
        f"/v1/copies/{cid}/transitions", json={"action": action, **kw}, headers=key
    )


async def test_approval_needs_an_admin_or_an_assigned_reviewer(content: Harness) -> None:
    await apply_events(content.app, StoreRegisteredV1.example())
    c = content.client
    writer = await content_key(content.app, tenant=T, role="operator")
    operator = await content_key(content.app, tenant=T, role="operator")
    admin = await content_key(content.app, tenant=T, role="admin")
    legal_id = str(uuid.uuid4())
    legal = await content_key(content.app, tenant=T, role="viewer", user_id=legal_id)
    cid = (await c.post("/v1/copies", json=BANNER, headers=writer)).json()["id"]
    assert (await act(content, cid, "submit", writer)).status_code == 200
    for key in (operator, legal):
        r = await act(content, cid, "approve", key)
        assert r.status_code == 403, r.text
        assert "reviewer" in r.json()["detail"]
    # Only admins manage the list.
    r = await c.post("/v1/reviewers", json={"user_id": legal_id}, headers=operator)
    assert r.status_code == 403
    r = await c.post("/v1/reviewers", json={"user_id": legal_id, "note": "legal"}, headers=admin)
    assert r.status_code == 200 and [x["user_id"] for x in r.json()] == [legal_id]
    assert (await c.get("/v1/reviewers", headers=writer)).json()[0]["note"] == "legal"
    # A reviewer holding a viewer key may approve and reject, not write or publish.
    assert (await act(content, cid, "reject", legal, comment="cite the source")).status_code == 200
    assert (await act(content, cid, "submit", legal)).status_code == 403
    assert (await act(content, cid, "submit", writer)).status_code == 200
    assert (await act(content, cid, "approve", legal)).json()["status"] == "approved"
    assert (await act(content, cid, "publish", legal)).status_code == 403
    assert (await act(content, cid, "publish", writer)).json()["status"] == "published"
    # Removed, the reviewer cannot approve any more; an admin always can.
    assert (await c.delete(f"/v1/reviewers/{legal_id}", headers=admin)).status_code == 204
    assert (await c.delete(f"/v1/reviewers/{legal_id}", headers=admin)).status_code == 404
    other = (await c.post("/v1/copies", json=BANNER, headers=writer)).json()["id"]
    await act(content, other, "submit", writer)
    assert (await act(content, other, "approve", legal)).status_code == 403
    assert (await act(content, other, "approve", admin)).json()["status"] == "approved"


async def test_the_audit_names_people_from_the_key_events(content: Harness) -> None:
    await apply_events(content.app, StoreRegisteredV1.example())
    c = content.client
    writer = await content_key(content.app, tenant=T, role="operator", user_name="Li Wei")
    reviewer = await content_key(
        content.app, tenant=T, role="operator", reviewer=True, user_name="Sato Yuki"
    )
    # The name also arrives through the bus, on the consumer path.
    event = ApiKeyCreatedV1.example()
    await apply_events(content.app, event)
    cid = (await c.post("/v1/copies", json=BANNER, headers=writer)).json()["id"]
    await act(content, cid, "submit", writer)
    await act(content, cid, "approve", reviewer)
    audit = (await c.get(f"/v1/copies/{cid}/audit", headers=writer)).json()
    assert [(a["action"], a["actor_name"]) for a in audit] == [
        ("create", "Li Wei"),
        ("submit", "Li Wei"),
        ("approve", "Sato Yuki"),
    ]
    admin = await content_key(content.app, tenant=T, role="admin")
    await c.post("/v1/reviewers", json={"user_id": str(event.user_id)}, headers=admin)
    names = {r["user_id"]: r["name"] for r in (await c.get("/v1/reviewers", headers=admin)).json()}
    assert names[str(event.user_id)] == event.user_name == "Li Wei"


async def test_a_copy_for_the_campaign_and_type_of_a_brief_closes_it_on_publish(
    content: Harness,
) -> None:
    await apply_events(content.app, StoreRegisteredV1.example())
    c = content.client
    writer = await content_key(content.app, tenant=T, role="operator")
    reviewer = await content_key(content.app, tenant=T, role="operator", reviewer=True)
    # The campaign is known but has no copy task yet: a copy written now has no brief...
    bare = CampaignCreatedV1.example()
    bare = bare.model_copy(
        update={"tasks": [t.model_copy(update={"copy_type": None}) for t in bare.tasks]}
    )
    await apply_events(content.app, bare)
    assert (await c.get("/v1/briefs", headers=writer)).json()["items"] == []
    early = (
        await c.post(
            "/v1/copies",
            json={**BANNER, "campaign_id": str(ex.EXAMPLE_CAMPAIGN_ID)},
            headers=writer,
        )
    ).json()
    assert early["brief_id"] is None
    # ...the plan then gains its banner task (a new event id): the brief opens; the early copy
    # answers it when it is published.
    await apply_events(content.app, CampaignUpdatedV1.example())
    brief = (await c.get("/v1/briefs", headers=writer)).json()["items"][0]
    assert brief["status"] == "open" and brief["copy_type"] == "banner"
    # Written for the campaign and type: linked to the open brief without its id.
    copy = (
        await c.post(
            "/v1/copies",
            json={**BANNER, "campaign_id": str(ex.EXAMPLE_CAMPAIGN_ID)},
            headers=writer,
        )
    ).json()
    assert copy["brief_id"] == brief["id"]
    assert (await c.get(f"/v1/briefs/{brief['id']}", headers=writer)).json()["status"] == (
        "in_progress"
    )
    # Another type does not answer a banner brief.
    push = {**BANNER, "type": "push", "campaign_id": str(ex.EXAMPLE_CAMPAIGN_ID)}
    assert (await c.post("/v1/copies", json=push, headers=writer)).json()["brief_id"] is None
    for action in ("submit", "approve", "publish"):
        key = reviewer if action == "approve" else writer
        assert (await act(content, early["id"], action, key)).status_code == 200
    got = (await c.get(f"/v1/briefs/{brief['id']}", headers=writer)).json()
    assert got["status"] == "done"
    assert (await c.get(f"/v1/copies/{early['id']}", headers=writer)).json()["brief_id"] == (
        brief["id"]
    )


async def test_copies_carry_a_product_category_the_lint_weighs(content: Harness) -> None:
    await apply_events(content.app, StoreRegisteredV1.example())
    c = content.client
    writer = await content_key(content.app, tenant=T, role="operator")
    body = {**BANNER, "locale": "zh-CN", "title": "燕麦片", "body": "增强免疫力"}
    food = await c.post("/v1/copies", json={**body, "product_category": "food"}, headers=writer)
    assert food.status_code == 201, food.text
    assert food.json()["product_category"] == "food" and food.json()["lint"]["errors"] >= 1
    hf = await c.post(
        "/v1/copies",
        json={**body, "body": "增强免疫力。本品不能代替药物", "product_category": "health_food"},
        headers=writer,
    )
    assert hf.json()["lint"]["errors"] == 0 and hf.json()["lint"]["warnings"] >= 1
    r = await c.post("/v1/copies", json={**body, "product_category": "rocket"}, headers=writer)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "product_category"]
    lint = await c.post(
        "/v1/lint",
        json={"body": "吃了能治失眠", "locale": "zh-CN", "product_category": "food"},
        headers=writer,
    )
    assert lint.json()["product_category"] == "food" and not lint.json()["ok"]


def test_lift_interval_matches_the_textbook_and_the_sentences_read() -> None:
    li = lift_interval(300, 10_000, 360, 10_000)
    assert li is not None
    assert abs(li.diff - 0.006) < 1e-12
    lo, hi = li.diff_interval
    assert abs(lo - 0.00105) < 1e-4 and abs(hi - 0.01095) < 1e-4
    assert li.relative is not None and abs(li.relative - 0.2) < 1e-12
    assert li.relative_interval is not None
    rlo, rhi = li.relative_interval
    assert 0.02 < rlo < 0.05 and 0.38 < rhi < 0.41 and rhi - 0.2 > 0.2 - rlo  # asymmetric
    assert lift_interval(0, 100, 3, 100) is not None
    assert lift_interval(0, 100, 3, 100).relative is None  # type: ignore[union-attr]
    assert lift_interval(1, 0, 3, 100) is None
    ev = evaluate([Variant("a", 10_000, 300), Variant("b", 10_000, 360)], DecisionRule()).as_dict()
    text = sentences(ev)
    assert set(text) == {"en", "zh-CN", "ja"}
    assert "Variant B" in text["en"] and "+0.60 points" in text["en"] and "+20.0%" in text["en"]
    assert "excludes no difference" in text["en"]
    assert "方案B" in text["zh-CN"] and "置信区间" in text["zh-CN"]
    assert "案B" in text["ja"] and "信頼区間" in text["ja"]
    flat = sentences(
        evaluate([Variant("a", 1000, 30), Variant("b", 1000, 31)], DecisionRule()).as_dict()
    )
    assert "still includes no difference" in flat["en"] and "尚不能判定" in flat["zh-CN"]
    assert "No readout" in sentences({"variants": [], "lift": []})["en"]


async def test_the_experiment_readout_is_served(content: Harness) -> None:
    await apply_events(content.app, StoreRegisteredV1.example())
    c = content.client
    writer = await content_key(content.app, tenant=T, role="operator")
    ids = [
        (await c.post("/v1/copies", json={**BANNER, "title": t}, headers=writer)).json()["id"]
        for t in ("Coats", "Warm coats")
    ]
    exp = (
        await c.post(
            "/v1/experiments",
            json={"store_id": STORE, "name": "x", "copy_ids": ids, "min_sample": 1000},
            headers=writer,
        )
    ).json()
    day = dt.date(2025, 11, 20)
    rows = [(ids[0], "impressions", 4000), (ids[0], "clicks", 100)]
    rows += [(ids[1], "impressions", 4000), (ids[1], "clicks", 140)]
    await apply_events(
        content.app,
        MetricsIngestedV1(
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
                MetricRowV1(date=day, metric=m, value=v, dimensions={"copy_id": cid})
                for cid, m, v in rows
            ],
        ),
    )
    got = (await c.get(f"/v1/experiments/{exp['id']}", headers=writer)).json()["evaluation"]
    (lift,) = got["lift"]
    assert lift["copy_id"] == ids[1] and lift["control_copy_id"] == ids[0]
    assert abs(lift["ctr_diff"] - 0.01) < 1e-9 and lift["confidence"] == 0.95
    assert lift["ctr_diff_interval"][0] < 0.01 < lift["ctr_diff_interval"][1]
    assert set(got["summary"]) == {"en", "zh-CN", "ja"} and "Variant B" in got["summary"]["en"]
