"""GET /v1/stores/{id}/board: the picture an operator reads the findings in: the day's KPIs by
channel and free / paid against the baseline and the market, the market, the competitors beside
the store; the same board is in the report's context."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from diagnosis_helpers import (
    benchmark_events,
    competitor_events,
    metrics_events,
    store_registered,
    window,
)
from support import Harness, api_key_event, apply_events

from services.ingest.demo import generate_demo
from shared import grains

END = date(2026, 3, 20)
DEMO = generate_demo(end=END)
SHOP = next(s for s in DEMO.stores if s["id"] == "demo-taobao")
TOKEN = "diag-board-token-00000000000000000000"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DAY = END - timedelta(days=1)


async def load(h: Harness) -> list[dict[str, Any]]:
    rows = window(DEMO.rows["demo-taobao"], END - timedelta(days=40), END)
    events: list[Any] = [
        api_key_event(TOKEN, "acme", "viewer"),
        store_registered(SHOP, "acme", "s1"),
        *metrics_events("acme", "s1", rows),
        *benchmark_events("acme", next(b for b in DEMO.benchmarks if b["market"] == "CN")),
    ]
    for comp in DEMO.competitors["demo-taobao"]:
        events.extend(competitor_events("acme", "s1", comp))
    await apply_events(h.app, *events)
    return rows


async def test_the_board_shows_channels_free_paid_market_and_competitors(
    diagnosis: Harness,
) -> None:
    h = diagnosis
    rows = await load(h)
    r = await h.client.get("/v1/stores/s1/board", params={"date": DAY.isoformat()}, headers=AUTH)
    assert r.status_code == 200, r.text
    board = r.json()
    assert board["currency"] == "CNY" and board["date"] == DAY.isoformat()
    # the report's default: recent same weekdays outside festivals
    assert board["baseline_method"] == "comparable_weekdays"
    days = [date.fromisoformat(d) for d in board["baseline_days"]]
    assert days and all(d < DAY and d.weekday() == DAY.weekday() for d in days)
    scopes = {s["scope"]: s for s in board["scopes"]}
    expect = grains.derived(
        grains.aggregate(rows, metrics=["gmv", "visitors", "cvr"]), ["gmv", "visitors", "cvr"]
    )
    assert scopes["all"]["kpis"]["gmv"]["value"] == pytest.approx(expect[(DAY, "gmv")])
    assert scopes["all"]["kpis"]["cvr"]["value"] == pytest.approx(expect[(DAY, "cvr")])
    by_channel = grains.aggregate(rows, group_by=["channel"], metrics=["visitors"])
    channels = {k[2] for k in by_channel if k[0] == DAY}
    assert channels <= set(scopes) and len(channels) >= 3
    for ch in channels:
        assert scopes[ch]["kpis"]["visitors"]["value"] == pytest.approx(
            by_channel[(DAY, "visitors", ch)]
        )
        assert scopes[ch]["traffic_type"] in ("free", "paid")
    free, paid = (
        scopes["free"]["kpis"]["visitors"]["value"],
        scopes["paid"]["kpis"]["visitors"]["value"],
    )
    assert free + paid == pytest.approx(sum(v for (d, _, _), v in by_channel.items() if d == DAY))
    # the market posted cvr, ctr and aov: only those are compared with it
    assert board["market"]["covered"] == ["aov", "ctr", "cvr"]
    cvr = scopes["all"]["kpis"]["cvr"]
    assert cvr["market_change"] == board["market"]["kpis"]["cvr"]["change"]
    assert cvr["relative_change"] == pytest.approx(
        (1 + cvr["change"]) / (1 + cvr["market_change"]) - 1, abs=1e-5
    )
    assert scopes["all"]["kpis"]["visitors"]["market_change"] is None
    comps = {c["competitor_id"]: c for c in board["competitors"]}
    assert len(comps) == 2
    for c in comps.values():
        assert {"gmv", "visitors", "aov"} <= set(c["kpis"])
        assert c["kpis"]["gmv"]["change"] is not None
        assert c["store_gmv_vs_theirs"] == pytest.approx(
            scopes["all"]["kpis"]["gmv"]["value"] / c["kpis"]["gmv"]["value"], rel=1e-5
        )


async def test_the_report_carries_the_same_board(diagnosis: Harness) -> None:
    h = diagnosis
    await load(h)
    await apply_events(
        h.app, api_key_event("diag-board-operator-000000000000000", "acme", "operator")
    )
    op = {"Authorization": "Bearer diag-board-operator-000000000000000"}
    r = await h.client.post("/v1/stores/s1/diagnoses", json={"date": DAY.isoformat()}, headers=op)
    assert r.status_code == 200, r.text
    in_report = r.json()["context"]["board"]
    board = (
        await h.client.get("/v1/stores/s1/board", params={"date": DAY.isoformat()}, headers=AUTH)
    ).json()
    assert in_report == {k: v for k, v in board.items() if k != "store_id"}


async def test_bad_board_requests(diagnosis: Harness) -> None:
    h = diagnosis
    await load(h)
    r = await h.client.get("/v1/stores/s1/board", params={"date": "2999-01-01"}, headers=AUTH)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "date"]
    r = await h.client.get("/v1/stores/nope/board", headers=AUTH)
    assert r.status_code == 404
    r = await h.client.get("/v1/stores/s1/board", params={"date": "2020-01-01"}, headers=AUTH)
    assert r.status_code == 409
