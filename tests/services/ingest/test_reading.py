"""Reading series: group_by, derived metrics as ratios of sums, levels of detail never added
together, pagination, CSV export, and cross-store rollups in the reporting currency."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from sqlalchemy import select
from support import Harness, store_body

from shared.events.ingest import FxRatesIngestedV1
from shared.outbox import OutboxMessage

D1, D2 = "2026-10-01", "2026-10-02"


def row(day: str, metric: str, value: float, **dims: str) -> dict[str, Any]:
    return {"date": day, "metric": metric, "value": value, "dimensions": dims}


@pytest.fixture
async def env(ingest: Harness) -> tuple[Harness, dict[str, dict[str, str]]]:
    keys = await ingest.tenant_with_keys("acme", ["acme-us"])
    r = await ingest.client.post(
        "/v1/stores",
        json=store_body(
            "acme-cn", platform="taobao", timezone="Asia/Shanghai", currency="CNY", market="CN"
        ),
        headers=keys["admin"],
    )
    assert r.status_code == 201
    rows = [
        # channel x device leaves for D1 and D2
        row(D1, "visitors", 1000, channel="search", device="mobile"),
        row(D1, "visitors", 500, channel="search", device="desktop"),
        row(D1, "visitors", 100, channel="social", device="mobile"),
        row(D1, "buyers", 10, channel="search", device="mobile"),
        row(D1, "buyers", 20, channel="search", device="desktop"),
        row(D1, "buyers", 1, channel="social", device="mobile"),
        row(D1, "gmv", 1000.0, channel="search", device="mobile"),
        row(D1, "gmv", 2000.0, channel="search", device="desktop"),
        row(D1, "gmv", 50.0, channel="social", device="mobile"),
        row(D2, "visitors", 800, channel="search", device="mobile"),
        row(D2, "buyers", 8, channel="search", device="mobile"),
        row(D2, "gmv", 400.0, channel="search", device="mobile"),
        # a store total sent beside the breakdown on D2 (must not be added to it)
        row(
            D2,
            "visitors",
            800,
        ),
        row(D1, "dsr_service", 4.8),
    ]
    r = await ingest.client.post(
        "/v1/stores/acme-us/metrics", json={"rows": rows}, headers=keys["operator"]
    )
    assert r.status_code == 202, r.text
    r = await ingest.client.post(
        "/v1/stores/acme-cn/metrics",
        json={
            "rows": [
                row(D1, "gmv", 7000.0, channel="search"),
                row(D1, "buyers", 70, channel="search"),
                row(D1, "visitors", 3500, channel="search"),
            ]
        },
        headers=keys["operator"],
    )
    assert r.status_code == 202, r.text
    return ingest, keys


async def get(h: Harness, keys: Any, url: str, **params: Any) -> Any:
    r = await h.client.get(url, params=params, headers=keys["viewer"])
    assert r.status_code == 200, r.text
    return r.json()


async def test_group_by_and_ratio_of_sums(env: Any) -> None:
    h, keys = env
    body = await get(
        h,
        keys,
        "/v1/stores/acme-us/metrics",
        start=D1,
        end=D1,
        metric="visitors,buyers,cvr,aov",
        group_by="channel",
    )
    by_channel = {i["dimensions"]["channel"]: i["values"] for i in body["items"]}
    assert by_channel["search"]["visitors"] == 1500
    assert by_channel["search"]["buyers"] == 30
    # ratio of sums: 30 / 1500 = 0.02, not the mean of 1% and 4% (0.025)
    assert by_channel["search"]["cvr"] == pytest.approx(0.02)
    assert by_channel["search"]["aov"] == pytest.approx(100.0)
    assert by_channel["social"]["cvr"] == pytest.approx(0.01)


async def test_store_totals_and_breakdowns_are_not_added(env: Any) -> None:
    h, keys = env
    body = await get(
        h, keys, "/v1/stores/acme-us/metrics", start=D1, end=D2, metric=["visitors", "cvr"]
    )
    totals = {i["date"]: i["values"] for i in body["items"]}
    assert totals[D1]["visitors"] == 1600  # the breakdown's sum (no total was sent)
    assert totals[D2]["visitors"] == 800  # the total, not total + breakdown (1600)
    assert totals[D2]["cvr"] == pytest.approx(8 / 800)
    score = await get(h, keys, "/v1/stores/acme-us/metrics", start=D1, end=D1, metric="dsr_service")
    assert score["items"][0]["values"]["dsr_service"] == pytest.approx(4.8)


async def test_group_by_two_dimensions_and_pagination(env: Any) -> None:
    h, keys = env
    seen = []
    cursor = None
    while True:
        params: dict[str, Any] = {
            "start": D1,
            "end": D2,
            "metric": "gmv",
            "group_by": ["channel", "device"],
            "limit": 2,
        }
        if cursor:
            params["cursor"] = cursor
        body = await get(h, keys, "/v1/stores/acme-us/metrics", **params)
        seen += [
            (i["date"], i["dimensions"]["channel"], i["dimensions"]["device"], i["values"]["gmv"])
            for i in body["items"]
        ]
        cursor = body.get("next_cursor")
        if not cursor:
            break
    assert len(seen) == 4 and len(set(seen)) == 4
    assert (D1, "search", "desktop", 2000.0) in seen


async def test_csv_export_is_the_same_query(env: Any) -> None:
    h, keys = env
    r = await h.client.get(
        "/v1/stores/acme-us/metrics",
        headers=keys["viewer"],
        params={
            "start": D1,
            "end": D2,
            "metric": "visitors,cvr",
            "group_by": "channel",
            "format": "csv",
        },
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert table[0].keys() == {"date", "channel", "visitors", "cvr"}
    search_d1 = next(t for t in table if t["date"] == D1 and t["channel"] == "search")
    assert float(search_d1["visitors"]) == 1500 and float(search_d1["cvr"]) == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"start": D2, "end": D1, "metric": "gmv"}, ["query", "end"]),
        ({"start": D1, "end": D1, "metric": "sessions"}, ["query", "metric"]),
        ({"start": D1, "end": D1}, ["query", "metric"]),
        ({"start": D1, "end": D1, "metric": "gmv", "group_by": "Bad-Key"}, ["query", "group_by"]),
        ({"start": "2026-13-01", "end": D1, "metric": "gmv"}, ["query", "start"]),
        (
            {"start": D1, "end": D1, "metric": "gmv", "cursor": "eyJhZnRlciI6ICJ4In0"},
            ["query", "cursor"],
        ),
    ],
)
async def test_bad_reads_are_422(env: Any, params: dict[str, Any], loc: list[str]) -> None:
    h, keys = env
    r = await h.client.get("/v1/stores/acme-us/metrics", params=params, headers=keys["viewer"])
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == loc


async def test_reads_respect_tenant_and_scope(env: Any) -> None:
    h, keys = env
    other = await h.tenant_with_keys("beta", ["beta-a"])
    r = await h.client.get(
        "/v1/stores/acme-us/metrics",
        headers=other["admin"],
        params={"start": D1, "end": D1, "metric": "gmv"},
    )
    assert r.status_code == 404
    r = await h.client.get(
        "/v1/stores/acme-cn/metrics",
        headers=keys["scoped"],
        params={"start": D1, "end": D1, "metric": "gmv"},
    )
    assert r.status_code == 404


async def test_rollup_in_the_reporting_currency(env: Any) -> None:
    h, keys = env
    params = {"start": D1, "end": D1, "metric": "gmv,buyers,aov"}
    r = await h.client.get("/v1/metrics/rollup", params=params, headers=keys["viewer"])
    assert r.status_code == 422 and "CNY->USD" in r.json()["errors"][0]["msg"]
    r = await h.client.post(
        "/v1/fx-rates",
        headers=keys["operator"],
        json={
            "rows": [
                {"date": "2026-09-30", "base": "CNY", "quote": "USD", "rate": 0.14},
                {"date": "2026-10-02", "base": "CNY", "quote": "USD", "rate": 0.5},
            ]
        },
    )
    assert r.status_code == 202 and r.json()["accepted"] == 2
    body = await get(h, keys, "/v1/metrics/rollup", **params)
    assert body["currency"] == "USD"
    values = body["items"][0]["values"]
    # the latest rate on or before the day (0.14, not the later 0.5)
    assert values["gmv"] == pytest.approx(3050.0 + 7000.0 * 0.14)
    assert values["buyers"] == 31 + 70
    assert values["aov"] == pytest.approx(values["gmv"] / 101)
    per_store = await get(h, keys, "/v1/metrics/rollup", by="store", **params)
    assert {i["store_id"] for i in per_store["items"]} == {"acme-us", "acme-cn"}
    scoped = await get(h, keys | {"viewer": keys["scoped"]}, "/v1/metrics/rollup", **params)
    assert scoped["items"][0]["values"]["gmv"] == pytest.approx(3050.0)
    r = await h.client.post(
        "/v1/fx-rates",
        headers=keys["operator"],
        json={"rows": [{"date": D1, "base": "CNY", "quote": "USD", "rate": -1}]},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "rows", 0, "rate"]


async def test_fx_rates_are_published_for_the_services_that_convert(env: Any) -> None:
    """POST /v1/fx-rates stages ingest.fx_rates_ingested (tenant-scoped) with the new or changed
    rates only, in the same transaction (the outbox)."""
    h, keys = env

    async def published() -> list[FxRatesIngestedV1]:
        t = OutboxMessage.__table__  # type: ignore[attr-defined]
        async with h.app.state.db.session(readonly=True) as s:
            q = select(t.c.payload).where(t.c.event_type == "ingest.fx_rates_ingested")
            rows = (await s.execute(q.order_by(t.c.id))).all()
        return [FxRatesIngestedV1.model_validate(json.loads(r[0])) for r in rows]

    rates = [
        {"date": "2026-09-30", "base": "CNY", "quote": "USD", "rate": 0.14},
        {"date": "2026-09-30", "base": "EUR", "quote": "USD", "rate": 1.08},
    ]
    r = await h.client.post("/v1/fx-rates", headers=keys["operator"], json={"rows": rates})
    assert r.status_code == 202
    (first,) = await published()
    assert first.store_id is None and first.tenant_id == "acme"
    assert (first.accepted, first.updated, first.chunk, first.chunks) == (2, 0, 0, 1)
    assert sorted((x.base, x.rate) for x in first.rows) == [("CNY", 0.14), ("EUR", 1.08)]
    # the same rates again and one corrected: only the change travels
    rates[1]["rate"] = 1.09
    await h.client.post("/v1/fx-rates", headers=keys["operator"], json={"rows": rates})
    second = (await published())[-1]
    assert (second.accepted, second.updated) == (0, 1)
    assert [(x.base, x.rate) for x in second.rows] == [("EUR", 1.09)]
