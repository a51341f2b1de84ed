"""Promotion slots: bookings with a capacity per day, 409 with the nearest alternatives, the
booking window and the maximum share; allocation of a contested period by the rules, with
its properties and the explanation each store can ask for."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from support import Harness, campaigns_counts, campaigns_tenant

from services.campaigns.planning.allocation import Request, Rules, allocate

TODAY = dt.date.today()


def day(n: int) -> str:
    return (TODAY + dt.timedelta(days=n)).isoformat()


@pytest.fixture
async def keys(campaigns: Harness) -> dict[str, dict[str, str]]:
    k = await campaigns_tenant(campaigns, "acme", ["s1", "s2", "s3", "s4"])
    k["rival"] = (await campaigns_tenant(campaigns, "rival", ["r1"]))["admin"]
    return k


async def make_slot(h: Harness, keys: Any, name: str, capacity: int, **rules: Any) -> str:
    r = await h.client.post(
        "/v1/slots",
        json={"name": name, "capacity": capacity, "rules": rules},
        headers=keys["operator"],
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_full_slot_answers_409_with_alternatives(campaigns: Harness, keys: Any) -> None:
    c = campaigns.client
    banner = await make_slot(campaigns, keys, "Home banner", 2)
    push = await make_slot(campaigns, keys, "Push", 5)
    for store in ("s1", "s2"):
        r = await c.post(
            f"/v1/slots/{banner}/bookings",
            json={"store_id": store, "day": day(10), "tier": "gold"},
            headers=keys["operator"],
        )
        assert r.status_code == 201, r.text
    before = await campaigns_counts(campaigns)
    r = await c.post(
        f"/v1/slots/{banner}/bookings",
        json={"store_id": "s3", "day": day(10), "tier": "gold"},
        headers=keys["operator"],
    )
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    alts = r.json()["alternatives"]
    same_slot = [a for a in alts if a["slot_id"] == banner]
    assert [a["day"] for a in same_slot] == [day(9), day(11), day(8)]  # nearest first
    assert {"slot_id": push, "slot": "Push", "day": day(10), "free": 5} in alts
    assert await campaigns_counts(campaigns) == before


async def test_window_tier_and_share_rules(campaigns: Harness, keys: Any) -> None:
    c = campaigns.client
    slot = await make_slot(
        campaigns, keys, "Live hour", 4, max_share=0.5, window_open_days=30, window_close_days=2
    )
    before = await campaigns_counts(campaigns)
    for body in (
        {"store_id": "s1", "day": day(1), "tier": "gold"},  # closes 2 days ahead
        {"store_id": "s1", "day": day(31), "tier": "gold"},  # opens 30 days ahead
        {"store_id": "s1", "day": day(5), "tier": "diamond"},  # not a tier of the slot
    ):
        r = await c.post(f"/v1/slots/{slot}/bookings", json=body, headers=keys["operator"])
        assert r.status_code == 422, body
        assert r.json()["errors"][0]["loc"][0] == "body"
    r = await c.post(
        f"/v1/slots/{slot}/bookings",
        json={"store_id": "r1", "day": day(5), "tier": "gold"},
        headers=keys["operator"],
    )
    assert r.status_code == 404  # another tenant's store
    r = await c.post(
        "/v1/slots/nope/bookings",
        json={"store_id": "s1", "day": day(5), "tier": "gold"},
        headers=keys["operator"],
    )
    assert r.status_code == 404
    assert await campaigns_counts(campaigns) == before
    for _ in range(2):
        r = await c.post(
            f"/v1/slots/{slot}/bookings",
            json={"store_id": "s1", "day": day(5), "tier": "gold"},
            headers=keys["operator"],
        )
        assert r.status_code == 201
    r = await c.post(
        f"/v1/slots/{slot}/bookings",
        json={"store_id": "s1", "day": day(5), "tier": "gold"},
        headers=keys["operator"],
    )
    assert r.status_code == 409 and "maximum share" in r.json()["detail"]
    r = await c.post(
        f"/v1/slots/{slot}/bookings",
        json={"store_id": "s2", "day": day(5), "tier": "gold"},
        headers=keys["operator"],
    )
    assert r.status_code == 201
    r = await c.post(
        f"/v1/slots/{slot}/bookings",
        json={"store_id": "s1", "day": day(5), "tier": "gold"},
        headers=keys["rival"],
    )
    assert r.status_code == 404  # another tenant's slot
    r = await c.post(
        "/v1/slots", json={"name": "Live hour", "capacity": 1}, headers=keys["operator"]
    )
    assert r.status_code == 409


async def test_allocation_run_and_explanations(campaigns: Harness, keys: Any) -> None:
    c = campaigns.client
    slot = await make_slot(
        campaigns, keys, "Mega banner", 3, max_share=0.34, tier_order=["platinum", "gold", "silver"]
    )
    days = [day(20), day(21)]
    body = {
        "requests": [
            {"store_id": "s1", "tier": "silver", "priority": 9, "days": days, "units": 3},
            {"store_id": "s2", "tier": "gold", "priority": 1, "days": days, "units": 3},
            {"store_id": "s3", "tier": "platinum", "priority": 1, "days": [day(20)], "units": 1},
            {"store_id": "s4", "tier": "gold", "priority": 5, "days": days, "units": 3},
        ]
    }
    r = await c.post(f"/v1/slots/{slot}/allocations", json=body, headers=keys["operator"])
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["rule"] == "tier-ordered round-robin with a share cap"
    got = {(o["store_id"], o["day"]): o["granted"] for o in out["outcomes"]}
    # Day 20: platinum s3 first, then gold s4 (higher priority) and s2; silver s1 gets nothing.
    assert got[("s3", day(20))] == 1 and got[("s4", day(20))] == 1 and got[("s2", day(20))] == 1
    assert got[("s1", day(20))] == 0
    # Day 21: max share 0.34 of 3 = 1 unit per store: gold s4, gold s2, then silver s1.
    assert got[("s4", day(21))] == 1 and got[("s2", day(21))] == 1 and got[("s1", day(21))] == 1
    r = await c.get(
        f"/v1/slots/{slot}/allocations/{out['id']}/explain?store_id=s1", headers=keys["viewer"]
    )
    why = r.json()
    assert why["granted"] == 1 and why["wanted"] == 6
    day20 = next(o for o in why["outcomes"] if o["day"] == day(20))
    assert "higher tiers" in day20["reasons"][0] and "platinum" in day20["reasons"][0]
    # The bookings count against the capacity: the slot is now full on day 20.
    r = await c.post(
        f"/v1/slots/{slot}/bookings",
        json={"store_id": "s1", "day": day(20), "tier": "gold"},
        headers=keys["operator"],
    )
    assert r.status_code == 409
    r = await c.get(
        f"/v1/slots/{slot}/allocations/{out['id']}/explain?store_id=s1", headers=keys["scoped"]
    )
    assert r.status_code == 200  # the scoped key's store is s1
    r = await c.get(
        f"/v1/slots/{slot}/allocations/{out['id']}/explain?store_id=s2", headers=keys["scoped"]
    )
    assert r.status_code == 404


def _random_requests(rnd: random.Random, days: list[dt.date]) -> list[Request]:
    tiers = ["platinum", "gold", "silver", "bronze"]
    return [
        Request(
            f"store{i}",
            rnd.choice(tiers),
            rnd.randint(0, 5),
            tuple(rnd.sample(days, rnd.randint(1, len(days)))),
            rnd.randint(1, 4),
        )
        for i in range(rnd.randint(2, 14))
    ]


@pytest.mark.parametrize("seed", range(25))
def test_allocation_properties(seed: int) -> None:
    rnd = random.Random(seed)
    today = dt.date(2027, 1, 1)
    days = [today + dt.timedelta(days=d) for d in range(3, 8)]
    rules = Rules(
        capacity=rnd.randint(1, 8),
        tier_order=("platinum", "gold", "silver"),
        max_share=rnd.choice([0.25, 0.5, 1.0]),
        window_open_days=6,
        window_close_days=2,
    )
    booked = {d: rnd.randint(0, min(2, rules.capacity)) for d in days}
    requests = _random_requests(rnd, days)
    out = allocate(requests, rules, today=today, booked=booked)
    shuffled = list(requests)
    rnd.shuffle(shuffled)
    again = allocate(shuffled, rules, today=today, booked=booked)
    assert [(o.store_id, o.day, o.granted) for o in out] == [
        (o.store_id, o.day, o.granted) for o in again
    ]  # the same input in any order gives the same allocation
    tier = {r.store_id: rules.tier_rank(r.tier) for r in requests}
    for d in days:
        todays = [o for o in out if o.day == d]
        granted = sum(o.granted for o in todays)
        if not rules.in_window(d, today):
            assert granted == 0
            continue
        assert granted + booked[d] <= rules.capacity  # never over capacity
        assert all(o.granted <= rules.max_per_store() for o in todays)  # max share
        # Tier order: a store below gets a unit only if every store above was served in full
        # or stopped by its share.
        for low in todays:
            if low.granted == 0:
                continue
            for high in todays:
                if tier[high.store_id] < tier[low.store_id]:
                    assert high.granted == high.wanted or high.granted == rules.max_per_store()
        for o in todays:
            assert o.reasons, o  # every outcome is explained


async def test_cancelling_a_booking_gives_the_unit_back(campaigns: Harness, keys: Any) -> None:
    c = campaigns.client
    slot = await make_slot(campaigns, keys, "Push", 1)
    r = await c.post(
        f"/v1/slots/{slot}/bookings",
        json={"store_id": "s1", "day": day(4), "tier": "gold"},
        headers=keys["operator"],
    )
    booking = r.json()["id"]
    r = await c.post(
        f"/v1/slots/{slot}/bookings",
        json={"store_id": "s2", "day": day(4), "tier": "gold"},
        headers=keys["operator"],
    )
    assert r.status_code == 409
    r = await c.get(
        f"/v1/slots/{slot}/bookings?start={day(0)}&end={day(30)}", headers=keys["viewer"]
    )
    assert [b["id"] for b in r.json()] == [booking]
    r = await c.delete(f"/v1/slots/{slot}/bookings/{booking}", headers=keys["rival"])
    assert r.status_code == 404
    r = await c.delete(f"/v1/slots/{slot}/bookings/{booking}", headers=keys["operator"])
    assert r.status_code == 204
    r = await c.post(
        f"/v1/slots/{slot}/bookings",
        json={"store_id": "s2", "day": day(4), "tier": "gold"},
        headers=keys["operator"],
    )
    assert r.status_code == 201
    r = await c.delete(f"/v1/slots/{slot}/bookings/{booking}", headers=keys["operator"])
    assert r.status_code == 404
