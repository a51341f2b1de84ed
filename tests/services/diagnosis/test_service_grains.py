"""Diagnosis's copy of the series under mixed levels of detail: its reports total a store-day by
the shared rules (the same number ingest shows), a deletion from ingest removes the same rows
and redoes the day as a new report version, and the market's conversion is derived from market
visitors and buyers when the market did not post it."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from diagnosis_helpers import metrics_events
from grain_mixes import grain_mix
from support import Harness, api_key_event, apply_events

from services.diagnosis.models import SeriesRow, StoreDayState
from shared import grains
from shared.events.ingest import (
    BenchmarkIngestedV1,
    BenchmarkRowV1,
    MetricKeyV1,
    MetricsDeletedV1,
    StoreRegisteredV1,
)

TENANT = "acme"
TOKEN = "diag-grains-token-0000000000000000000"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# An ordinary Thursday: the default baseline's comparable days (the same weekdays before it)
# are no festival days. (It was 2026-11-20, whose same weekdays in the 14 days of history these
# tests send are Double 11's pre-sale and aftermath: no comparable day, hence no baseline.)
DAY = date(2026, 4, 23)


def store(sid: str = "s1") -> StoreRegisteredV1:
    return StoreRegisteredV1(
        tenant_id=TENANT,
        store_id=sid,
        name="S1",
        platform="taobao",
        timezone="Asia/Shanghai",
        currency="CNY",
        market="CN",
        category="apparel",
    )


async def report(h: Harness, day: date, sid: str = "s1") -> dict[str, Any]:
    r = await h.client.post(
        f"/v1/stores/{sid}/diagnoses", json={"date": day.isoformat()}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def kpi(rep: dict[str, Any], metric: str) -> dict[str, Any]:
    return next(k for k in rep["kpis"] if k["metric"] == metric)


async def test_reports_total_by_the_shared_rules_and_follow_deletions(diagnosis: Harness) -> None:
    h = diagnosis
    rows = grain_mix(7, DAY, days=15)
    stray = [
        {"date": DAY, "metric": "visitors", "value": 61.0, "dimensions": {"copy_id": "c9"}},
        {"date": DAY, "metric": "gmv", "value": 1.0, "dimensions": {"shop_channel": "x"}},
    ]
    await apply_events(
        h.app,
        api_key_event(TOKEN, TENANT, "operator"),
        store(),
        *metrics_events(TENANT, "s1", rows + stray),
    )
    expect = grains.aggregate(rows + stray)
    first = await report(h, DAY)
    for m in ("visitors", "buyers", "gmv"):
        assert kpi(first, m)["value"] == pytest.approx(expect[(DAY, m)]), m
    # ingest deletes the store level and the stray rows: diagnosis follows and redoes the day
    today = [r for r in rows if r["date"] == DAY]
    gone = [r for r in today if not r["dimensions"]] + stray
    async with h.app.state.db.session(readonly=True) as s:
        before_rows = await h.count(SeriesRow, store_id="s1")
        state = await s.get(StoreDayState, (TENANT, "s1", DAY))
        version = state.data_version if state else 0
    event = MetricsDeletedV1(
        tenant_id=TENANT,
        store_id="s1",
        batch_id=uuid.uuid4(),
        chunk=0,
        chunks=1,
        correction_id=uuid.uuid4(),
        reason="delete",
        deleted=len(gone),
        rows=[
            MetricKeyV1(date=r["date"], metric=r["metric"], dimensions=r["dimensions"])
            for r in gone
        ],
    )
    await apply_events(h.app, event)
    assert await h.count(SeriesRow, store_id="s1") == before_rows - len(gone)
    async with h.app.state.db.session(readonly=True) as s:
        state = await s.get(StoreDayState, (TENANT, "s1", DAY))
        assert state is not None and state.data_version == version + 1
    await apply_events(h.app, event)  # a replay deletes nothing more
    assert await h.count(SeriesRow, store_id="s1") == before_rows - len(gone)
    left = [r for r in rows if r not in gone]
    expect = grains.aggregate(left)
    second = await report(h, DAY)
    assert second["version"] == first["version"] + 1
    for m in ("visitors", "buyers", "gmv"):
        assert kpi(second, m)["value"] == pytest.approx(expect[(DAY, m)]), m


def _rows(day: date, visitors: float, buyers: float) -> list[dict[str, Any]]:
    return [
        {"date": day, "metric": "visitors", "value": visitors, "dimensions": {}},
        {"date": day, "metric": "buyers", "value": buyers, "dimensions": {}},
        {"date": day, "metric": "gmv", "value": buyers * 100.0, "dimensions": {}},
    ]


async def test_the_markets_conversion_from_its_parts_shows_a_relative_decline(
    diagnosis: Harness,
) -> None:
    """The seeds' own case: own conversion 1.1% -> 1.2% while the market went 1.1% -> 1.4%,
    the market sending visitors and buyers only (as Sycm's 行业 pages give them)."""
    h = diagnosis
    own: list[dict[str, Any]] = []
    market: list[BenchmarkRowV1] = []
    for k in range(1, 15):
        d = DAY - timedelta(days=k)
        own += _rows(d, 10_000, 110)
        market += [
            BenchmarkRowV1(date=d, metric="visitors", value=1_000_000),
            BenchmarkRowV1(date=d, metric="buyers", value=11_000),
        ]
    own += _rows(DAY, 10_000, 120)
    market += [
        BenchmarkRowV1(date=DAY, metric="visitors", value=1_000_000),
        BenchmarkRowV1(date=DAY, metric="buyers", value=14_000),
    ]
    bench = BenchmarkIngestedV1(
        tenant_id=TENANT,
        batch_id=uuid.uuid4(),
        chunk=0,
        chunks=1,
        market="CN",
        category="apparel",
        value_kind="absolute",
        source="api",
        rows=market,
    )
    await apply_events(
        h.app,
        api_key_event(TOKEN, TENANT, "operator"),
        store(),
        *metrics_events(TENANT, "s1", own),
        bench,
    )
    cvr = kpi(await report(h, DAY), "cvr")
    assert cvr["value"] == pytest.approx(0.012) and cvr["change"] == pytest.approx(1 / 11)
    assert cvr["market_change"] == pytest.approx(3 / 11)
    assert cvr["relative_change"] == pytest.approx(1.2 / 1.4 - 1)  # -14.3%: a decline


async def test_a_market_index_is_compared_as_change_only(diagnosis: Harness) -> None:
    h = diagnosis
    own: list[dict[str, Any]] = []
    market: list[BenchmarkRowV1] = []
    for k in range(0, 15):
        d = DAY - timedelta(days=k)
        own += _rows(d, 10_000 if k else 8_000, 110)
        market.append(BenchmarkRowV1(date=d, metric="visitors", value=1.0 if k else 0.8))
    bench = BenchmarkIngestedV1(
        tenant_id=TENANT,
        batch_id=uuid.uuid4(),
        chunk=0,
        chunks=1,
        market="CN",
        category="apparel",
        value_kind="index",
        source="api",
        rows=market,
    )
    await apply_events(
        h.app,
        api_key_event(TOKEN, TENANT, "operator"),
        store(),
        *metrics_events(TENANT, "s1", own),
        bench,
    )
    rep = await report(h, DAY)
    visitors = kpi(rep, "visitors")
    assert visitors["market_change"] == pytest.approx(-0.2)
    assert visitors["relative_change"] == pytest.approx(0.0)
    assert kpi(rep, "cvr")["market_change"] is None  # no ratio is made of an index
