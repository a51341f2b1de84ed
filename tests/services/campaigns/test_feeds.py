"""The store's iCalendar feed: RFC 5545 parsed back with `icalendar`, stable UIDs, SEQUENCE
raised on change, a secret token that can be rotated and revoked."""

from __future__ import annotations

from typing import Any

import pytest
from icalendar import Calendar
from support import Harness, campaigns_counts, campaigns_tenant


@pytest.fixture
async def keys(campaigns: Harness) -> dict[str, dict[str, str]]:
    return await campaigns_tenant(campaigns, "acme", ["us-shop", "us-other"])


def events(body: bytes) -> dict[str, Any]:
    cal = Calendar.from_ical(body)
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


async def test_feed_contents_uids_and_sequence(campaigns: Harness, keys: Any) -> None:
    c = campaigns.client
    r = await c.post(
        "/v1/stores/us-shop/campaigns",
        json={"name": "BFCM", "event": "black_friday", "year": 2027},
        headers=keys["operator"],
    )
    cid = r.json()["id"]
    n_tasks = len(r.json()["tasks"])
    r = await c.post("/v1/stores/us-shop/calendar-token", headers=keys["operator"])
    assert r.status_code == 201
    token = r.json()["token"]
    assert r.json()["url"].endswith(f"calendar.ics?token={token}")
    r = await c.get(f"/v1/stores/us-shop/calendar.ics?token={token}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    first = events(r.content)
    assert f"campaign-{cid}@storeops" in first
    tasks = {u for u in first if u.startswith(f"task-{cid}-")}
    assert len(tasks) == n_tasks
    bf = first["festival-black_friday-2027-11-26-US@storeops"]
    assert str(bf["SUMMARY"]) == "Black Friday"
    main = first[f"task-{cid}-main_day@storeops"]
    assert main.decoded("DTSTART").isoformat() == "2027-11-26"
    assert "milestone" in str(main["CATEGORIES"].to_ical())
    assert all(int(e["SEQUENCE"]) == 0 for e in first.values())
    # A move raises SEQUENCE of what changed, and only of that; UIDs stay.
    r = await c.patch(
        f"/v1/campaigns/{cid}/tasks/slot_booking",
        json={"start": "2027-11-04"},
        headers=keys["operator"],
    )
    assert r.json()["moved"] == ["slot_booking"]
    second = events((await c.get(f"/v1/stores/us-shop/calendar.ics?token={token}")).content)
    assert set(second) == set(first)
    bumped = {u for u in second if int(second[u]["SEQUENCE"]) > int(first[u]["SEQUENCE"])}
    assert bumped == {f"task-{cid}-slot_booking@storeops", f"campaign-{cid}@storeops"}
    assert second[f"task-{cid}-slot_booking@storeops"].decoded("DTSTART").isoformat() == (
        "2027-11-04"
    )


async def test_token_rotation_revocation_and_bad_tokens(campaigns: Harness, keys: Any) -> None:
    c = campaigns.client
    old = (await c.post("/v1/stores/us-shop/calendar-token", headers=keys["operator"])).json()
    new = (await c.post("/v1/stores/us-shop/calendar-token", headers=keys["operator"])).json()
    assert old["token"] != new["token"]
    before = await campaigns_counts(campaigns)
    for url in (
        f"/v1/stores/us-shop/calendar.ics?token={old['token']}",  # rotated away
        "/v1/stores/us-shop/calendar.ics?token=cal_guess",
        "/v1/stores/us-shop/calendar.ics",
        f"/v1/stores/us-other/calendar.ics?token={new['token']}",  # another store's token
    ):
        r = await c.get(url)
        assert r.status_code == 401, url
        assert r.headers["content-type"].startswith("application/problem+json")
    assert await campaigns_counts(campaigns) == before
    assert (await c.get(f"/v1/stores/us-shop/calendar.ics?token={new['token']}")).status_code == 200
    r = await c.delete("/v1/stores/us-shop/calendar-token", headers=keys["viewer"])
    assert r.status_code == 403
    r = await c.delete("/v1/stores/us-shop/calendar-token", headers=keys["operator"])
    assert r.status_code == 204
    r = await c.get(f"/v1/stores/us-shop/calendar.ics?token={new['token']}")
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    r = await c.delete("/v1/stores/us-shop/calendar-token", headers=keys["operator"])
    assert r.status_code == 404
    r = await c.post("/v1/stores/us-other/calendar-token", headers=keys["scoped"])
    assert r.status_code == 404
