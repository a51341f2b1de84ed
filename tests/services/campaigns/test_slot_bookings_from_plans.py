"""Slots and plans (issue 17, point 5): a booking made from the plan's "Book promotion slots"
task and linked to it; a booking without a tier refused (stores carry no registered tier);
explanations told to the store that asked."""

from __future__ import annotations

from typing import Any

import pytest
from support import Harness, campaigns_counts, campaigns_tenant

WIDE = {"window_open_days": 730, "window_close_days": 1}


@pytest.fixture
async def keys(campaigns: Harness) -> dict[str, dict[str, str]]:
    return await campaigns_tenant(campaigns, "acme", ["us-shop", "us-other"])


async def setup(h: Harness, keys: Any) -> tuple[str, dict[str, Any]]:
    c = h.client
    r = await c.post(
        "/v1/slots",
        json={"name": "Home banner", "capacity": 2, "rules": WIDE},
        headers=keys["operator"],
    )
    assert r.status_code == 201, r.text
    r = await c.post(
        "/v1/stores/us-shop/campaigns",
        json={"name": "BFCM 2027", "event": "black_friday", "year": 2027},
        headers=keys["operator"],
    )
    assert r.status_code == 201, r.text
    return (await c.get("/v1/slots", headers=keys["viewer"])).json()[0]["id"], r.json()


async def test_a_booking_made_from_the_plans_slot_task_is_linked_to_it(
    campaigns: Harness, keys: Any
) -> None:
    c = campaigns.client
    slot, plan = await setup(campaigns, keys)
    task = next(t for t in plan["tasks"] if t["id"] == "slot_booking")
    assert task["name"].startswith("Book promotion slots")
    url = f"/v1/campaigns/{plan['id']}/tasks/slot_booking/bookings"
    r = await c.post(
        url, json={"slot_id": slot, "day": "2027-11-26", "tier": "gold"}, headers=keys["operator"]
    )
    assert r.status_code == 201, r.text
    b = r.json()
    assert (b["store_id"], b["campaign_id"], b["task_id"]) == (
        "us-shop",
        plan["id"],
        "slot_booking",
    )
    listed = (await c.get(url, headers=keys["viewer"])).json()
    assert [x["id"] for x in listed] == [b["id"]]
    on_slot = (
        await c.get(
            f"/v1/slots/{slot}/bookings?start=2027-11-01&end=2027-11-30", headers=keys["viewer"]
        )
    ).json()
    assert on_slot[0]["task_id"] == "slot_booking"
    # The same link through the slot's endpoint.
    r = await c.post(
        f"/v1/slots/{slot}/bookings",
        json={
            "store_id": "us-shop",
            "day": "2027-11-25",
            "tier": "gold",
            "campaign_id": plan["id"],
            "task_id": "slot_booking",
        },
        headers=keys["operator"],
    )
    assert r.status_code == 201 and r.json()["campaign_id"] == plan["id"]
    before = await campaigns_counts(campaigns)
    for body, status in (
        # another store's plan
        (
            {
                "store_id": "us-other",
                "day": "2027-11-26",
                "tier": "gold",
                "campaign_id": plan["id"],
                "task_id": "slot_booking",
            },
            422,
        ),
        # a day outside the campaign
        (
            {
                "store_id": "us-shop",
                "day": "2027-03-01",
                "tier": "gold",
                "campaign_id": plan["id"],
                "task_id": "slot_booking",
            },
            422,
        ),
        # no such task, no such campaign, half a link
        (
            {
                "store_id": "us-shop",
                "day": "2027-11-26",
                "tier": "gold",
                "campaign_id": plan["id"],
                "task_id": "nope",
            },
            404,
        ),
        (
            {
                "store_id": "us-shop",
                "day": "2027-11-26",
                "tier": "gold",
                "campaign_id": "nope",
                "task_id": "slot_booking",
            },
            404,
        ),
        ({"store_id": "us-shop", "day": "2027-11-26", "tier": "gold", "task_id": "x"}, 422),
    ):
        r = await c.post(f"/v1/slots/{slot}/bookings", json=body, headers=keys["operator"])
        assert r.status_code == status, (body, r.text)
    assert await campaigns_counts(campaigns) == before
    r = await c.post(
        f"/v1/campaigns/{plan['id']}/tasks/nope/bookings",
        json={"slot_id": slot, "day": "2027-11-26", "tier": "gold"},
        headers=keys["operator"],
    )
    assert r.status_code == 404


async def test_a_booking_without_a_tier_is_refused_not_made_silver(
    campaigns: Harness, keys: Any
) -> None:
    c = campaigns.client
    slot, plan = await setup(campaigns, keys)
    before = await campaigns_counts(campaigns)
    for url, body in (
        (f"/v1/slots/{slot}/bookings", {"store_id": "us-shop", "day": "2027-11-26"}),
        (
            f"/v1/campaigns/{plan['id']}/tasks/slot_booking/bookings",
            {"slot_id": slot, "day": "2027-11-26"},
        ),
    ):
        r = await c.post(url, json=body, headers=keys["operator"])
        assert r.status_code == 422, r.text
        problem = r.json()
        assert problem["errors"][0]["loc"] == ["body", "tier"]
        assert "platinum, gold, silver" in problem["detail"] and "us-shop" in problem["detail"]
    assert await campaigns_counts(campaigns) == before


async def test_explanations_are_told_to_the_store_that_asked(campaigns: Harness, keys: Any) -> None:
    c = campaigns.client
    slot, _ = await setup(campaigns, keys)
    r = await c.post(
        f"/v1/slots/{slot}/allocations",
        json={
            "requests": [
                {"store_id": "us-other", "tier": "platinum", "days": ["2027-11-26"], "units": 2},
                {"store_id": "us-shop", "tier": "gold", "days": ["2027-11-26"], "units": 1},
            ]
        },
        headers=keys["operator"],
    )
    assert r.status_code == 201, r.text
    run = r.json()["id"]
    why = (
        await c.get(
            f"/v1/slots/{slot}/allocations/{run}/explain?store_id=us-shop", headers=keys["viewer"]
        )
    ).json()
    text = why["outcomes"][0]["explanation"]
    assert text.startswith("You asked for 1 unit of 'Home banner' on 2027-11-26 and got 0")
    assert "higher tiers (platinum)" in text and "your tier gold" in text
    assert "us-other" not in text and "us-other" not in why["summary"]  # no other store named
    assert why["summary"].startswith("Store 'us-shop' (tier gold) asked for 1 units")
    other = (
        await c.get(
            f"/v1/slots/{slot}/allocations/{run}/explain?store_id=us-other", headers=keys["viewer"]
        )
    ).json()
    assert (
        "and got 2: all of them (your tier platinum ranks 1 of 3"
        in other["outcomes"][0]["explanation"]
    )
