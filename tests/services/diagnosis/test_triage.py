"""Triage (issue 15, point 4): each finding's impact is the part of the day's GMV change its
factor explains (the decomposition's), converted into the tenant's reporting currency with
diagnosis' own copy of ingest's FX rates (a missing rate said on the item, never mixed);
ordered by severity, then impact, then confidence; group=cause folds one cause only within one
market, on the same or adjacent days, with a comparable magnitude."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from support import Harness, api_key_event, apply_events, store_event

from services.diagnosis import repository as repo
from services.diagnosis import service
from services.diagnosis.engine.completeness import Completeness
from services.diagnosis.engine.decomposition import decompose_gmv, decompose_product, mix_rate
from services.diagnosis.engine.diagnose import Report
from services.diagnosis.engine.findings import Finding
from services.diagnosis.engine.market import kpi
from services.diagnosis.models import FindingRow, FxRateRow, KnownTenant
from shared.events.ingest import FxRatesIngestedV1, FxRateV1, TenantCreatedV1, TenantUpdatedV1

DAY = dt.date(2026, 11, 20)
TENANT = "agency"
TOKEN = "triage-viewer-token-000000000000000"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# Two channels, (buyers, visitors, gmv) before and after: paid search loses 60% of its
# visitors; free search loses 10% of its visitors and its conversion falls 25%.
BEFORE = {"paid_search": (20.0, 1000.0, 2000.0), "search": (20.0, 1000.0, 2000.0)}
AFTER = {"paid_search": (8.0, 400.0, 800.0), "search": (13.5, 900.0, 1350.0)}


def totals(side: dict[str, tuple[float, float, float]]) -> dict[str, float]:
    return {
        "buyers": sum(b for b, _, _ in side.values()),
        "visitors": sum(v for _, v, _ in side.values()),
        "gmv": sum(g for _, _, g in side.values()),
    }


def report(findings: list[Finding], facts: dict[str, float | None] | None = None) -> Report:
    b, a = totals(BEFORE), totals(AFTER)
    return Report(
        day=DAY,
        baseline="same_weekday_last_week",
        data_complete=True,
        completeness=Completeness(DAY, True, 1, 1, 0),
        kpis=[kpi(m, a[m], b[m]) for m in ("visitors", "buyers", "gmv")],
        decomposition=decompose_gmv(b, a),
        funnel=None,
        mix=mix_rate(
            {ch: (x[0], x[1]) for ch, x in BEFORE.items()},
            {ch: (x[0], x[1]) for ch, x in AFTER.items()},
        ),
        root_causes=[],
        rca_verdicts={},
        facts=facts or {},
        findings=findings,
        explained_by_market=False,
        summaries={"en": "-"},
        context=False,
    )


def finding(code: str, metric: str, channel: str | None, evidence: dict[str, float]) -> Finding:
    primary = next(iter(evidence.values()))
    return Finding(
        code,
        "high",
        metric,
        {"channel": channel} if channel else {},
        "promotion",
        code,
        "act",
        dict(evidence),
        primary,
        expected_gmv_impact=-9999.0,  # what the engine puts there: its scope's whole change
    )


# ---- attributed impact (pure) ------------------------------------------------------------


def test_a_channel_traffic_finding_gets_the_part_of_the_visitors_contribution_it_explains() -> None:
    rep = report([])
    contributions = rep.decomposition.contributions  # type: ignore[union-attr]
    paid = finding(
        "paid_traffic_drop", "visitors", "paid_search", {"chg.visitors.paid_search": -0.6}
    )
    free = finding("search_traffic_drop", "visitors", "search", {"chg.visitors.search": -0.1})
    store = finding("traffic_drop", "visitors", None, {"chg.visitors.all": -0.35})
    paid_part = service.attributed_impact(paid, rep)
    free_part = service.attributed_impact(free, rep)
    assert paid_part is not None and free_part is not None
    # the channels' parts add up to the factor's contribution, split by their visitor change
    assert paid_part + free_part == pytest.approx(contributions["visitors"], abs=0.02)
    assert paid_part / free_part == pytest.approx(600 / 100, rel=1e-3)  # rounded to cents
    assert service.attributed_impact(store, rep) == pytest.approx(contributions["visitors"], 0.01)
    # never the whole GMV change (part of it is search's conversion)
    assert abs(paid_part) < abs(rep.decomposition.change)  # type: ignore[union-attr]


def test_a_paid_traffic_finding_gets_the_paid_channels_part() -> None:
    rep = report([])
    paid = finding(
        "paid_traffic_drop", "visitors", "paid_search", {"chg.visitors.paid_search": -0.6}
    )
    paid_type = finding("paid_traffic_drop", "visitors", None, {"chg.visitors.paid": -0.6})
    assert service.attributed_impact(paid_type, rep) == pytest.approx(
        service.attributed_impact(paid, rep)
    )


def test_conversion_findings_get_the_conversion_part_of_their_channel() -> None:
    rep = report([])
    contributions = rep.decomposition.contributions  # type: ignore[union-attr]
    mix = rep.mix
    assert mix is not None
    search = finding("cvr_drop", "cvr", "search", {"rel.cvr.search": -0.25})
    part = service.attributed_impact(search, rep)
    assert part is not None and part < 0
    # the channel's own rate effect, at the conversion's GMV per unit
    rate_effect = next(s.rate for s in mix.segments if s.segment == "search")
    assert part == pytest.approx(
        contributions["cvr"] * rate_effect / (mix.after - mix.before), 0.02
    )
    # a traffic-mix finding: the mix part of the conversion's move
    mixed = finding("cvr_drop_traffic_mix", "cvr", None, {"rel.cvr.all": -0.1, "mix.cvr": 0.6})
    mixed_part = service.attributed_impact(mixed, rep)
    assert mixed_part == pytest.approx(
        contributions["cvr"] * mix.mix / (mix.after - mix.before), rel=0.02
    )
    whole = finding("cvr_drop", "cvr", None, {"rel.cvr.all": -0.2})
    assert service.attributed_impact(whole, rep) == pytest.approx(contributions["cvr"], abs=0.01)


def test_ratings_refunds_and_data_findings_have_no_direct_gmv_impact() -> None:
    rep = report([])
    for code, metric in (
        ("dsr_logistics_drop", "dsr_logistics"),
        ("dsr_service_drop", "dsr_service"),
        ("refund_rate_up", "refund_rate"),
        ("data_incomplete", "rows"),
        # the market's own move is context: none of the store's change is its to claim
        ("market_moved", "visitors"),
        ("market_decline", "cvr"),
    ):
        f = finding(code, metric, None, {f"chg.{metric}.all": -0.1})
        assert service.attributed_impact(f, rep) is None, code


def test_a_click_through_finding_gets_the_share_of_its_channels_visitor_change() -> None:
    facts: dict[str, float | None] = {"chg.ctr.paid_search": -0.3, "chg.visitors.paid_search": -0.6}
    rep = report([], facts)
    ctr = finding("ctr_drop", "ctr", "paid_search", {"rel.ctr.paid_search": -0.3})
    traffic = finding(
        "paid_traffic_drop", "visitors", "paid_search", {"chg.visitors.paid_search": -0.6}
    )
    share = (-0.35667494393873245) / (-0.916290731874155)  # ln(0.7) / ln(0.4)
    assert service.attributed_impact(ctr, rep) == pytest.approx(
        service.attributed_impact(traffic, rep) * share,  # type: ignore[operator]
        abs=0.02,
    )


def test_the_report_carries_the_attributed_impacts() -> None:
    dsr = finding("dsr_logistics_drop", "dsr_logistics", None, {"chg.dsr_logistics.all": -0.05})
    paid = finding(
        "paid_traffic_drop", "visitors", "paid_search", {"chg.visitors.paid_search": -0.6}
    )
    rep = report([dsr, paid])
    store = SimpleNamespace(store_id="s", currency="USD")
    body = service.report_document(
        rep,
        report_id="r",
        store=store,
        version=1,
        trigger="request",
        created_at=datetime.now(UTC),
        context_items=[],
        finding_ids=["a", "b"],
    )
    impacts = [f["expected_gmv_impact"] for f in body["findings"]]
    assert impacts == [None, service.attributed_impact(paid, rep)]


def test_lmdi_per_unit_matches_the_contribution() -> None:
    d = decompose_product({"a": 2.0, "b": 3.0}, {"a": 1.5, "b": 3.3})
    pu = service._per_unit(d.contributions["a"], 2.0, 1.5, d.before, d.after)
    assert pu is not None and pu * (1.5 - 2.0) == pytest.approx(d.contributions["a"])


# ---- conversion (pure) -------------------------------------------------------------------


def test_triage_fields_convert_or_say_which_rate_is_missing() -> None:
    common: dict[str, Any] = {"severity": "high", "confidence": 0.8, "day": DAY}
    same = service.triage_fields(
        impact=-700.0, currency="USD", reporting="USD", rate=None, **common
    )
    assert same["impact_reporting"] == -700.0 and same["fx_missing"] is None
    assert same["priority"] == pytest.approx(560.0) and same["severity_rank"] == 2
    cny = service.triage_fields(impact=-700.0, currency="CNY", reporting="USD", rate=0.14, **common)
    assert cny["impact_reporting"] == pytest.approx(-98.0) and cny["triage_tier"] == 0
    missing = service.triage_fields(
        impact=-700.0, currency="CNY", reporting="USD", rate=None, **common
    )
    assert missing["impact_currency"] == "CNY" and missing["impact_reporting"] is None
    assert missing["fx_missing"] == "CNY->USD on 2026-11-20" and missing["triage_tier"] == 1
    assert missing["priority"] == 0.0
    none = service.triage_fields(impact=None, currency="CNY", reporting="USD", rate=None, **common)
    assert none["fx_missing"] is None and none["triage_tier"] == 0  # nothing to convert


# ---- group=cause (pure) ------------------------------------------------------------------


def row(store: str, day: dt.date, size: float, **over: Any) -> SimpleNamespace:
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "store_id": store,
        "date": day,
        "code": "paid_traffic_drop",
        "metric": "visitors",
        "dims": '{"channel": "paid_search"}',
        "owner": "promotion",
        "severity": "high",
        "title": "Paid traffic on paid search down",
        "evidence": {"chg.visitors.paid_search": size, "paid.paid_search": 1.0},
        "expected_gmv_impact": -1000.0,
        "impact_currency": "USD",
        "impact_reporting": -1000.0,
        "reporting_currency": "USD",
        "fx_missing": None,
        "confidence": 0.7,
        "priority": 700.0,
        "severity_rank": 2,
        "triage_tier": 0,
        "triage_impact": 1000.0,
    }
    values.update(over)
    return SimpleNamespace(**values)


def test_group_by_cause_never_merges_markets_distant_days_or_different_sizes() -> None:
    markets = {"us-1": "US", "us-2": "US", "us-3": "US", "de-1": "DE", "us-4": "US"}
    rows = [
        row("us-1", DAY, -0.5),
        row("us-2", DAY + dt.timedelta(days=1), -0.4),  # adjacent day, comparable: same cause
        row("de-1", DAY, -0.5),  # another market: never the same cause
        row("us-3", DAY, -0.05),  # a tenth of the size: not the same cause
        row("us-4", DAY + dt.timedelta(days=5), -0.5),  # days apart
        row("unknown", DAY, -0.5),  # its market is not known yet: on its own
    ]
    groups = service.group_by_cause(rows, markets)
    by_stores = sorted(g.store_ids for g in groups)
    assert by_stores == [["de-1"], ["unknown"], ["us-1", "us-2"], ["us-3"], ["us-4"]]
    us = next(g for g in groups if g.stores == 2)
    assert us.market == "US" and (us.start, us.end) == (DAY, DAY + dt.timedelta(days=1))
    assert us.title.startswith("market-wide in US: 2 stores")
    assert us.impact_reporting == -2000.0 and us.expected_gmv_impact == -2000.0


def test_group_by_cause_never_sums_two_currencies() -> None:
    rows = [
        row("us-1", DAY, -0.5),
        row(
            "us-2",
            DAY,
            -0.5,
            impact_currency="CNY",
            expected_gmv_impact=-7000.0,
            impact_reporting=None,
            fx_missing="CNY->USD on 2026-11-20",
            triage_tier=1,
        ),
    ]
    (g,) = service.group_by_cause(rows, {"us-1": "US", "us-2": "US"})
    assert g.expected_gmv_impact is None and g.impact_currency is None
    assert g.impact_reporting == -1000.0 and g.fx_missing == ["CNY->USD on 2026-11-20"]


def test_groups_rank_by_severity_before_impact() -> None:
    low = row(
        "us-1",
        DAY,
        -0.2,
        code="market_decline",
        metric="cvr",
        dims="{}",
        severity="low",
        severity_rank=0,
        evidence={"mkt.cvr": -0.2},
        impact_reporting=-50_000.0,
        expected_gmv_impact=-50_000.0,
        triage_impact=50_000.0,
        priority=35_000.0,
    )
    critical = row("us-2", DAY, -0.7, severity="critical", severity_rank=3)
    groups = service.group_by_cause([low, critical], {"us-1": "US", "us-2": "US"})
    assert [g.code for g in groups] == ["paid_traffic_drop", "market_decline"]


# ---- on the service: ordering, FX events, the tenant's currency --------------------------


async def insert(
    h: Harness,
    store: str,
    currency: str,
    severity: str,
    impact: float | None,
    conf: float,
    *,
    code: str = "paid_traffic_drop",
    day: dt.date = DAY,
) -> str:
    fid = str(uuid.uuid4())
    now = datetime.now(UTC)
    async with h.app.state.db.session() as s:
        reporting, rate = await service.conversion(s, TENANT, currency, day)
        await repo.insert_finding(
            s,
            {
                "id": fid,
                "tenant_id": TENANT,
                "store_id": store,
                "date": day,
                "code": code,
                "metric": "visitors",
                "dims": json.dumps({"n": fid}),
                "owner": "promotion",
                "title": f"{code} {severity}",
                "action": "act",
                "evidence": {},
                "expected_gmv_impact": impact,
                "confidence": conf,
                "status": "open",
                "resolution": None,
                "snoozed_until": None,
                "report_id": None,
                "report_version": 1,
                "opened_at": now,
                "updated_at": now,
                "closed_at": None,
                "severity": severity,
                **service.triage_fields(
                    severity=severity,
                    impact=impact,
                    confidence=conf,
                    currency=currency,
                    reporting=reporting,
                    rate=rate,
                    day=day,
                ),
            },
        )
        await s.commit()
    return fid


async def triage(h: Harness, **params: Any) -> list[dict[str, Any]]:
    r = await h.client.get("/v1/findings", params={"limit": 200, **params}, headers=AUTH)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_severity_first_then_impact_in_the_reporting_currency_then_confidence(
    diagnosis: Harness,
) -> None:
    h = diagnosis
    await apply_events(
        h.app,
        api_key_event(TOKEN, TENANT, "viewer"),
        TenantCreatedV1(tenant_id=TENANT, name="Agency", reporting_currency="USD"),
        store_event("us", tenant=TENANT, currency="USD"),
        store_event("cn", tenant=TENANT, market="CN", timezone="Asia/Shanghai", currency="CNY"),
    )
    # the case: a low "no action on the store" item with a big impact, a critical
    # paid-search collapse with a smaller one
    low = await insert(h, "us", "USD", "low", -1500.0, 0.7, code="market_decline")
    critical = await insert(h, "us", "USD", "critical", -1100.0, 0.9)
    high_small = await insert(h, "us", "USD", "high", -300.0, 0.99)
    high_cny = await insert(h, "cn", "CNY", "high", -7000.0, 0.6)  # no CNY rate yet
    high_big = await insert(h, "us", "USD", "high", -800.0, 0.5)
    dsr = await insert(h, "us", "USD", "high", None, 0.99, code="dsr_logistics_drop")
    items = await triage(h)
    assert [i["id"] for i in items] == [critical, high_big, high_small, dsr, high_cny, low]
    cny = next(i for i in items if i["id"] == high_cny)
    assert cny["impact_currency"] == "CNY" and cny["impact_reporting"] is None
    assert cny["fx_missing"] == "CNY->USD on 2026-11-20" and cny["expected_gmv_impact"] == -7000.0
    # the same order page by page
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await h.client.get("/v1/findings", params=params, headers=AUTH)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [i["id"] for i in items]

    # ingest publishes the tenant's rates: the CNY item is converted (7000 CNY = 980 USD) and
    # takes its place among the high ones, by its converted impact
    rates = FxRatesIngestedV1(
        tenant_id=TENANT,
        batch_id=uuid.uuid4(),
        chunk=0,
        chunks=1,
        accepted=1,
        updated=0,
        rows=[FxRateV1(date=DAY - dt.timedelta(days=3), base="CNY", quote="USD", rate=0.14)],
    )
    await apply_events(h.app, rates)
    items = await triage(h)
    assert [i["id"] for i in items] == [critical, high_cny, high_big, high_small, dsr, low]
    cny = next(i for i in items if i["id"] == high_cny)
    assert cny["impact_reporting"] == pytest.approx(-980.0) and cny["fx_missing"] is None
    assert cny["priority"] == pytest.approx(980.0 * 0.6)
    # the tenant now reports in CNY: the USD items need a USD->CNY rate nobody gave
    await apply_events(
        h.app,
        TenantUpdatedV1(tenant_id=TENANT, name="Agency", reporting_currency="CNY"),
    )
    items = await triage(h)
    assert [i["id"] for i in items][:2] == [critical, high_cny]
    usd = next(i for i in items if i["id"] == high_big)
    assert usd["fx_missing"] == "USD->CNY on 2026-11-20" and usd["reporting_currency"] == "CNY"
    cny = next(i for i in items if i["id"] == high_cny)
    assert cny["impact_reporting"] == -7000.0  # its own currency now


async def test_the_fx_and_tenant_events_land_in_diagnosis_tables_once(diagnosis: Harness) -> None:
    h = diagnosis
    example = FxRatesIngestedV1.example()
    await apply_events(h.app, example, TenantCreatedV1.example(), TenantUpdatedV1.example())
    await apply_events(h.app, example)  # redelivered: claimed once
    assert await h.count(FxRateRow, tenant_id=example.tenant_id) == len(example.rows)
    assert await h.count(KnownTenant, tenant_id=example.tenant_id) == 1
    t = KnownTenant.__table__  # type: ignore[attr-defined]
    async with h.app.state.db.session(readonly=True) as s:
        name = await s.scalar(select(t.c.name).where(t.c.tenant_id == example.tenant_id))
        # the later event wins; an older one arriving late never overwrites it
        assert name == TenantUpdatedV1.example().name
    older = TenantCreatedV1.example().model_copy(
        update={"event_id": uuid.uuid4(), "name": "Stale Name"}
    )
    await apply_events(h.app, older)
    async with h.app.state.db.session(readonly=True) as s:
        assert await s.scalar(select(t.c.name).where(t.c.tenant_id == example.tenant_id)) == (
            TenantUpdatedV1.example().name
        )
    # a corrected rate replaces the one held
    fixed = example.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "rows": [example.rows[0].model_copy(update={"rate": 0.15})],
        }
    )
    await apply_events(h.app, fixed)
    async with h.app.state.db.session(readonly=True) as s:
        rate = await repo.fx_rate_on(s, example.tenant_id, "CNY", "USD", example.rows[0].date)
    assert rate == 0.15
    assert await h.count(FindingRow) == 0
