"""Presets that keep the grain: a Sycm 流量来源 x 终端 export and a Shopify "Sessions by
referrer / device" export arrive as rows by channel and device, lines of one channel summed,
unknown sources kept under other with a warning naming them, total lines on the coarser level;
and every import problem that concerns a column names it."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from support import Harness, store_body

from services.ingest import fileformats
from services.ingest.fileformats import PRESETS_DIR
from services.ingest.models import ImportJob, MetricRow

SAMPLES = PRESETS_DIR / "samples"

# By hand from presets/samples/sycm_traffic.csv (2026-11-01, 12 sources x 2 devices):
# recommendation = 手淘推荐 + 猜你喜欢, paid_display = 引力魔方 + 万相台, direct = 购物车 + 我的淘宝,
# other = 淘宝客 + 手淘旺信 (unknown).
SYCM_VISITORS = {
    ("search", "mobile"): 2105,
    ("recommendation", "mobile"): 1236 + 412,
    ("paid_search", "mobile"): 986,
    ("paid_display", "mobile"): 534 + 377,
    ("live", "mobile"): 298,
    ("other", "mobile"): 211 + 223,
    ("direct", "mobile"): 402 + 188,
    ("social", "mobile"): 96,
    ("search", "pc"): 412,
    ("recommendation", "pc"): 35 + 12,
    ("paid_search", "pc"): 188,
    ("paid_display", "pc"): 41 + 29,
    ("live", "pc"): 8,
    ("other", "pc"): 23 + 21,
    ("direct", "pc"): 97 + 44,
    ("social", "pc"): 3,
}


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


async def imported(h: Harness, keys: Any, store: str, content: bytes, preset: str | None) -> Any:
    r = await h.client.post(
        f"/v1/stores/{store}/metrics/import",
        content=content,
        params={"preset": preset} if preset else {},
        headers={**keys["operator"], "content-type": "text/csv"},
    )
    assert r.status_code == 202, r.text
    for _ in range(400):
        job = (await h.client.get(f"/v1/imports/{r.json()['id']}", headers=keys["viewer"])).json()
        if job["status"] in ("succeeded", "failed"):
            problems = await h.client.get(
                f"/v1/imports/{job['id']}/problems", headers=keys["viewer"]
            )
            return job, problems.json()["items"]
        await asyncio.sleep(0.05)
    raise AssertionError("the import did not finish")


async def read(
    h: Harness, keys: Any, store: str, metric: str, group_by: str = "", day: str = "2026-11-01"
) -> dict[tuple[str, ...], Any]:
    params = {"start": day, "end": day, "metric": metric}
    if group_by:
        params["group_by"] = group_by
    r = await h.client.get(f"/v1/stores/{store}/metrics", params=params, headers=keys["viewer"])
    assert r.status_code == 200, r.text
    dims = group_by.split(",") if group_by else []
    return {tuple(i["dimensions"][d] for d in dims): i["values"][metric] for i in r.json()["items"]}


async def test_sycm_traffic_sample_keeps_channel_and_device(env: Any) -> None:
    h, keys = env
    sample = (SAMPLES / "sycm_traffic.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        sample.decode("utf-8")  # GB18030, as Sycm exports come
    assert len(sample.decode("gb18030").splitlines()) == 1 + 24
    job, problems = await imported(h, keys, "acme-cn", sample, "sycm_traffic")
    assert job["status"] == "succeeded" and job["rows_rejected"] == 0, job
    # 8 channels x 2 devices x (visitors, buyers, gmv): same-channel lines became one row each
    assert job["rows_accepted"] == 48 and job["warnings"] == []
    assert await read(h, keys, "acme-cn", "visitors", "channel,device") == SYCM_VISITORS
    assert await read(h, keys, "acme-cn", "visitors") == {(): 7981}
    assert await read(h, keys, "acme-cn", "buyers") == {(): 245}
    assert await read(h, keys, "acme-cn", "gmv") == {(): pytest.approx(41877.50)}
    assert (await read(h, keys, "acme-cn", "gmv", "channel,device"))[
        ("recommendation", "mobile")
    ] == pytest.approx(4000.00 + 1043.00)
    # the unknown source: kept under other, one warning per line naming it
    assert [(p["line"], p["column"]) for p in problems] == [(13, "流量来源"), (25, "流量来源")]
    assert all("'手淘旺信'" in p["message"] and "channel=other" in p["message"] for p in problems)
    # the same file again: the summed rows are the same rows (duplicates), not added twice
    again, _ = await imported(h, keys, "acme-cn", sample, "sycm_traffic")
    assert (again["rows_accepted"], again["rows_duplicate"]) == (0, 48)
    assert await read(h, keys, "acme-cn", "visitors") == {(): 7981}


async def test_sycm_total_lines_land_on_the_coarser_level_and_subtotals_are_skipped(
    env: Any,
) -> None:
    h, keys = env
    text = (
        "统计日期,流量来源,终端,访客数,支付买家数\n"
        '2026-11-01,汇总,全部,"7,650",240\n'  # Sycm's de-duplicated store total
        '2026-11-01,汇总,无线端,"6,790",200\n'
        '2026-11-01,手淘搜索,无线端,"2,105",63\n'
        "2026-11-01,手淘搜索,PC端,412,14\n"
        '2026-11-01,付费流量,无线端,"1,897",46\n'  # a first-level group: would count twice
        "2026-11-01,直通车,无线端,986,31\n"
    )
    job, problems = await imported(h, keys, "acme-cn", text.encode("gb18030"), "sycm_traffic")
    assert job["status"] == "succeeded" and job["rows_rejected"] == 0, job
    assert job["rows_accepted"] == 2 * 5
    assert [(p["line"], p["column"]) for p in problems] == [(6, "流量来源")]
    assert "'付费流量'" in problems[0]["message"] and "skipped" in problems[0]["message"]
    # 汇总 x 全部 is the store-level row (dimensions {}), 汇总 x 无线端 the device-level one
    assert await read(h, keys, "acme-cn", "visitors") == {(): 7650}
    assert await read(h, keys, "acme-cn", "visitors", "device") == {("mobile",): 6790}
    assert await read(h, keys, "acme-cn", "visitors", "channel") == {
        ("search",): 2105 + 412,
        ("paid_search",): 986,
    }
    assert await h.count(MetricRow, store_id="acme-cn", dims_level="") == 2


async def test_sycm_daily_refuses_a_traffic_source_export(env: Any) -> None:
    h, keys = env
    r = await h.client.post(
        "/v1/stores/acme-cn/metrics/import",
        content=(SAMPLES / "sycm_traffic.csv").read_bytes(),
        params={"preset": "sycm_daily"},
        headers={**keys["operator"], "content-type": "text/csv"},
    )
    assert r.status_code == 422, r.text
    errors = {tuple(e["loc"]): e["msg"] for e in r.json()["errors"]}
    assert set(errors) == {("body", "header", "流量来源"), ("body", "header", "终端")}
    assert all("preset=sycm_traffic" in m for m in errors.values())
    assert await h.count(ImportJob) == 0 and await h.count(MetricRow) == 0


async def test_shopify_sessions_sample_gives_visitors_by_channel_and_device(env: Any) -> None:
    h, keys = env
    sample = (SAMPLES / "shopify_sessions.csv").read_bytes()
    job, problems = await imported(h, keys, "acme-us", sample, "shopify_sessions")
    assert job["status"] == "succeeded" and job["rows_rejected"] == 0 and problems == [], job
    assert await read(h, keys, "acme-us", "visitors", "channel,device") == {
        ("search", "mobile"): 1180 + 88,  # Google and Bing: one source, summed
        ("search", "pc"): 522,
        ("search", "tablet"): 37,
        ("social", "mobile"): 470 + 281,  # Instagram and Facebook
        ("social", "pc"): 70,
        ("email_sms", "mobile"): 190,
        ("email_sms", "pc"): 80,
        ("direct", "mobile"): 366,
        ("direct", "pc"): 190,
        ("other", "mobile"): 60,  # Unknown
    }
    assert await read(h, keys, "acme-us", "visitors") == {(): 3534}
    sessions = await read(h, keys, "acme-us", "custom.sessions", "channel,device")
    assert sessions[("search", "mobile")] == 1420 + 96
    assert await read(h, keys, "acme-us", "visitors", day="2026-11-02") == {(): 1122 + 350}
    presets = (await h.client.get("/v1/import-presets", headers=keys["viewer"])).json()
    assert {"sycm_traffic", "shopify_sessions"} <= {p["name"] for p in presets}


async def test_online_store_is_a_sales_channel_not_the_direct_source(env: Any) -> None:
    h, keys = env
    text = (
        "Day,Referrer source,Device type,Online store visitors\n"
        "2026-11-01,Online Store,Mobile,500\n"
        "2026-11-01,Direct,Mobile,120\n"
        "2026-11-01,Newsletter partner,Desktop,9\n"
    )
    job, problems = await imported(h, keys, "acme-us", text.encode(), "shopify_sessions")
    assert job["status"] == "succeeded" and job["rows_rejected"] == 0, job
    assert await read(h, keys, "acme-us", "visitors", "channel,device") == {
        ("other", "mobile"): 500,
        ("direct", "mobile"): 120,
        ("other", "pc"): 9,
    }
    assert [(p["line"], p["column"]) for p in problems] == [
        (2, "Referrer source"),
        (4, "Referrer source"),
    ]
    assert "'Online Store'" in problems[0]["message"]
    assert "'Newsletter partner'" in problems[1]["message"]


async def test_every_problem_about_a_column_names_it(env: Any) -> None:
    h, keys = env
    wide = (
        "date,channel,dim.shelf,visitors,gmv\n"
        "2026-10-01,search,a,10,abc\n"  # a value of a wide file: its metric column
        "2026-10-01,search,a,-3,1\n"  # negative count: the visitors column
        "2026-10-01,tv,a,3,1\n"  # not a channel: the channel column
        f"2026-10-01,search,{'x' * 201},3,1\n"  # too long: the dim.shelf column
        'broken,"unterminated\n'  # the line cannot be split: no column to name
        "2026-10-01,search,a,3,1\n"
    )
    job, problems = await imported(h, keys, "acme-us", wide.encode(), None)
    assert job["rows_rejected"] == 5 and job["rows_accepted"] == 2, job
    assert [(p["line"], p["column"]) for p in problems] == [
        (2, "gmv"),
        (3, "visitors"),
        (4, "channel"),
        (5, "dim.shelf"),
        (6, None),
    ]
    r = await h.client.post(
        "/v1/stores/acme-us/metrics/import",
        content=(
            b'{"date": "2026-10-01", "visitors": 4, "dimensions": {"channel": "tv"}}\n'
            b'{"date": "2026-10-01", "visitors": 4.5}\n'
        ),
        headers={**keys["operator"], "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 202, r.text
    for _ in range(400):
        job = (await h.client.get(f"/v1/imports/{r.json()['id']}", headers=keys["viewer"])).json()
        if job["status"] == "succeeded":
            break
        await asyncio.sleep(0.05)
    items = (await h.client.get(f"/v1/imports/{job['id']}/problems", headers=keys["viewer"])).json()
    assert [(p["line"], p["column"]) for p in items["items"]] == [
        (1, "dimensions"),
        (2, "visitors"),
    ]


def test_a_day_split_across_batches_is_summed_whole_or_refused(tmp_path: Path) -> None:
    """A batch of a sum_lines mapping ends only before a day it has not seen; a day an earlier
    batch already wrote is refused (its rows hold final sums), never overwritten by a part."""
    path = tmp_path / "t.csv"
    path.write_text(
        "统计日期,流量来源,终端,访客数\n"
        "2026-11-01,手淘推荐,无线端,10\n"
        "2026-11-01,手淘搜索,无线端,5\n"
        "2026-11-01,猜你喜欢,无线端,7\n"  # over batch_rows=1, but 11-01 is this batch's day
        "2026-11-02,手淘推荐,无线端,3\n"
        "2026-11-01,猜你喜欢,PC端,2\n",  # back to a day written by the first batch
        encoding="gb18030",
    )
    _, enc, header, offset, line, mapping = fileformats.inspect_file(
        path, "csv", "sycm_traffic", "auto"
    )
    got: list[Any] = []
    problems: list[dict[str, Any]] = []
    closed: set[str] = set()
    while True:
        batch = fileformats.parse_batch(
            path, "csv", enc, header, mapping, offset, line, 1, date(2030, 1, 1), frozenset(closed)
        )
        got.append({(r.date.day, r.dimensions["channel"]): r.value for r in batch.rows})
        problems += batch.problems
        closed |= set(batch.dates)
        offset, line = batch.end_offset, batch.end_line
        if batch.done:
            break
    assert got == [{(1, "recommendation"): 17, (1, "search"): 5}, {(2, "recommendation"): 3}]
    assert [(p["line"], p["column"]) for p in problems] == [(6, "统计日期")]
    assert "sort the export by date" in problems[0]["message"]
