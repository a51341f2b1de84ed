"""File imports as jobs: long and wide CSV, NDJSON, presets, bad lines reported with the rest
kept, unknown columns refused up front, problems downloadable."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import pytest
from support import Harness, store_body

from services.ingest.fileformats import PRESETS_DIR
from services.ingest.models import ImportJob, MetricRow
from shared.outbox import OutboxMessage


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
    return ingest, keys


async def upload(h: Harness, keys: Any, store: str, content: bytes, **params: Any) -> Any:
    ctype = params.pop("content_type", "text/csv")
    return await h.client.post(
        f"/v1/stores/{store}/metrics/import",
        content=content,
        params=params,
        headers={**keys["operator"], "content-type": ctype},
    )


async def finished(h: Harness, keys: Any, job_id: str) -> dict[str, Any]:
    for _ in range(400):
        r = await h.client.get(f"/v1/imports/{job_id}", headers=keys["viewer"])
        if r.json()["status"] in ("succeeded", "failed"):
            return dict(r.json())
        await asyncio.sleep(0.05)
    raise AssertionError("the import did not finish")


async def test_long_csv_with_a_broken_line_in_the_middle(env: Any) -> None:
    h, keys = env
    lines = ["date,metric,value,channel,device"]
    lines += [f"2026-10-{d:02d},visitors,{100 + d},search,mobile" for d in range(1, 11)]
    lines.insert(4, "2026-10-99,visitors,5,search,mobile")  # bad date
    lines.insert(6, 'broken,"unterminated')  # wrong field count
    lines.insert(8, "2026-10-20,visitors,-5,search,mobile")  # negative count
    lines.insert(9, "2026-10-21,visitors,abc,search,mobile")  # not a number
    r = await upload(h, keys, "acme-us", ("\n".join(lines) + "\n").encode())
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/imports/{r.json()['id']}"
    job = await finished(h, keys, r.json()["id"])
    assert job["status"] == "succeeded"
    assert (job["rows_accepted"], job["rows_rejected"]) == (10, 4)
    assert job["progress"] == 1.0 and job["bytes_done"] == job["file_size"]
    assert await h.count(MetricRow, store_id="acme-us") == 10
    r = await h.client.get(f"/v1/imports/{job['id']}/problems", headers=keys["viewer"])
    problems = r.json()["items"]
    assert [p["line"] for p in problems] == [5, 7, 9, 10]
    assert problems[0]["column"] == "date"
    assert "broken CSV" in problems[1]["message"]
    assert problems[2]["column"] == "value" and "negative" in problems[2]["message"]
    r = await h.client.get(
        f"/v1/imports/{job['id']}/problems", params={"format": "csv"}, headers=keys["viewer"]
    )
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [t["line"] for t in table] == ["5", "7", "9", "10"]
    # the same file again: every row a duplicate, nothing new written
    r = await upload(h, keys, "acme-us", ("\n".join(lines) + "\n").encode())
    again = await finished(h, keys, r.json()["id"])
    assert (again["rows_accepted"], again["rows_duplicate"]) == (0, 10)


async def test_wide_csv_and_later_lines_update_earlier_ones(env: Any) -> None:
    h, keys = env
    text = (
        "date,channel,visitors,buyers,gmv\n"
        "2026-10-01,search,1000,20,2000.50\n"
        "2026-10-01,social,300,3,\n"  # an empty cell is no value, not an error
        "2026-10-01,search,1000,25,2100\n"
    )  # the same identity again: an update
    r = await upload(h, keys, "acme-us", text.encode())
    job = await finished(h, keys, r.json()["id"])
    assert (job["rows_accepted"], job["rows_updated"], job["rows_duplicate"]) == (5, 2, 1)
    r = await h.client.get(
        "/v1/stores/acme-us/metrics",
        headers=keys["viewer"],
        params={
            "start": "2026-10-01",
            "end": "2026-10-01",
            "metric": "buyers,gmv",
            "group_by": "channel",
        },
    )
    values = {i["dimensions"]["channel"]: i["values"] for i in r.json()["items"]}
    assert values["search"] == {"buyers": 25, "gmv": 2100}


async def test_ndjson_long_and_wide(env: Any) -> None:
    h, keys = env
    text = (
        '{"date": "2026-10-01", "metric": "orders", "value": 7, "dimensions": {"channel": "live"}}\n'
        '{"date": "2026-10-02", "metric": "orders", "value": 8}\n'
        "not json\n"
    )
    r = await upload(h, keys, "acme-us", text.encode(), content_type="application/x-ndjson")
    job = await finished(h, keys, r.json()["id"])
    assert job["format"] == "ndjson" and (job["rows_accepted"], job["rows_rejected"]) == (2, 1)


@pytest.mark.parametrize(
    ("preset", "store", "expect"),
    [
        (
            "shopify_sales",
            "acme-us",
            {
                # Shopify's sales channels are where orders were placed, not traffic sources
                ("2026-11-01", "gmv", "sales_channel=online_store"): 3395.5,
                ("2026-11-01", "refunds", "sales_channel=online_store"): 80.5,
                ("2026-11-01", "orders", "sales_channel=facebook_instagram"): 9,
                ("2026-11-01", "gmv", None): 3395.5 + 736.2,
            },
        ),
        (
            "sycm_daily",
            "acme-cn",
            {("2026-11-01", "visitors", None): 12034, ("2026-11-02", "gmv", None): 60214.0},
        ),
        ("ads_spend", "acme-us", {("2026-11-01", "ad_spend", "paid_search"): 321.55 + 905.10}),
    ],
)
async def test_presets_import_their_sample_files(
    env: Any, preset: str, store: str, expect: dict[Any, float]
) -> None:
    h, keys = env
    sample = (PRESETS_DIR / "samples" / f"{preset}.csv").read_bytes()
    if preset == "sycm_daily":
        sample = sample.decode().encode("gb18030")  # the way Sycm exports usually come
    r = await upload(h, keys, store, sample, preset=preset)
    assert r.status_code == 202, r.text
    job = await finished(h, keys, r.json()["id"])
    assert job["status"] == "succeeded" and job["rows_rejected"] == 0, job
    for (day, metric, channel), value in expect.items():
        params: dict[str, Any] = {"start": day, "end": day, "metric": metric}
        dim, _, want = (channel or "").rpartition("=")
        dim = dim or "channel"
        if channel:
            params["group_by"] = dim
        r = await h.client.get(f"/v1/stores/{store}/metrics", params=params, headers=keys["viewer"])
        items = r.json()["items"]
        if channel:
            items = [i for i in items if i["dimensions"][dim] == want]
        assert items[0]["values"][metric] == pytest.approx(value)
    presets = (await h.client.get("/v1/import-presets", headers=keys["viewer"])).json()
    assert {p["name"] for p in presets} == {p.stem for p in PRESETS_DIR.glob("*.yaml")}


@pytest.mark.parametrize(
    ("content", "params", "loc"),
    [
        (b"date,metric,value,colour\n2026-10-01,gmv,1,red\n", {}, ["body", "header", "colour"]),
        (b"day,visitors\n2026-10-01,1\n", {}, ["body", "header", "date"]),
        (b"date,visitors,cvr\n2026-10-01,1,0.1\n", {}, ["body", "header", "cvr"]),
        (b"Day,Orders\n2026-10-01,1\n", {"preset": "nope"}, ["body", "header", "preset"]),
        (b"", {}, ["body"]),
    ],
)
async def test_bad_files_are_refused_before_any_row(
    env: Any, content: bytes, params: dict[str, Any], loc: list[str]
) -> None:
    h, keys = env
    before = (await h.count(MetricRow), await h.count(OutboxMessage), await h.count(ImportJob))
    r = await upload(h, keys, "acme-us", content, **params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["loc"] == loc
    after = (await h.count(MetricRow), await h.count(OutboxMessage), await h.count(ImportJob))
    assert after == before
    uploads = Path(h.settings.var_dir) / "imports"
    assert not list(uploads.glob("*")) if uploads.exists() else True


async def test_import_auth_and_multipart(env: Any) -> None:
    h, keys = env
    content = b"date,metric,value\n2026-10-01,orders,3\n"
    r = await h.client.post(
        "/v1/stores/acme-us/metrics/import", content=content, headers=keys["viewer"]
    )
    assert r.status_code == 403
    r = await h.client.post(
        "/v1/stores/acme-cn/metrics/import", content=content, headers=keys["scoped"]
    )
    assert r.status_code == 404
    r = await h.client.post(
        "/v1/stores/acme-us/metrics/import",
        headers=keys["operator"],
        files={"file": ("orders.csv", content, "text/csv")},
    )
    assert r.status_code == 202 and r.json()["file_name"] == "orders.csv"
    job = await finished(h, keys, r.json()["id"])
    assert job["rows_accepted"] == 1
    other = await h.tenant_with_keys("beta", ["beta-a"])
    r = await h.client.get(f"/v1/imports/{job['id']}", headers=other["admin"])
    assert r.status_code == 404
