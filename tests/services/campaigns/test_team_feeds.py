"""Calendar feeds (issue 17, point 4): task titles name their campaign; one feed per tenant
and one per owner role across stores, with rotatable, revocable tokens."""

from __future__ import annotations

from typing import Any

import pytest
from icalendar import Calendar
from support import Harness, campaigns_tenant


@pytest.fixture
async def keys(campaigns: Harness) -> dict[str, dict[str, str]]:
    # The same keys are issued again by the second call: the scoped one ends on us-shop.
    await campaigns_tenant(
        campaigns,
        "acme",
        ["cn-shop"],
        market="CN",
        timezone="Asia/Shanghai",
        currency="CNY",
        platform="taobao",
    )
    k = await campaigns_tenant(campaigns, "acme", ["us-shop", "us-other"])
    k["rival"] = (await campaigns_tenant(campaigns, "rival", ["rival-shop"]))["admin"]
    return k


def events(body: bytes) -> dict[str, Any]:
    return {str(e["UID"]): e for e in Calendar.from_ical(body).walk("VEVENT")}


async def plan(
    h: Harness, keys: Any, store: str, name: str, event: str, key: str = "operator"
) -> str:
    r = await h.client.post(
        f"/v1/stores/{store}/campaigns",
        json={"name": name, "event": event, "year": 2027},
        headers=keys[key],
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_task_titles_name_their_campaign(campaigns: Harness, keys: Any) -> None:
    c = campaigns.client
    await plan(campaigns, keys, "us-shop", "BFCM 2027", "black_friday")
    await plan(campaigns, keys, "us-shop", "Prime Day 2027", "prime_day")
    await plan(campaigns, keys, "us-shop", "July 4th 2027", "july_4th")
    token = (await c.post("/v1/stores/us-shop/calendar-token", headers=keys["operator"])).json()
    feed = events((await c.get(token["url"])).content)
    mains = sorted(str(e["SUMMARY"]) for u, e in feed.items() if u.endswith("-main_day@storeops"))
    assert mains == [
        "BFCM 2027: Main day [operations]",
        "July 4th 2027: Main sale starts [operations]",
        "Prime Day 2027: Main sale starts [operations]",
    ]
    assert len(set(mains)) == 3  # no more "[operations] Main day" three times


async def test_one_feed_per_tenant_and_per_owner_role_across_stores(
    campaigns: Harness, keys: Any
) -> None:
    c = campaigns.client
    bf = await plan(campaigns, keys, "us-shop", "BFCM 2027", "black_friday")
    other = await plan(campaigns, keys, "us-other", "BFCM Other", "black_friday")
    d11 = await plan(campaigns, keys, "cn-shop", "Double 11 2027", "double_11")
    await plan(campaigns, keys, "rival-shop", "Rival BF", "black_friday", key="rival")
    r = await c.post("/v1/calendar-token", headers=keys["operator"])
    assert r.status_code == 201, r.text
    team = r.json()
    assert team["owner_role"] is None and team["stores"] is None
    assert team["url"] == f"/v1/calendar.ics?token={team['token']}"
    r = await c.get(team["url"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    feed = events(r.content)
    assert {f"campaign-{x}@storeops" for x in (bf, other, d11)} <= set(feed)
    assert not any("Rival" in str(e["SUMMARY"]) for e in feed.values())  # another tenant's
    # Festivals of every market the stores are in, each once.
    assert "festival-double_11-2027-11-11-CN@storeops" in feed
    assert "festival-black_friday-2027-11-26-US@storeops" in feed
    main = feed[f"task-{other}-main_day@storeops"]
    assert str(main["SUMMARY"]) == "Us-Other · BFCM Other: Main day [operations]"
    # One owner role's feed: only that role's tasks, across stores, titled without the role.
    r = await c.post("/v1/calendar-token?owner_role=promotion", headers=keys["operator"])
    promo = r.json()
    assert promo["owner_role"] == "promotion"
    feed = events((await c.get(promo["url"])).content)
    tasks = [e for u, e in feed.items() if u.startswith("task-")]
    assert tasks and all("promotion" in str(e["CATEGORIES"].to_ical()) for e in tasks)
    assert {str(e["SUMMARY"]) for e in tasks} >= {
        "Us-Shop · BFCM 2027: Book promotion slots (banners, push, live hours)",
        "Cn-Shop · Double 11 2027: Book promotion slots (banners, push, live hours)",
    }
    # Rotation: a new token for the same feed retires the old one; the other feed keeps its.
    rotated = (
        await c.post("/v1/calendar-token?owner_role=promotion", headers=keys["operator"])
    ).json()
    assert (await c.get(promo["url"])).status_code == 401
    assert (await c.get(rotated["url"])).status_code == 200
    assert (await c.get(team["url"])).status_code == 200
    # Revocation, roles, bad tokens.
    assert (await c.delete("/v1/calendar-token", headers=keys["viewer"])).status_code == 403
    assert (await c.delete("/v1/calendar-token", headers=keys["operator"])).status_code == 204
    assert (await c.get(team["url"])).status_code == 401
    assert (await c.delete("/v1/calendar-token", headers=keys["operator"])).status_code == 404
    for url in ("/v1/calendar.ics", "/v1/calendar.ics?token=cal_guess"):
        r = await c.get(url)
        assert r.status_code == 401 and r.headers["content-type"].startswith(
            "application/problem+json"
        )
    # A store feed's token is no team feed's, and the other way round.
    store_token = (
        await c.post("/v1/stores/us-shop/calendar-token", headers=keys["operator"])
    ).json()
    assert (await c.get(f"/v1/calendar.ics?token={store_token['token']}")).status_code == 401
    assert (
        await c.get(f"/v1/stores/us-shop/calendar.ics?token={rotated['token']}")
    ).status_code == 401


async def test_a_scoped_keys_team_feed_shows_only_its_stores(campaigns: Harness, keys: Any) -> None:
    c = campaigns.client
    mine = await plan(campaigns, keys, "us-shop", "BFCM 2027", "black_friday")
    theirs = await plan(campaigns, keys, "us-other", "BFCM Other", "black_friday")
    r = await c.post("/v1/calendar-token", headers=keys["scoped"])
    assert r.status_code == 201 and r.json()["stores"] == ["us-shop"]
    feed = events((await c.get(r.json()["url"])).content)
    assert f"campaign-{mine}@storeops" in feed and f"campaign-{theirs}@storeops" not in feed
