"""GET /v1/calendar, tenant calendar settings, and the Gantt chart (JSON and SVG structure)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from support import Harness, campaigns_counts, campaigns_tenant

from services.campaigns.planning.gantt import DAY, LABEL

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
async def keys(campaigns: Harness) -> dict[str, dict[str, str]]:
    return await campaigns_tenant(
        campaigns,
        "acme",
        ["cn-shop"],
        market="CN",
        timezone="Asia/Shanghai",
        currency="CNY",
        platform="taobao",
    )


async def test_calendar_endpoint(campaigns: Harness, keys: Any) -> None:
    r = await campaigns.client.get(
        "/v1/calendar?market=CN&start=2025-10-01&end=2025-11-30", headers=keys["viewer"]
    )
    assert r.status_code == 200, r.text
    body = r.json()
    d11 = next(f for f in body["festivals"] if f["key"] == "double_11")
    assert d11["date"] == "2025-11-11"
    pre_sale = {"name": "pre_sale", "start": "2025-10-21", "end": "2025-11-10", "kind": "selling"}
    assert pre_sale in d11["phases"]
    assert {"date": "2025-10-01", "name": "National Day", "provisional": False} in body["holidays"]
    assert "2025-10-11" in body["working_weekends"]  # make-up Saturday after Golden Week
    assert "2025-10-08" in body["off_days"] and "2025-10-11" not in body["off_days"]
    for q in (
        "market=CN&start=2025-11-30&end=2025-10-01",
        "market=china&start=2025-10-01&end=2025-11-30",
        "market=CN&start=2020-01-01&end=2025-01-01",
        "market=CN&start=nope&end=2025-01-01",
    ):
        r = await campaigns.client.get(f"/v1/calendar?{q}", headers=keys["viewer"])
        assert r.status_code == 422, q
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (
        await campaigns.client.get("/v1/calendar?market=CN&start=2025-01-01&end=2025-01-02")
    ).status_code == 401


async def test_tenant_overrides_festivals_and_working_calendar(
    campaigns: Harness, keys: Any
) -> None:
    settings = {
        "festivals": [
            {
                "key": "brand_day",
                "name": "Brand day",
                "markets": ["CN"],
                "rule": {"type": "fixed", "month": 8, "day": 8},
                "phases": [{"name": "main", "from": 0, "to": 0}],
            },
            {
                "key": "99",
                "name": "9.9",
                "markets": ["CN"],
                "rule": {"type": "fixed", "month": 9, "day": 9},
                "disabled": True,
            },
        ],
        "markets": {"CN": {"ignore_makeup_days": True}},
    }
    r = await campaigns.client.put("/v1/calendar/settings", json=settings, headers=keys["operator"])
    assert r.status_code == 200, r.text
    r = await campaigns.client.get(
        "/v1/calendar?market=CN&start=2025-08-01&end=2025-10-31", headers=keys["viewer"]
    )
    keys_found = {f["key"] for f in r.json()["festivals"]}
    assert "brand_day" in keys_found and "99" not in keys_found
    assert r.json()["working_weekends"] == [] and "2025-10-11" in r.json()["off_days"]
    before = await campaigns_counts(campaigns)
    bad = {
        "festivals": [
            {
                "key": "Bad",
                "name": "x",
                "markets": ["CN"],
                "rule": {"type": "fixed", "month": 13, "day": 1},
            }
        ]
    }
    r = await campaigns.client.put("/v1/calendar/settings", json=bad, headers=keys["operator"])
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"][:3] == ["body", "festivals", 0]
    assert await campaigns_counts(campaigns) == before
    r = await campaigns.client.get("/v1/calendar/settings", headers=keys["viewer"])
    assert r.json()["markets"]["CN"]["ignore_makeup_days"] is True


async def test_gantt_json_and_svg(campaigns: Harness, keys: Any) -> None:
    today = dt.date.today()
    body = {
        "name": "Now",
        "start": (today - dt.timedelta(days=10)).isoformat(),
        "end": (today + dt.timedelta(days=40)).isoformat(),
        "tasks": [
            {"id": "a", "name": "Plan", "owner_role": "operations", "duration": 3},
            {
                "id": "b",
                "name": "Design & <banners>",
                "owner_role": "designer",
                "duration": 5,
                "depends_on": ["a"],
            },
            {
                "id": "c",
                "name": "Copy",
                "owner_role": "content",
                "duration": 2,
                "depends_on": ["a"],
            },
            {
                "id": "m",
                "name": "Go live",
                "owner_role": "operations",
                "duration": 0,
                "depends_on": ["b", "c"],
            },
        ],
    }
    r = await campaigns.client.post(
        "/v1/stores/cn-shop/campaigns", json=body, headers=keys["operator"]
    )
    cid = r.json()["id"]
    g = (await campaigns.client.get(f"/v1/campaigns/{cid}/gantt", headers=keys["viewer"])).json()
    assert g["lanes"][0] == "operations"
    assert sorted(g["lanes"]) == ["content", "designer", "operations"]
    assert g["critical_path"] == ["a", "b", "m"] and g["milestones"] == ["m"]
    assert g["today"] == today.isoformat()
    r = await campaigns.client.get(f"/v1/campaigns/{cid}/gantt.svg", headers=keys["viewer"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(r.text)
    origin = dt.date.fromisoformat(root.attrib["data-origin"])
    assert origin.weekday() == 0
    tasks = {t["id"]: t for t in g["tasks"]}
    shapes = {e.attrib["data-task-id"]: e for e in root.iter() if "data-task-id" in e.attrib}
    assert set(shapes) == set(tasks)
    for tid, t in tasks.items():
        e = shapes[tid]
        start, due = dt.date.fromisoformat(t["start"]), dt.date.fromisoformat(t["due"])
        critical = "critical" in e.attrib["class"].split()
        assert critical == t["critical"], tid
        if t["kind"] == "milestone":
            assert e.tag == SVG + "polygon"
            cx = int(e.attrib["points"].split()[0].split(",")[0])
            assert cx == LABEL + (start - origin).days * DAY + DAY // 2
        else:
            assert e.tag == SVG + "rect"
            assert int(e.attrib["x"]) == LABEL + (start - origin).days * DAY
            assert int(e.attrib["width"]) == ((due - start).days + 1) * DAY
    lanes = [e.attrib["data-owner"] for e in root.iter(SVG + "g") if "data-owner" in e.attrib]
    assert lanes == g["lanes"]
    # Each lane holds its owner's tasks.
    for lane in root.iter(SVG + "g"):
        owner = lane.attrib.get("data-owner")
        ids = {e.attrib["data-task-id"] for e in lane.iter() if "data-task-id" in e.attrib}
        assert ids == {k for k, t in tasks.items() if t["owner_role"] == owner}
    today_line = [
        e
        for e in root.iter(SVG + "line")
        if "today" in e.attrib.get("class", "") and "data-date" in e.attrib
    ]
    assert len(today_line) == 1
    assert int(today_line[0].attrib["x1"]) == LABEL + (today - origin).days * DAY + DAY // 2
    weeks = [e for e in root.iter(SVG + "line") if "data-week" in e.attrib]
    assert len(weeks) >= 7
    shaded = {
        e.attrib["data-date"]
        for e in root.iter(SVG + "rect")
        if e.attrib.get("class") in ("off", "holiday") and "data-date" in e.attrib
    }
    assert set(g["off_days"]) <= shaded | {
        d for d in g["off_days"] if dt.date.fromisoformat(d) < origin
    }
    assert "Design &amp; &lt;banners&gt;" in r.text


async def test_gantt_shades_holidays(campaigns: Harness, keys: Any) -> None:
    r = await campaigns.client.post(
        "/v1/stores/cn-shop/campaigns",
        json={
            "name": "Golden Week",
            "start": "2027-09-20",
            "end": "2027-10-20",
            "tasks": [{"id": "t", "name": "T", "owner_role": "operations", "duration": 10}],
        },
        headers=keys["operator"],
    )
    cid = r.json()["id"]
    r = await campaigns.client.get(f"/v1/campaigns/{cid}/gantt.svg", headers=keys["viewer"])
    root = ET.fromstring(r.text)
    shaded = {
        e.attrib["data-date"]: e.attrib["class"]
        for e in root.iter(SVG + "rect")
        if e.attrib.get("class") in ("holiday", "off") and "data-date" in e.attrib
    }
    assert shaded["2027-10-01"] == "holiday"  # National Day, shaded and named
    assert shaded["2027-09-25"] == "off"  # an ordinary Saturday
    assert "2027-09-22" not in shaded  # a Wednesday
    # The 10-day task skips the weekend and the Golden Week (Oct 1-5 in 2027).
    g = (await campaigns.client.get(f"/v1/campaigns/{cid}/gantt", headers=keys["viewer"])).json()
    assert g["tasks"][0]["due"] == "2027-10-06"  # Sep 20-24, 27-30, then Oct 6
