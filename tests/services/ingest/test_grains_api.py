"""Levels of detail through the HTTP API, as an operator meets them: one store total whatever
arrives later (copy rows, stray keys), filters and groupings by any registered dimension, slices
read on their own grain, the market and competitors read back, and corrections (deletion by
range and grain, re-imports that replace) audited and published."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import date, timedelta
from typing import Any

import pytest
from grain_mixes import as_api, grain_mix
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from support import Harness, store_body

from shared import grains
from shared.outbox import OutboxMessage

DAY = "2026-11-20"
SPLIT = {
    ("search", "mobile"): 3120,
    ("search", "pc"): 804,
    ("recommendation", "mobile"): 2210,
    ("recommendation", "pc"): 390,
    ("paid_search", "mobile"): 1500,
    ("paid_search", "pc"): 420,
    ("live", "mobile"): 700,
    ("live", "pc"): 100,
}  # 9,244 visitors


def row(day: str, metric: str, value: float, **dims: str) -> dict[str, Any]:
    return {"date": day, "metric": metric, "value": value, "dimensions": dims}


@pytest.fixture
async def env(ingest: Harness) -> tuple[Harness, dict[str, dict[str, str]]]:
    keys = await ingest.tenant_with_keys("acme", ["acme-us"])
    rows = [row(DAY, "visitors", v, channel=c, device=d) for (c, d), v in SPLIT.items()]
    rows += [row(DAY, "impressions", 202_850), row(DAY, "visitors", 9244)]
    r = await ingest.client.post(
        "/v1/stores/acme-us/metrics", json={"rows": rows}, headers=keys["operator"]
    )
    assert r.status_code == 202, r.text
    return ingest, keys


async def read(h: Harness, keys: Any, params: dict[str, Any], store: str = "acme-us") -> Any:
    r = await h.client.get(f"/v1/stores/{store}/metrics", params=params, headers=keys["viewer"])
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def total(h: Harness, keys: Any, metric: str, **params: Any) -> Any:
    items = await read(h, keys, {"start": DAY, "end": DAY, "metric": metric, **params})
    return items[0]["values"][metric] if items else None


async def test_copy_rows_and_stray_keys_never_change_the_store_total(env: Any) -> None:
    h, keys = env
    assert await total(h, keys, "visitors") == 9244
    later = [
        row(DAY, "visitors", 31, copy_id="c1"),
        row(DAY, "visitors", 30, copy_id="c2"),
        row(DAY, "impressions", 7900, copy_id="c1"),
        row(DAY, "visitors", 1, landing_page="/promo"),
        row(DAY, "visitors", 1, shop_channel="x"),
        row(DAY, "gmv", 1.0, shop_channel="x"),
    ]
    r = await h.client.post(
        "/v1/stores/acme-us/metrics", json={"rows": later}, headers=keys["operator"]
    )
    assert r.status_code == 202, r.text
    assert await total(h, keys, "visitors") == 9244
    assert await total(h, keys, "impressions") == 202_850
    assert await total(h, keys, "gmv") is None  # only a slice has gmv: no store total
    # the slices are readable on their own grain
    items = await read(
        h, keys, {"start": DAY, "end": DAY, "metric": "visitors", "group_by": "copy_id"}
    )
    assert {i["dimensions"]["copy_id"]: i["values"]["visitors"] for i in items} == {
        "c1": 31,
        "c2": 30,
    }


async def test_filters_and_groupings_by_any_registered_dimension(env: Any) -> None:
    h, keys = env
    assert await total(h, keys, "visitors", channel="search") == 3924
    assert await total(h, keys, "visitors", channel="search", device="mobile") == 3120
    both = await total(h, keys, "visitors", channel="search,live")
    assert both == 3924 + 800
    repeated = await read(
        h,
        keys,
        [
            ("start", DAY),
            ("end", DAY),
            ("metric", "visitors"),
            ("channel", "search"),
            ("channel", "live"),
        ],  # type: ignore[arg-type]
    )
    assert repeated[0]["values"]["visitors"] == both
    by_type = await read(
        h, keys, {"start": DAY, "end": DAY, "metric": "visitors", "group_by": "traffic_type"}
    )
    assert {i["dimensions"]["traffic_type"]: i["values"]["visitors"] for i in by_type} == {
        "free": 9244 - 1920,
        "paid": 1920,
    }
    assert await total(h, keys, "visitors", traffic_type="paid") == 1920
    by_device = await read(
        h,
        keys,
        {"start": DAY, "end": DAY, "metric": "visitors", "group_by": "device", "channel": "search"},
    )
    assert {i["dimensions"]["device"]: i["values"]["visitors"] for i in by_device} == {
        "mobile": 3120,
        "pc": 804,
    }
    # csv export follows the same rules
    r = await h.client.get(
        "/v1/stores/acme-us/metrics",
        params={
            "start": DAY,
            "end": DAY,
            "metric": "visitors",
            "group_by": "channel",
            "format": "csv",
        },
        headers=keys["viewer"],
    )
    lines = list(csv.reader(io.StringIO(r.text)))
    assert lines[0] == ["date", "channel", "visitors"]
    assert {ln[1]: float(ln[2]) for ln in lines[1:]} == {
        "live": 800,
        "paid_search": 1920,
        "recommendation": 2600,
        "search": 3924,
    }


async def test_unknown_dimensions_are_a_422_naming_them(env: Any) -> None:
    h, keys = env
    for params, loc, name in (
        ({"group_by": "shop_chanel"}, "group_by", "shop_chanel"),
        ({"chanel": "search"}, "chanel", "chanel"),
    ):
        r = await h.client.get(
            "/v1/stores/acme-us/metrics",
            params={"start": DAY, "end": DAY, "metric": "visitors", **params},
            headers=keys["viewer"],
        )
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        err = r.json()["errors"][0]
        assert err["loc"] == ["query", loc] and repr(name) in err["msg"]


async def test_a_store_names_its_own_partitioning_dimension(env: Any) -> None:
    h, keys = env
    r = await h.client.post(
        "/v1/stores",
        json=store_body("acme-b2b", partition_dimensions=["shop_channel"]),
        headers=keys["admin"],
    )
    assert r.status_code == 201, r.text
    assert r.json()["partition_dimensions"] == ["shop_channel"]
    rows = [
        row(DAY, "visitors", 70, shop_channel="wholesale"),
        row(DAY, "visitors", 30, shop_channel="retail"),
    ]
    r = await h.client.post(
        "/v1/stores/acme-b2b/metrics", json={"rows": rows}, headers=keys["operator"]
    )
    assert r.status_code == 202
    assert await total_of(h, keys, "acme-b2b", "visitors", DAY) == 100
    bad = await h.client.post(
        "/v1/stores",
        json=store_body("acme-x", partition_dimensions=["copy_id"]),
        headers=keys["admin"],
    )
    assert bad.status_code == 422 and "slice" in bad.text


async def total_of(h: Harness, keys: Any, store: str, metric: str, day: str) -> Any:
    items = await read(h, keys, {"start": day, "end": day, "metric": metric}, store=store)
    return items[0]["values"][metric] if items else None


async def test_the_rollup_uses_the_same_totals(env: Any) -> None:
    h, keys = env
    r = await h.client.post(
        "/v1/stores/acme-us/metrics",
        json={"rows": [row(DAY, "visitors", 61, copy_id="c1")]},
        headers=keys["operator"],
    )
    assert r.status_code == 202
    r = await h.client.get(
        "/v1/metrics/rollup",
        params={"start": DAY, "end": DAY, "metric": "visitors"},
        headers=keys["viewer"],
    )
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["values"]["visitors"] == 9244


def test_the_channel_message_names_the_value() -> None:
    from services.ingest.schemas import MetricRowIn

    with pytest.raises(Exception) as exc:
        MetricRowIn(date=date(2026, 1, 1), metric="visitors", value=1, dimensions={"channel": "tv"})
    assert "unknown channel 'tv'" in str(exc.value) and "{value" not in str(exc.value)


# ---- corrections ------------------------------------------------------------------------------


async def test_delete_by_range_and_grain_is_audited_published_and_idempotent(env: Any) -> None:
    h, keys = env
    stray = [
        row(DAY, "visitors", 5, landing_page="/promo"),
        row(DAY, "visitors", 6, landing_page="/a"),
    ]
    await h.client.post(
        "/v1/stores/acme-us/metrics", json={"rows": stray}, headers=keys["operator"]
    )
    params = {"start": DAY, "end": DAY, "metric": "visitors", "grain": "landing_page"}
    r = await h.client.delete("/v1/stores/acme-us/metrics", params=params, headers=keys["viewer"])
    assert r.status_code == 403
    r = await h.client.delete("/v1/stores/acme-us/metrics", params=params, headers=keys["operator"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["deleted"] == 2 and out["dates"] == [DAY] and out["grain"] == ["landing_page"]
    again = await h.client.delete(
        "/v1/stores/acme-us/metrics", params=params, headers=keys["operator"]
    )
    assert again.status_code == 200 and again.json()["deleted"] == 0
    # the store total and other grains are untouched
    assert await total(h, keys, "visitors") == 9244
    assert await total(h, keys, "visitors", channel="search") == 3924
    # the store level alone
    r = await h.client.delete(
        "/v1/stores/acme-us/metrics",
        params={"start": DAY, "end": DAY, "metric": "visitors", "grain": "store"},
        headers=keys["operator"],
    )
    assert r.json()["deleted"] == 1
    assert await total(h, keys, "visitors") == 9244  # now the sum of channel x device
    audit = await h.client.get("/v1/stores/acme-us/corrections", headers=keys["viewer"])
    assert [c["deleted"] for c in audit.json()] == [1, 0, 2]
    assert all(c["reason"] == "delete" and c["user_id"] for c in audit.json())
    async with h.app.state.db.session(readonly=True) as s:
        payloads = [
            json.loads(p)
            for (p,) in await s.execute(
                select(OutboxMessage.__table__.c.payload).where(
                    OutboxMessage.__table__.c.event_type == "ingest.metrics_deleted"
                )
            )
        ]
    assert len(payloads) == 2  # a deletion of nothing publishes nothing
    assert sorted(r["dimensions"]["landing_page"] for r in payloads[0]["rows"]) == ["/a", "/promo"]
    assert payloads[1]["rows"] == [{"date": DAY, "metric": "visitors", "dimensions": {}}]


async def test_bad_deletions_name_the_field(env: Any) -> None:
    h, keys = env
    for params, loc in (
        ({"start": DAY, "end": "2026-11-01"}, "end"),
        ({"start": DAY, "end": DAY, "metric": "cvr"}, "metric"),
        ({"start": DAY, "end": DAY, "grain": "Channel!"}, "grain"),
    ):
        r = await h.client.delete(
            "/v1/stores/acme-us/metrics", params=params, headers=keys["operator"]
        )
        assert r.status_code == 422, (params, r.text)
        assert r.json()["errors"][0]["loc"] == ["query", loc]
    assert await total(h, keys, "visitors") == 9244


async def finished(h: Harness, keys: Any, job_id: str) -> dict[str, Any]:
    for _ in range(400):
        r = await h.client.get(f"/v1/imports/{job_id}", headers=keys["viewer"])
        if r.json()["status"] in ("succeeded", "failed"):
            return dict(r.json())
        await asyncio.sleep(0.05)
    raise AssertionError("the import did not finish")


async def _import(h: Harness, keys: Any, body: bytes, **params: str) -> dict[str, Any]:
    r = await h.client.post(
        "/v1/stores/acme-us/metrics/import",
        params=params,
        content=body,
        headers={**keys["operator"], "content-type": "text/csv"},
    )
    assert r.status_code == 202, r.text
    return await finished(h, keys, r.json()["id"])


async def test_a_reimport_with_mode_replace_replaces_what_the_file_wrote(env: Any) -> None:
    h, keys = env
    first = b"date,channel,visitors\n2026-11-19,search,100\n2026-11-19,social,50\n"
    job = await _import(h, keys, first)
    assert job["status"] == "succeeded" and job["rows_accepted"] == 2
    day = "2026-11-19"
    assert await total_of(h, keys, "acme-us", "visitors", day) == 150
    corrected = b"date,channel,visitors\n2026-11-19,search,120\n"
    plain = await _import(h, keys, corrected)
    assert plain["mode"] == "upsert"
    assert await total_of(h, keys, "acme-us", "visitors", day) == 170  # social stays
    job = await _import(h, keys, corrected, mode="replace")
    assert job["status"] == "succeeded" and job["mode"] == "replace"
    assert await total_of(h, keys, "acme-us", "visitors", day) == 120  # social is gone
    assert await total(h, keys, "visitors") == 9244  # another day, untouched
    audit = (await h.client.get("/v1/stores/acme-us/corrections", headers=keys["viewer"])).json()
    assert audit[0]["reason"] == "replace" and audit[0]["import_job_id"] == job["id"]
    assert audit[0]["deleted"] == 2


# ---- the market and competitors, read back ----------------------------------------------------


async def test_benchmarks_read_back_with_ratios_from_their_parts(env: Any) -> None:
    h, keys = env
    rows = [
        {"date": "2026-11-13", "metric": "visitors", "value": 100_000},
        {"date": "2026-11-13", "metric": "buyers", "value": 1100},
        {"date": DAY, "metric": "visitors", "value": 100_000},
        {"date": DAY, "metric": "buyers", "value": 1400},
    ]
    r = await h.client.post(
        "/v1/benchmarks",
        json={"market": "US", "category": "apparel", "rows": rows},
        headers=keys["operator"],
    )
    assert r.status_code == 202, r.text
    r = await h.client.get(
        "/v1/benchmarks",
        params={
            "market": "US",
            "category": "apparel",
            "start": "2026-11-13",
            "end": DAY,
            "metric": "cvr,visitors",
        },
        headers=keys["viewer"],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["values"]["cvr"] for i in body["items"]] == [
        pytest.approx(0.011),
        pytest.approx(0.014),
    ]
    assert body["value_kinds"]["visitors"] == "absolute"
    # an index (Sycm's 流量指数) is accepted as a relative figure
    r = await h.client.post(
        "/v1/benchmarks",
        json={
            "market": "CN",
            "category": "apparel",
            "value_kind": "index",
            "rows": [{"date": DAY, "metric": "visitors", "value": 1.02}],
        },
        headers=keys["operator"],
    )
    assert r.status_code == 202, r.text
    r = await h.client.post(
        "/v1/benchmarks",
        json={
            "market": "CN",
            "category": "apparel",
            "rows": [{"date": DAY, "metric": "visitors", "value": 1.02}],
        },
        headers=keys["operator"],
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "rows", 0, "value"]


async def test_competitor_rows_read_back(env: Any) -> None:
    h, keys = env
    rows = [
        row(DAY, "visitors", 5000),
        row(DAY, "visitors", 3000, channel="search"),
        row(DAY, "visitors", 2000, channel="paid_search"),
        row(DAY, "buyers", 60),
    ]
    r = await h.client.post(
        "/v1/stores/acme-us/competitors/rival/metrics",
        json={"rows": rows},
        headers=keys["operator"],
    )
    assert r.status_code == 202, r.text
    url = "/v1/stores/acme-us/competitors/rival/metrics"
    r = await h.client.get(
        url, params={"start": DAY, "end": DAY, "metric": "visitors,cvr"}, headers=keys["viewer"]
    )
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["values"] == {"visitors": 5000, "cvr": 0.012}
    r = await h.client.get(
        url,
        params={"start": DAY, "end": DAY, "metric": "visitors", "group_by": "traffic_type"},
        headers=keys["viewer"],
    )
    assert {
        i["dimensions"]["traffic_type"]: i["values"]["visitors"] for i in r.json()["items"]
    } == {
        "free": 3000,
        "paid": 2000,
    }
    r = await h.client.get(
        "/v1/stores/acme-us/competitors/nobody/metrics",
        params={"start": DAY, "end": DAY, "metric": "visitors"},
        headers=keys["viewer"],
    )
    assert r.status_code == 404


# ---- the property: ingest's SQL totals are the shared rules -----------------------------------


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 10**6))
async def test_ingest_totals_are_the_shared_rules_on_any_mix(ingest: Harness, seed: int) -> None:
    store = f"mix-{seed}"
    keys = {"admin": {"Authorization": "Bearer test-bootstrap-admin-key-0123456789"}}
    r = await ingest.client.post("/v1/stores", json=store_body(store), headers=keys["admin"])
    assert r.status_code == 201, r.text
    end = date(2026, 11, 20)
    rows = grain_mix(seed, end, days=3)
    r = await ingest.client.post(
        f"/v1/stores/{store}/metrics", json={"rows": as_api(rows)}, headers=keys["admin"]
    )
    assert r.status_code == 202, r.text
    start = (end - timedelta(days=2)).isoformat()
    metrics = ("visitors", "buyers", "gmv", "cvr", "aov")
    for group_by in ([], ["channel"], ["traffic_type"]):
        expect = grains.derived(grains.aggregate(rows, group_by=group_by, metrics=metrics), metrics)
        params: dict[str, Any] = {
            "start": start,
            "end": end.isoformat(),
            "metric": ",".join(metrics),
        }
        if group_by:
            params["group_by"] = group_by[0]
        r = await ingest.client.get(
            f"/v1/stores/{store}/metrics", params=params, headers=keys["admin"]
        )
        got = {
            (date.fromisoformat(i["date"]), m, *i["dimensions"].values()): v
            for i in r.json()["items"]
            for m, v in i["values"].items()
            if v is not None
        }
        assert got == pytest.approx(expect), group_by
