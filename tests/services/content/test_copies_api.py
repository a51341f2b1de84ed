"""Copies over HTTP: revisions, diffs, the review workflow with roles and audit, publishing with
the lint, the lint endpoint and template rendering; every refusal is problem+json and changes
nothing."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from support import ADMIN, Harness, apply_events, content_key

from services.content.models import Copy, CopyAudit, CopyRevision
from shared.events.content import CopyPublishedV1
from shared.events.ingest import StoreRegisteredV1
from shared.outbox import OutboxMessage

TENANT = "acme"


def store_event(store_id: str, tenant: str = TENANT, market: str = "US") -> StoreRegisteredV1:
    return StoreRegisteredV1(
        tenant_id=tenant,
        store_id=store_id,
        name=store_id.title(),
        platform="shopify",
        timezone="America/New_York",
        currency="USD",
        market=market,
        category="apparel",
    )


async def setup(h: Harness) -> dict[str, dict[str, str]]:
    await apply_events(
        h.app, store_event("shop"), store_event("other"), store_event("shop", tenant="rival")
    )
    return {
        # The writer may review too (others' copy): four eyes still hold for their own.
        "writer": await content_key(h.app, tenant=TENANT, role="operator", reviewer=True),
        "reviewer": await content_key(h.app, tenant=TENANT, role="operator", reviewer=True),
        "viewer": await content_key(h.app, tenant=TENANT, role="viewer"),
        "scoped": await content_key(h.app, tenant=TENANT, role="operator", store_ids=["other"]),
        "rival": await content_key(h.app, tenant="rival", role="admin"),
    }


async def state(h: Harness) -> tuple[int, int, int, int]:
    return (
        await h.count(Copy),
        await h.count(CopyRevision),
        await h.count(CopyAudit),
        await h.count(OutboxMessage),
    )


def assert_problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"] and body["type"]
    return body


BANNER = {
    "store_id": "shop",
    "type": "banner",
    "locale": "en",
    "title": "Black Friday starts now",
    "body": "Up to 40% off coats and knitwear",
}


async def test_copy_lifecycle_with_revisions_diff_review_publish_and_audit(
    content: Harness,
) -> None:
    keys = await setup(content)
    c = content.client
    r = await c.post("/v1/copies", json=BANNER, headers=keys["writer"])
    assert r.status_code == 201, r.text
    copy = r.json()
    cid = copy["id"]
    assert (copy["revision"], copy["status"]) == (1, "draft")
    assert copy["lint"]["channels"] == ["banner"] and copy["lint"]["ok"] is True

    r = await c.put(
        f"/v1/copies/{cid}",
        json={"body": "Up to 50% off warm coats and knitwear", "note": "deeper discount"},
        headers=keys["writer"],
    )
    assert r.status_code == 200 and r.json()["revision"] == 2
    revs = (await c.get(f"/v1/copies/{cid}/revisions", headers=keys["viewer"])).json()
    assert [x["revision"] for x in revs] == [1, 2]
    assert revs[0]["body"] == BANNER["body"]  # revision 1 is untouched
    d = (await c.get(f"/v1/copies/{cid}/diff?from=1&to=2", headers=keys["viewer"])).json()
    changed = [(o["old"], o["new"]) for o in d["body"] if o["op"] != "equal"]
    assert changed[0] == ("40", "50") and changed[1][1].strip() == "warm"

    r = await c.post(
        f"/v1/copies/{cid}/transitions", json={"action": "submit"}, headers=keys["writer"]
    )
    assert r.json()["status"] == "in_review"
    before = await state(content)
    r = await c.post(
        f"/v1/copies/{cid}/transitions", json={"action": "approve"}, headers=keys["writer"]
    )
    body = assert_problem(r, 409)
    assert "own copy" in body["detail"]
    assert await state(content) == before
    r = await c.post(
        f"/v1/copies/{cid}/transitions", json={"action": "approve"}, headers=keys["reviewer"]
    )
    assert r.json()["status"] == "approved"
    r = await c.post(
        f"/v1/copies/{cid}/transitions", json={"action": "publish"}, headers=keys["reviewer"]
    )
    assert r.status_code == 200 and r.json()["published_revision"] == 2

    async with content.app.state.db.session(readonly=True) as s:
        rows = (
            await s.execute(
                select(OutboxMessage.__table__.c.payload).where(  # type: ignore[attr-defined]
                    OutboxMessage.__table__.c.event_type == "content.copy_published"  # type: ignore[attr-defined]
                )
            )
        ).all()
    assert len(rows) == 1
    event = CopyPublishedV1.model_validate_json(rows[0][0])
    assert (str(event.copy_id), event.revision, event.body) == (
        cid,
        2,
        "Up to 50% off warm coats and knitwear",
    )
    assert event.tenant_id == TENANT and event.store_id == "shop" and event.copy_type == "banner"

    audit = (await c.get(f"/v1/copies/{cid}/audit", headers=keys["viewer"])).json()
    assert [a["action"] for a in audit] == ["create", "edit", "submit", "approve", "publish"]
    assert audit[3]["actor"] != audit[0]["actor"] and audit[-1]["to_status"] == "published"

    # Editing the published copy starts a new draft; the published revision stays recorded.
    r = await c.put(
        f"/v1/copies/{cid}", json={"title": "Black Friday is here"}, headers=keys["writer"]
    )
    assert (r.json()["status"], r.json()["revision"], r.json()["published_revision"]) == (
        "draft",
        3,
        2,
    )
    r = await c.post(
        f"/v1/copies/{cid}/transitions", json={"action": "archive"}, headers=keys["writer"]
    )
    assert r.json()["status"] == "archived"
    before = await state(content)
    assert_problem(
        await c.put(f"/v1/copies/{cid}", json={"title": "x"}, headers=keys["writer"]), 409
    )
    assert await state(content) == before


async def test_submitting_is_refused_while_the_lint_has_errors(content: Harness) -> None:
    keys = await setup(content)
    c = content.client
    body = {**BANNER, "locale": "zh-CN", "title": "全网最低价", "body": "双十一顶级好货"}
    r = await c.post("/v1/copies", json=body, headers=keys["writer"])
    cid = r.json()["id"]
    lint = r.json()["lint"]
    assert lint["errors"] >= 2 and {i["rule"] for i in lint["issues"]} >= {"cn.absolute_terms"}
    before = await state(content)
    r = await c.post(
        f"/v1/copies/{cid}/transitions", json={"action": "submit"}, headers=keys["writer"]
    )
    problem = assert_problem(r, 422)
    assert "Submitting" in problem["detail"]
    # errors [{loc, msg}] name the field and carry the law; issues keep the full lint entries.
    locs = {tuple(e["loc"]) for e in problem["errors"]}
    assert locs == {("body", "title"), ("body", "body")}
    assert all(e["msg"] and "广告法" in e["msg"] for e in problem["errors"])
    assert problem["issues"] and all(i["severity"] == "error" for i in problem["issues"])
    assert await state(content) == before
    assert (await c.get(f"/v1/copies/{cid}", headers=keys["viewer"])).json()["status"] == "draft"
    # Fixed, it goes through.
    r = await c.put(
        f"/v1/copies/{cid}",
        json={"title": "双十一好价", "body": "冬季外套满300减50"},
        headers=keys["writer"],
    )
    assert r.json()["lint"]["errors"] == 0, r.json()["lint"]
    r = await c.post(
        f"/v1/copies/{cid}/transitions", json={"action": "submit"}, headers=keys["writer"]
    )
    assert r.json()["status"] == "in_review"


async def test_illegal_transitions_and_rejection_comments(content: Harness) -> None:
    keys = await setup(content)
    c = content.client
    cid = (await c.post("/v1/copies", json=BANNER, headers=keys["writer"])).json()["id"]
    before = await state(content)
    for action in ("approve", "reject", "publish"):
        r = await c.post(
            f"/v1/copies/{cid}/transitions", json={"action": action}, headers=keys["reviewer"]
        )
        problem = assert_problem(r, 409)
        assert problem["status_now"] == "draft"
    r = await c.post(
        f"/v1/copies/{cid}/transitions", json={"action": "fly"}, headers=keys["reviewer"]
    )
    assert_problem(r, 422)
    assert await state(content) == before
    await c.post(f"/v1/copies/{cid}/transitions", json={"action": "submit"}, headers=keys["writer"])
    before = await state(content)
    r = await c.post(
        f"/v1/copies/{cid}/transitions", json={"action": "reject"}, headers=keys["reviewer"]
    )
    assert assert_problem(r, 422)["errors"][0]["loc"] == ["body", "comment"]
    assert await state(content) == before
    r = await c.post(
        f"/v1/copies/{cid}/transitions",
        json={"action": "reject", "comment": "Say which coats"},
        headers=keys["reviewer"],
    )
    assert r.json()["status"] == "draft"
    audit = (await c.get(f"/v1/copies/{cid}/audit", headers=keys["viewer"])).json()
    assert audit[-1]["action"] == "reject" and audit[-1]["comment"] == "Say which coats"


async def test_roles_scopes_and_tenants(content: Harness) -> None:
    keys = await setup(content)
    c = content.client
    before = await state(content)
    assert_problem(await c.post("/v1/copies", json=BANNER), 401)
    assert_problem(await c.post("/v1/copies", json=BANNER, headers=keys["viewer"]), 403)
    assert_problem(await c.post("/v1/copies", json=BANNER, headers=keys["scoped"]), 404)
    assert_problem(
        await c.post("/v1/copies", json={**BANNER, "store_id": "nowhere"}, headers=keys["writer"]),
        404,
    )
    assert await state(content) == before
    cid = (await c.post("/v1/copies", json=BANNER, headers=keys["writer"])).json()["id"]
    assert (await c.get(f"/v1/copies/{cid}", headers=keys["viewer"])).status_code == 200
    assert_problem(await c.get(f"/v1/copies/{cid}", headers=keys["scoped"]), 404)
    assert_problem(await c.get(f"/v1/copies/{cid}", headers=keys["rival"]), 404)
    r = await c.post(
        f"/v1/copies/{cid}/transitions", json={"action": "submit"}, headers=keys["viewer"]
    )
    assert_problem(r, 403)
    listed = (await c.get("/v1/copies?store_id=shop", headers=keys["viewer"])).json()
    assert [x["id"] for x in listed["items"]] == [cid]
    assert (await c.get("/v1/copies", headers=keys["rival"])).json()["items"] == []
    # The bootstrap admin (tenant default) sees nothing of acme either.
    assert (await c.get("/v1/copies", headers=ADMIN)).json()["items"] == []


async def test_bad_copy_input_changes_nothing(content: Harness) -> None:
    keys = await setup(content)
    c = content.client
    before = await state(content)
    bad = [
        ({**BANNER, "channels": ["telegraph"]}, ["body", "channels"]),
        ({**BANNER, "type": "poster"}, ["body", "type"]),
        ({**BANNER, "locale": "fr"}, ["body", "locale"]),
        ({**BANNER, "body": ""}, ["body", "body"]),
    ]
    for payload, loc in bad:
        problem = assert_problem(
            await c.post("/v1/copies", json=payload, headers=keys["writer"]), 422
        )
        assert problem["errors"][0]["loc"] == loc
    for body, variables in [
        ("Hi {{ name.__class__ }}", [{"name": "name"}]),
        ("Hi {% for i in range(9) %}{% endfor %}{{ who }}", [{"name": "name"}]),  # undeclared
        ("Hi {{ name", [{"name": "name"}]),
    ]:
        payload = {**BANNER, "body": body, "variables": variables}
        assert_problem(await c.post("/v1/copies", json=payload, headers=keys["writer"]), 422)
    r = await c.post(
        "/v1/copies",
        content=b"{not json",
        headers={**keys["writer"], "content-type": "application/json"},
    )
    assert_problem(r, 400)
    assert await state(content) == before


async def test_lint_endpoint(content: Harness) -> None:
    keys = await setup(content)
    c = content.client
    r = await c.post(
        "/v1/lint",
        json={"text": "【好店】全场最低价\uff0c国家级品质", "locale": "zh-CN", "type": "sms"},
        headers=keys["viewer"],
    )
    assert r.status_code == 200
    out = r.json()
    assert out["ok"] is False and out["sms"]["encoding"] == "UCS-2" and out["sms"]["segments"] == 1
    issues = {i["rule"]: i for i in out["issues"] if i["code"] == "banned_term"}
    assert issues["cn.absolute_terms"]["citation"].startswith("《广告法》第九条")
    assert "sms_opt_out_missing" in {i["code"] for i in out["issues"]}
    sms = await c.post(
        "/v1/lint",
        json={"body": "a" * 161 + " Reply STOP to opt out", "type": "sms"},
        headers=keys["viewer"],
    )
    assert (sms.json()["sms"]["encoding"], sms.json()["sms"]["segments"]) == ("GSM-7", 2)
    profiles = (await c.get("/v1/lint/profiles", headers=keys["viewer"])).json()
    assert "sms_cn" in profiles["channels"] and "eu_ucpd" in profiles["packs"]
    before = await state(content)
    for payload, loc in [
        ({"text": "x", "channels": ["telegraph"]}, ["body", "channels"]),
        ({"text": "x", "packs": ["nope"]}, ["body", "packs"]),
        ({"title": "only a title"}, ["body", "body"]),
    ]:
        problem = assert_problem(
            await c.post("/v1/lint", json=payload, headers=keys["viewer"]), 422
        )
        assert problem["errors"][0]["loc"] == loc
    assert_problem(await c.post("/v1/lint", json={"text": "x"}), 401)
    assert await state(content) == before


async def test_templates_render_in_the_sandbox_and_are_linted(content: Harness) -> None:
    keys = await setup(content)
    c = content.client
    payload = {
        **BANNER,
        "type": "push",
        "title": "{{ name|title }}, your deal",
        "body": "{{ discount }}% off until {{ end }}",
        "variables": [
            {"name": "name", "max_length": 40, "example": "ann"},
            {"name": "discount", "type": "integer"},
            {"name": "end", "type": "date"},
        ],
    }
    r = await c.post("/v1/copies", json=payload, headers=keys["writer"])
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    # Linted as rendered with the examples: the placeholders are not "unresolved".
    assert r.json()["lint"]["ok"] is True
    r = await c.post(
        f"/v1/copies/{cid}/render",
        json={"variables": {"name": "bob", "discount": 30, "end": "2025-12-01"}},
        headers=keys["viewer"],
    )
    assert r.status_code == 200
    assert (r.json()["title"], r.json()["body"]) == ("Bob, your deal", "30% off until 2025-12-01")
    assert r.json()["lint"]["channels"] == ["push_apns", "push_fcm"]
    for variables, loc in [
        ({"name": "bob", "discount": "30", "end": "2025-12-01"}, ["body", "variables", "discount"]),
        ({"name": "bob", "end": "2025-12-01"}, ["body", "variables", "discount"]),
        ({"name": "bob", "discount": 1, "end": "2025-12-01", "x": 1}, ["body", "variables", "x"]),
    ]:
        r = await c.post(
            f"/v1/copies/{cid}/render", json={"variables": variables}, headers=keys["viewer"]
        )
        assert assert_problem(r, 422)["errors"][0]["loc"] == loc
    # A template that loops for ever is stopped at render time.
    looping = {
        **BANNER,
        "body": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}{{ n }}",
        "variables": [{"name": "n", "example": "x"}],
    }
    before = await state(content)
    problem = assert_problem(await c.post("/v1/copies", json=looping, headers=keys["writer"]), 422)
    assert "loops" in problem["detail"]
    assert await state(content) == before
    plain = (
        await c.post("/v1/copies", json={**BANNER, "body": "Hi {{ name }}"}, headers=keys["writer"])
    ).json()
    assert "unresolved_placeholder" in {i["code"] for i in plain["lint"]["issues"]}
    assert json.dumps(plain["lint"])  # JSON-serialisable as stored


async def test_idempotency_key_replays_a_create(content: Harness) -> None:
    keys = await setup(content)
    c = content.client
    h = {**keys["writer"], "Idempotency-Key": "copy-create-1"}
    first = await c.post("/v1/copies", json=BANNER, headers=h)
    before = await state(content)
    again = await c.post("/v1/copies", json=BANNER, headers=h)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    assert await state(content) == before


async def test_no_new_copy_for_an_archived_store(content: Harness) -> None:
    from shared.events.ingest import StoreUpdatedV1

    keys = await setup(content)
    archived = StoreUpdatedV1(
        **{**store_event("other").model_dump(exclude={"type", "event_id"}), "status": "archived"}
    )
    await apply_events(content.app, archived)
    before = await state(content)
    r = await content.client.post(
        "/v1/copies", json={**BANNER, "store_id": "other"}, headers=keys["writer"]
    )
    assert_problem(r, 409)
    assert await state(content) == before
