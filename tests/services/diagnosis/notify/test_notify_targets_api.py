"""Notification targets over HTTP: create (secret shown once), read, change, delete; roles,
tenants, store scopes; problem+json naming the field at fault."""

from __future__ import annotations

from typing import Any

import pytest

from services.diagnosis.notify.models import NotificationTarget

BASE = "/v1/notification-targets"


async def test_standard_target_secret_is_generated_shown_once_and_rotated(notify: Any) -> None:
    admin = notify.keys["acme:admin"]
    r = await notify.client.post(
        BASE,
        json={
            "owner": "designer",
            "format": "standard",
            "url": notify.receiver.url(),
            "timezone": "Asia/Shanghai",
            "digest_hour": 8,
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert r.headers["location"] == f"{BASE}/{out['id']}"
    assert out["secret"].startswith("whsec_") and out["has_secret"] is True
    assert out["min_severity"] == "high" and out["alert_budget"] == 10
    assert out["timezone"] == "Asia/Shanghai" and out["digest_hour"] == 8
    # Never again: not in reads, not in lists.
    r = await notify.client.get(f"{BASE}/{out['id']}", headers=admin)
    assert r.status_code == 200 and r.json()["secret"] is None and r.json()["has_secret"]
    r = await notify.client.get(BASE, headers=notify.keys["acme:operator"])
    assert [t["id"] for t in r.json()["items"]] == [out["id"]]
    assert all(t["secret"] is None for t in r.json()["items"])
    assert out["secret"] not in r.text
    r = await notify.client.patch(
        f"{BASE}/{out['id']}", json={"rotate_secret": True}, headers=admin
    )
    assert r.status_code == 200
    rotated = r.json()["secret"]
    assert rotated.startswith("whsec_") and rotated != out["secret"]


async def test_webhook_urls_are_masked_in_answers(notify: Any) -> None:
    out = await notify.target(
        notify.keys["acme:admin"],
        format="slack",
        url="https://hooks.slack.com/services/T000/B000/XXXXSECRET",
    )
    assert out["url"] == "https://hooks.slack.com/services/…"
    assert out["has_secret"] is False and out["secret"] is None


async def test_patch_delete_and_lists_by_owner_with_cursor(notify: Any) -> None:
    admin = notify.keys["acme:admin"]
    ids = []
    for owner in ("designer", "designer", "logistics"):
        ids.append((await notify.target(admin, owner=owner))["id"])
    r = await notify.client.get(f"{BASE}?owner=designer&limit=1", headers=admin)
    page1 = r.json()
    assert len(page1["items"]) == 1 and page1["next_cursor"]
    r = await notify.client.get(
        f"{BASE}?owner=designer&limit=1&cursor={page1['next_cursor']}", headers=admin
    )
    page2 = r.json()
    assert page2["next_cursor"] is None
    assert {page1["items"][0]["id"], page2["items"][0]["id"]} == set(ids[:2])

    r = await notify.client.patch(
        f"{BASE}/{ids[0]}",
        json={"min_severity": "medium", "alert_budget": 3, "store_ids": ["shop-1"]},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["min_severity"], r.json()["alert_budget"]) == ("medium", 3)
    assert r.json()["store_ids"] == ["shop-1"]
    r = await notify.client.patch(f"{BASE}/{ids[0]}", json={"store_ids": None}, headers=admin)
    assert r.json()["store_ids"] is None

    r = await notify.client.delete(f"{BASE}/{ids[0]}", headers=admin)
    assert r.status_code == 204
    assert (await notify.client.get(f"{BASE}/{ids[0]}", headers=admin)).status_code == 404
    assert await notify.count(NotificationTarget) == 2


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"url": "http://hooks.example.com/x"}, ["body", "url"]),
        ({"url": "https://10.1.2.3/x"}, ["body", "url"]),
        ({"timezone": "Mars/Olympus"}, ["body", "timezone"]),
        ({"owner": "ceo"}, ["body", "owner"]),
        ({"format": "teams"}, ["body", "format"]),
        ({"digest_hour": 24}, ["body", "digest_hour"]),
        ({"alert_budget": -1}, ["body", "alert_budget"]),
        ({"min_severity": "urgent"}, ["body", "min_severity"]),
        ({"format": "slack", "secret": "abc"}, ["body", "secret"]),
        ({"format": "dingtalk", "secret": "not-a-sec"}, ["body", "secret"]),
        ({"format": "standard", "secret": "whsec_!!"}, ["body", "secret"]),
        ({"store_ids": []}, ["body", "store_ids"]),
        ({"locale": "fr"}, ["body", "locale"]),
        ({"colour": "red"}, ["body", "colour"]),
    ],
)
async def test_bad_targets_get_problem_json_naming_the_field(
    notify: Any, body: dict[str, Any], loc: list[str]
) -> None:
    values = {"owner": "designer", "format": "standard", "url": "https://example.com/hook"}
    values.update(body)
    r = await notify.client.post(BASE, json=values, headers=notify.keys["acme:admin"])
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert loc in [e["loc"] for e in r.json()["errors"]]
    assert await notify.count(NotificationTarget) == 0


async def test_format_cannot_change_and_nulls_are_refused(notify: Any) -> None:
    admin = notify.keys["acme:admin"]
    t = await notify.target(admin)
    r = await notify.client.patch(f"{BASE}/{t['id']}", json={"format": "slack"}, headers=admin)
    assert r.status_code == 422 and ["body", "format"] in [e["loc"] for e in r.json()["errors"]]
    r = await notify.client.patch(f"{BASE}/{t['id']}", json={"timezone": None}, headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "timezone"]
    r = await notify.client.patch(f"{BASE}/{t['id']}", json={"secret": None}, headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "secret"]


async def test_roles(notify: Any) -> None:
    t = await notify.target(notify.keys["acme:admin"])
    operator, viewer = notify.keys["acme:operator"], notify.keys["acme:viewer"]
    body = {"owner": "designer", "format": "slack", "url": "https://hooks.slack.com/services/x"}
    assert (await notify.client.post(BASE, json=body, headers=operator)).status_code == 403
    assert (await notify.client.get(BASE, headers=viewer)).status_code == 403
    assert (await notify.client.get(BASE)).status_code == 401
    assert (await notify.client.get(f"{BASE}/{t['id']}", headers=operator)).status_code == 200
    r = await notify.client.patch(f"{BASE}/{t['id']}", json={"enabled": False}, headers=operator)
    assert r.status_code == 403
    assert (await notify.client.delete(f"{BASE}/{t['id']}", headers=operator)).status_code == 403


async def test_another_tenants_target_is_not_found(notify: Any) -> None:
    t = await notify.target(notify.keys["acme:admin"])
    other = notify.keys["globex:admin"]
    for method, path in (
        ("GET", f"{BASE}/{t['id']}"),
        ("PATCH", f"{BASE}/{t['id']}"),
        ("DELETE", f"{BASE}/{t['id']}"),
        ("GET", f"{BASE}/{t['id']}/deliveries"),
        ("POST", f"{BASE}/{t['id']}/test"),
    ):
        kwargs: dict[str, Any] = {"json": {"enabled": False}} if method == "PATCH" else {}
        r = await notify.client.request(method, path, headers=other, **kwargs)
        assert r.status_code == 404, (method, path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (await notify.client.get(BASE, headers=other)).json()["items"] == []


async def test_store_scoped_keys_manage_only_targets_within_their_stores(notify: Any) -> None:
    scoped = await notify.key("acme", "admin", store_ids=["shop-1"])
    body = {"owner": "designer", "format": "slack", "url": "https://hooks.slack.com/services/x"}
    r = await notify.client.post(BASE, json=body, headers=scoped)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "store_ids"]
    r = await notify.client.post(
        BASE, json={**body, "store_ids": ["shop-1", "shop-2"]}, headers=scoped
    )
    assert r.status_code == 422 and "shop-2" in r.json()["errors"][0]["msg"]
    mine = await notify.target(scoped, store_ids=["shop-1"])
    unscoped = await notify.target(notify.keys["acme:admin"])
    r = await notify.client.get(BASE, headers=scoped)
    assert [t["id"] for t in r.json()["items"]] == [mine["id"]]
    assert (await notify.client.get(f"{BASE}/{unscoped['id']}", headers=scoped)).status_code == 404


async def test_bad_cursor_is_a_422_on_the_query(notify: Any) -> None:
    r = await notify.client.get(f"{BASE}?cursor=nonsense", headers=notify.keys["acme:admin"])
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "cursor"]
