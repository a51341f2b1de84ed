"""Use cases of diagnosis: keep the copy of the series, diagnose store-days into versioned
reports, keep the findings' lifecycle, triage them. Events are staged in the caller's
transaction (the outbox); the request or consumer boundary commits."""

from __future__ import annotations

import asyncio
import base64
import bisect
import datetime as dt
import json
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, get_args
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis import metrics
from services.diagnosis import repository as repo
from services.diagnosis.context import CampaignWindow, context_for
from services.diagnosis.engine.baselines import COMPARABLE_LOOKBACK_WEEKS, comparable_days
from services.diagnosis.engine.board import build_board
from services.diagnosis.engine.decomposition import Decomposition
from services.diagnosis.engine.diagnose import Report as EngineReport
from services.diagnosis.engine.diagnose import StoreDay, diagnose_store_day
from services.diagnosis.engine.findings import RULES, Finding, OpenFinding, advance
from services.diagnosis.schemas import (
    DiagnosisRequest,
    FindingGroup,
    FindingOut,
    FindingPage,
    ReportListItem,
    ReportPage,
    TransitionIn,
    TransitionOut,
)
from shared import grains
from shared.auth import Principal
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.events.campaigns import CampaignCreatedV1, CampaignUpdatedV1
from shared.events.common import Severity
from shared.events.diagnosis import (
    DiagnosisCompletedV1,
    FindingClosedV1,
    FindingOpenedV1,
    FindingUpdatedV1,
    KpiV1,
)
from shared.events.envelope import Event
from shared.events.ingest import (
    BenchmarkIngestedV1,
    CompetitorMetricsIngestedV1,
    FxRatesIngestedV1,
    MetricsDeletedV1,
    MetricsIngestedV1,
    StoreRegisteredV1,
    StoreUpdatedV1,
    TenantCreatedV1,
    TenantUpdatedV1,
)
from shared.outbox import stage

RULES_BY_CODE = {r.code: r for r in RULES}
OPEN_STATUSES = ("open", "acknowledged", "snoozed")
# Earlier days whose open findings a newer day's report may carry on or close.
EARLIER_WINDOW_DAYS = 30
# A finding whose metric recovered is closed (auto_resolved) only once it is this old: the loss
# happened, and its owner should see it in triage for a while, or resolve it.
AUTO_RESOLVE_DAYS = 14
SYSTEM = "system"


def _now() -> datetime:
    return datetime.now(UTC)


def _invalid(loc: list[Any], msg: str) -> ValidationFailed:
    return ValidationFailed([{"loc": loc, "msg": msg}], detail=msg)


def local_today(timezone: str, now: datetime | None = None) -> dt.date:
    return (now or _now()).astimezone(ZoneInfo(timezone)).date()


# ---- the copy of ingest's data (consumers) -------------------------------------------------


async def on_store_event(session: AsyncSession, event: StoreRegisteredV1 | StoreUpdatedV1) -> None:
    await repo.upsert_store(
        session,
        {
            "tenant_id": event.tenant_id,
            "store_id": event.store_id,
            "name": event.name,
            "platform": event.platform,
            "timezone": event.timezone,
            "currency": event.currency,
            "market": event.market,
            "category": event.category,
            "status": event.status,
            "partition_dimensions": list(event.partition_dimensions),
            "as_of": event.occurred_at,
        },
    )


async def on_tenant_event(session: AsyncSession, event: TenantCreatedV1 | TenantUpdatedV1) -> None:
    """The tenant's reporting currency: when it changes, every finding is converted again."""
    before = await reporting_currency(session, event.tenant_id)
    await repo.upsert_tenant(
        session,
        {
            "tenant_id": event.tenant_id,
            "name": event.name,
            "reporting_currency": event.reporting_currency,
            "as_of": event.occurred_at,
        },
    )
    if await reporting_currency(session, event.tenant_id) != before:
        await reprice_findings(session, event.tenant_id)


async def on_fx_rates_ingested(session: AsyncSession, event: FxRatesIngestedV1) -> int:
    """Keep the tenant's rates; convert again the findings a new or changed rate reaches (its
    currency, on or after its date: a day takes the latest rate on or before it)."""
    if not event.rows:
        return 0
    rows = {(r.base, r.quote, r.date): r.rate for r in event.rows}
    await repo.upsert_fx_rates(
        session,
        [
            {"tenant_id": event.tenant_id, "base": b, "quote": q, "date": d, "value": v}
            for (b, q, d), v in rows.items()
        ],
    )
    target = await reporting_currency(session, event.tenant_id)
    since: dict[str, dt.date] = {}
    for b, q, d in rows:
        if q == target:
            since[b] = min(d, since.get(b, d))
    if not since:
        return 0
    return await reprice_findings(
        session, event.tenant_id, currencies=sorted(since), since=min(since.values())
    )


async def on_metrics_ingested(session: AsyncSession, event: MetricsIngestedV1) -> set[dt.date]:
    """Upsert the rows (a replay changes nothing) and mark the days whose data changed."""
    rows: dict[tuple[dt.date, str, str], float] = {}
    for r in event.rows:
        rows[(r.date, r.metric, repo.canonical(r.dimensions))] = r.value
    changed = await repo.upsert_series(
        session,
        event.tenant_id,
        event.store_id,
        [{"date": d, "metric": m, "dims": k, "value": v} for (d, m, k), v in rows.items()],
    )
    if changed:
        await repo.touch_days(session, event.tenant_id, event.store_id, changed, _now())
    return changed


async def on_metrics_deleted(session: AsyncSession, event: MetricsDeletedV1) -> set[dt.date]:
    """Delete the same rows of our copy (a replay deletes nothing) and redo the days that lost
    rows: each gets a new report version."""
    changed = await repo.delete_series(
        session,
        event.tenant_id,
        event.store_id,
        [(r.date, r.metric, repo.canonical(r.dimensions)) for r in event.rows],
    )
    if changed:
        await repo.touch_days(session, event.tenant_id, event.store_id, changed, _now())
    return changed


async def on_benchmark_ingested(session: AsyncSession, event: BenchmarkIngestedV1) -> None:
    rows = {
        (r.date, r.metric): r.value for r in event.rows
    }  # the last of repeated rows wins, as in ingest
    changed = await repo.upsert_benchmarks(
        session,
        [
            {
                "tenant_id": event.tenant_id,
                "market": event.market,
                "category": event.category,
                "date": d,
                "metric": m,
                "value": v,
                "value_kind": event.value_kind,
            }
            for (d, m), v in rows.items()
        ],
    )
    if changed:
        stores = await repo.stores_of_market(session, event.tenant_id, event.market, event.category)
        await repo.touch_market_days(session, event.tenant_id, stores, changed, _now())


async def on_competitor_metrics(session: AsyncSession, event: CompetitorMetricsIngestedV1) -> None:
    rows = {(r.date, r.metric, repo.canonical(r.dimensions)): r.value for r in event.rows}
    changed = await repo.upsert_competitor_rows(
        session,
        [
            {
                "tenant_id": event.tenant_id,
                "store_id": event.store_id,
                "competitor_id": event.competitor_id,
                "date": d,
                "metric": m,
                "dims": k,
                "value": v,
            }
            for (d, m, k), v in rows.items()
        ],
    )
    if changed:
        await repo.touch_market_days(session, event.tenant_id, [event.store_id], changed, _now())


async def on_campaign_event(
    session: AsyncSession, event: CampaignCreatedV1 | CampaignUpdatedV1
) -> None:
    await repo.upsert_campaign(
        session,
        {
            "campaign_id": str(event.campaign_id),
            "tenant_id": event.tenant_id,
            "store_id": event.store_id,
            "name": event.name,
            "event": event.event,
            "status": event.status,
            "start": event.start,
            "end": event.end,
            "phases": [
                {"name": p.name, "start": p.start.isoformat(), "end": p.end.isoformat()}
                for p in event.phases
            ],
            "as_of": event.occurred_at,
        },
    )


# ---- loading a store-day -------------------------------------------------------------------


@dataclass
class Loaded:
    store: Any
    store_day: StoreDay
    context_items: list[dict[str, Any]]
    rows: int
    data_version: int | None = None
    board: dict[str, Any] | None = None


async def load_store_day(
    session: AsyncSession,
    store: Any,
    day: dt.date,
    baseline: str | None,
    history_days: int,
) -> Loaded:
    """Everything the engine needs about one store-day: its rows and the history before it in
    one query, the market benchmark, competitors, campaign windows, the calendar's context.
    baseline None is the default (comparable days, which may reach past a festival season)."""
    start = day - timedelta(days=history_days)
    if baseline == "same_phase_last_year":
        start = day - timedelta(days=371 + 7)
    if baseline is None:
        # the comparable days skip festival periods: read back as far as the earliest of them
        cal = context_for(store.market, day - timedelta(days=7 * COMPARABLE_LOOKBACK_WEEKS), day)
        picked = comparable_days(day, shaped=cal.shaped, exclude=cal.days, phases=cal.phases)
        start = min([start, *picked.days])
    series = await repo.load_series(session, store.tenant_id, store.store_id, start, day)
    bench: dict[dt.date, dict[str, float]] = defaultdict(dict)
    kinds: dict[dt.date, dict[str, str]] = defaultdict(dict)
    for d, metric, value, kind in await repo.load_benchmark(
        session, store.tenant_id, store.market, store.category, start, day
    ):
        bench[d][metric] = value
        kinds[d][metric] = kind
    # market ratios from their parts when the market did not post them (shared/grains.py)
    bench = defaultdict(dict, {d: grains.market_values(v, kinds[d]) for d, v in bench.items()})
    comps: dict[str, dict[dt.date, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for cid, d, metric, value in await repo.load_competitors(
        session, store.tenant_id, store.store_id, start, day
    ):
        comps[cid][d][metric] = value
    campaigns = [
        CampaignWindow(
            c.campaign_id, c.name, c.event, c.status, c.start, c.end, tuple(c.phases or ())
        )
        for c in await repo.campaigns_between(session, store.tenant_id, store.store_id, start, day)
    ]
    ctx = context_for(store.market, start, day, campaigns, day=day)
    sd = StoreDay(
        day=day,
        columns=series,
        currency=store.currency,
        benchmark=dict(bench),
        competitors={k: dict(v) for k, v in comps.items()},
        baseline=baseline,  # type: ignore[arg-type]
        phases=ctx.phases,
        context_days=frozenset(ctx.days),
        shaped_days=frozenset(ctx.shaped),
        platform=str(getattr(store, "platform", None) or "generic"),
        partition_dimensions=tuple(getattr(store, "partition_dimensions", None) or ()),
    )
    return Loaded(store, sd, ctx.items, len(series))


# ---- impact and triage ---------------------------------------------------------------------

SEVERITY_RANK: dict[str, int] = {v: i for i, v in enumerate(get_args(Severity))}
# ingest's default when a tenant never said (its default tenant, a tenant not heard of yet)
DEFAULT_REPORTING_CURRENCY = "USD"
# The factor of gmv = visitors x cvr x aov a finding's metric moves; ctr moves visitors (clicks)
# and is given the part of its channel's visitor change its click-through explains. A metric
# not here (ratings, refund rate, inquiry conversion, data) has no direct GMV impact: null.
IMPACT_FACTOR = {
    "gmv": "gmv",
    "visitors": "visitors",
    "cvr": "cvr",
    "aov": "aov",
    "ctr": "visitors",
}


# Findings that are the context every other is read in (the market moved, the market declined):
# no action on the store, so none of the store's GMV change is theirs to claim.
CONTEXT_CODES = frozenset({"market_moved", "market_decline"})


def _logmean(a: float, b: float) -> float:
    return a if a == b else (a - b) / (math.log(a) - math.log(b))


def _kpi(rep: EngineReport, metric: str) -> tuple[float, float] | None:
    k = next((k for k in rep.kpis if k.metric == metric), None)
    if k is None or k.value is None or k.baseline is None:
        return None
    return float(k.baseline), float(k.value)


def _scope_of(f: Finding) -> str:
    """The channel of a channel finding; "paid"/"free" for a traffic type's (its facts say so);
    "all" for the store."""
    if "channel" in f.dimensions:
        return f.dimensions["channel"]
    for key in f.evidence:
        tail = key.rsplit(".", 1)[-1]
        if tail in ("paid", "free"):
            return tail
    return "all"


def _per_unit(contribution: float, f0: float, f1: float, g0: float, g1: float) -> float | None:
    """GMV per unit of a factor along the change: contribution / (f1 - f0). For the LMDI split
    that is exactly L(g1, g0) / L(f1, f0), which stays defined when the factor barely moved."""
    if min(f0, f1, g0, g1) > 0:
        return _logmean(g1, g0) / _logmean(f1, f0)
    return contribution / (f1 - f0) if f1 != f0 else None


def attributed_impact(f: Finding, rep: EngineReport) -> float | None:
    """The part of the day's GMV change (in the store's currency) the finding's factor explains,
    from the report's decomposition (exact and order-free): a store-wide finding gets its
    factor's whole contribution; a channel's (or the paid or free traffic's) finding the part
    its own move explains: visitors by the channel's visitor change, cvr by the channel's own
    rate effect (mix versus rate), a traffic-mix finding the mix effect, click-through the
    share of its channel's visitor change the click-through explains. Null when the factor
    is not in the decomposition (ratings, refunds...) or the parts are not known."""
    d = rep.decomposition
    factor = IMPACT_FACTOR.get(f.metric)
    if d is None or factor is None or f.code in CONTEXT_CODES:
        return None
    scope = _scope_of(f)
    if factor == "gmv":
        return _num(d.change) if scope == "all" else rep.facts.get(f"delta.gmv.{scope}")
    contribution = d.contributions.get(factor)
    if contribution is None or not math.isfinite(contribution):
        return None
    if f.metric == "ctr" and scope == "all":
        ctr = rep.funnel.contributions.get("ctr") if rep.funnel is not None else None
        return None if ctr is None else round(ctr, 2)
    if scope == "all" and not (factor == "cvr" and "mix.cvr" in f.evidence):
        return round(contribution, 2)
    visitors, buyers = _kpi(rep, "visitors"), _kpi(rep, "buyers")
    if rep.mix is None or visitors is None:
        return None
    (v0, v1), (g0, g1) = visitors, (d.before, d.after)
    if factor == "cvr":
        if buyers is None or not (v0 and v1):
            return None
        pu = _per_unit(contribution, buyers[0] / v0, buyers[1] / v1, g0, g1)
        if pu is None:
            return None
        if scope == "all":  # a traffic-mix finding: the mix part of the conversion's move
            return round(rep.mix.mix * pu, 2)
        return _segments_part(rep, scope, lambda s: s.rate * pu)
    if factor == "visitors":
        pu = _per_unit(contribution, v0, v1, g0, g1)
        if pu is None:
            return None
        part = _segments_part(rep, scope, lambda s: (s.share_after * v1 - s.share_before * v0) * pu)
        if part is None or f.metric != "ctr":
            return part
        # clicks = impressions x ctr: the share of the channel's visitor change (in logs) that
        # its click-through's change explains
        chg_ctr, chg_vis = rep.facts.get(f"chg.ctr.{scope}"), rep.facts.get(f"chg.visitors.{scope}")
        if chg_ctr is None or chg_vis is None or chg_ctr <= -1 or chg_vis <= -1 or not chg_vis:
            return None
        share = min(1.0, max(0.0, math.log1p(chg_ctr) / math.log1p(chg_vis)))
        return round(part * share, 2)
    return None  # aov has no per-channel split


def _segments_part(rep: EngineReport, scope: str, part: Any) -> float | None:
    """The sum of part(segment) over the channels of a scope (a channel, "paid" or "free")."""
    if rep.mix is None:
        return None
    paid = grains.registry().paid_channels
    if scope in ("paid", "free"):
        segs = [s for s in rep.mix.segments if (s.segment in paid) == (scope == "paid")]
    else:
        segs = [s for s in rep.mix.segments if s.segment == scope]
    if not segs:
        return None
    value = sum(part(s) for s in segs)
    return round(value, 2) if math.isfinite(value) else None


def triage_fields(
    *,
    severity: str,
    impact: float | None,
    confidence: float | None,
    currency: str,
    reporting: str,
    rate: float | None,
    day: dt.date,
) -> dict[str, Any]:
    """A finding's triage columns: its impact in the reporting currency (never a sum across
    currencies: a missing rate says so, and the item sorts after the converted ones of its
    severity), its rank, and priority = |converted impact| x confidence."""
    converted: float | None = None
    missing: str | None = None
    if impact is not None:
        if currency == reporting:
            converted = impact
        elif rate is not None:
            converted = round(impact * rate, 2)
        else:
            missing = f"{currency}->{reporting} on {day.isoformat()}"
    size = abs(converted) if converted is not None else 0.0
    return {
        "impact_currency": currency,
        "reporting_currency": reporting,
        "impact_reporting": converted,
        "fx_missing": missing,
        "severity_rank": SEVERITY_RANK.get(severity, 0),
        "triage_tier": 1 if missing else 0,
        "triage_impact": size,
        "priority": size * (confidence or 0.0),
    }


TRIAGE_COLUMNS = frozenset(
    triage_fields(
        severity="low",
        impact=None,
        confidence=None,
        currency="",
        reporting="",
        rate=None,
        day=dt.date.min,
    )
)


async def reporting_currency(session: AsyncSession, tenant_id: str) -> str:
    tenant = await repo.get_tenant(session, tenant_id)
    return tenant.reporting_currency if tenant is not None else DEFAULT_REPORTING_CURRENCY


async def conversion(
    session: AsyncSession, tenant_id: str, currency: str, day: dt.date
) -> tuple[str, float | None]:
    """(the tenant's reporting currency, the rate of the store's currency to it on the day)."""
    target = await reporting_currency(session, tenant_id)
    if currency == target:
        return target, 1.0
    return target, await repo.fx_rate_on(session, tenant_id, currency, target, day)


async def reprice_findings(
    session: AsyncSession,
    tenant_id: str,
    *,
    currencies: Sequence[str] | None = None,
    since: dt.date | None = None,
) -> int:
    """Convert the tenant's findings again (new rates, a new reporting currency); returns how
    many changed. No event: the findings' contract carries the store-currency impact."""
    target = await reporting_currency(session, tenant_id)
    rows = await repo.findings_to_reprice(session, tenant_id, currencies, since)
    bases = sorted({r.impact_currency for r in rows if r.impact_currency != target})
    table: dict[str, tuple[list[dt.date], list[float]]] = {}
    for base, day, value in await repo.fx_rates_of(session, tenant_id, bases, target):
        days, values = table.setdefault(base, ([], []))
        days.append(day)
        values.append(value)
    changed = 0
    for r in rows:
        rate: float | None = 1.0
        if r.impact_currency != target:
            days, values = table.get(r.impact_currency, ([], []))
            i = bisect.bisect_right(days, r.date)
            rate = values[i - 1] if i else None
        fields = triage_fields(
            severity=r.severity,
            impact=r.expected_gmv_impact,
            confidence=r.confidence,
            currency=r.impact_currency,
            reporting=target,
            rate=rate,
            day=r.date,
        )
        changes = {k: v for k, v in fields.items() if getattr(r, k) != v}
        if changes:
            await repo.update_finding(session, r.id, changes)
            changed += 1
    return changed


# ---- the report document -------------------------------------------------------------------


def _num(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _decomp(d: Decomposition | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "before": _num(d.before),
        "after": _num(d.after),
        "change": _num(d.change),
        "method": d.method,
        "contributions": {k: _num(v) for k, v in d.contributions.items()},
        "shares": {k: _num(v) for k, v in d.shares().items()},
    }


def confidence(f: Finding) -> float:
    """How sure the finding is, from how far its primary fact is past its rule's bound (just
    past: 0.5; twice the bound: 0.75; ...); a data problem is a fact (0.99)."""
    if f.code == "data_incomplete":
        return 0.99
    rule = RULES_BY_CODE.get(f.code)
    bound = abs(rule.when[0].bound) if rule else 0.0
    if not bound:
        return 0.5
    ratio = max(1.0, abs(f.primary) / bound)
    return round(min(0.99, 1 - 0.5 / ratio), 3)


def finding_namespace(tenant_id: str, store_id: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"storeops:diagnosis:{tenant_id}:{store_id}")


def finding_key(code: str, metric: str, dimensions: Mapping[str, str]) -> tuple[str, str, str]:
    return code, metric, repo.canonical(dict(dimensions))


def finding_id(tenant_id: str, store_id: str, day: dt.date, key: tuple[str, str, str]) -> str:
    """Deterministic: the same problem on the same day is the same finding, whoever raises it."""
    return str(uuid.uuid5(finding_namespace(tenant_id, store_id), f"{'|'.join(key)}|{day}"))


def report_document(
    rep: EngineReport,
    *,
    report_id: str,
    store: Any,
    version: int,
    trigger: str,
    created_at: datetime,
    context_items: list[dict[str, Any]],
    finding_ids: Sequence[str],
    board: dict[str, Any] | None = None,
    impacts: Sequence[float | None] | None = None,
) -> dict[str, Any]:
    mix = None
    if rep.mix is not None:
        mix = {
            "before": _num(rep.mix.before),
            "after": _num(rep.mix.after),
            "mix": _num(rep.mix.mix),
            "rate": _num(rep.mix.rate),
            "segments": [{k: _num(v) for k, v in asdict(s).items()} for s in rep.mix.segments],
        }
    if impacts is None:
        impacts = [attributed_impact(f, rep) for f in rep.findings]
    return {
        "id": report_id,
        "store_id": store.store_id,
        "date": rep.day.isoformat(),
        "version": version,
        "baseline": rep.baseline,
        "baseline_days": [d.isoformat() for d in rep.baseline_days],
        "baseline_method": rep.baseline_method,
        "baseline_note": rep.baseline_note,
        "trigger": trigger,
        "created_at": created_at.isoformat(),
        "currency": store.currency,
        "data_complete": rep.data_complete,
        "completeness": {
            "expected": rep.completeness.expected,
            "present": rep.completeness.present,
            "missing": rep.completeness.missing,
            "missing_scopes": rep.completeness.missing_scopes,
            "reason": rep.completeness.reason,
        },
        "kpis": [
            {
                "metric": k.metric,
                "value": _num(k.value),
                "baseline": _num(k.baseline),
                "change": _num(k.change),
                "market_change": _num(k.market_change),
                "relative_change": _num(k.relative_change),
                "anomaly": {
                    "score": _num(k.anomaly_score),
                    "is_anomaly": k.is_anomaly,
                    "direction": k.direction,
                },
            }
            for k in rep.kpis
        ],
        "decomposition": {
            "gmv": _decomp(rep.decomposition),
            "funnel": _decomp(rep.funnel),
            "mix": mix,
        },
        "root_causes": [
            {
                "metric": metric,
                "dimensions": c.element,
                "change": _num(c.change),
                "share_of_change": _num(c.share_of_change),
                "real": _num(c.real),
                "predict": _num(c.predict),
                "leaves": c.leaves,
            }
            for metric, c in rep.root_causes
        ],
        "rca_verdicts": rep.rca_verdicts,
        "findings": [
            {
                "id": fid,
                "code": f.code,
                "severity": f.severity,
                "metric": f.metric,
                "dimensions": f.dimensions,
                "owner": f.owner,
                "title": f.title,
                "action": f.action,
                "evidence": {k: _num(v) for k, v in f.evidence.items()},
                "expected_gmv_impact": _num(impact),
                "confidence": confidence(f),
            }
            for fid, f, impact in zip(finding_ids, rep.findings, impacts, strict=True)
        ],
        "context": {"in_context": rep.context, "items": context_items, "board": board},
        "explained_by_market": rep.explained_by_market,
        "summaries": dict(rep.summaries),
    }


def shape_report(body: dict[str, Any], locale: str) -> dict[str, Any]:
    """The API's view of a stored report: the summary in the locale asked for."""
    summaries = body.get("summaries", {})
    loc = locale if locale in summaries else "en"
    return {**body, "summary": summaries.get(loc, ""), "summary_locale": loc}


# ---- diagnosing ----------------------------------------------------------------------------


@dataclass
class Diagnosed:
    report_id: str
    version: int
    body: dict[str, Any]
    finding_ids: list[str] = field(default_factory=list)


async def run_engine(loaded: Loaded) -> EngineReport:
    """The engine is CPU-bound: run it off the event loop so requests keep being served. The
    day's board (engine/board.py) is made in the same thread and goes into the report's
    context."""

    def work() -> EngineReport:
        rep = diagnose_store_day(loaded.store_day)
        loaded.board = build_board(loaded.store_day)
        return rep

    return await asyncio.to_thread(work)


async def persist_diagnosis(
    session: AsyncSession,
    loaded: Loaded,
    rep: EngineReport,
    *,
    trigger: str,
    locale: str = "en",
    now: datetime | None = None,
) -> Diagnosed:
    """Store the report as the day's next version, apply the findings' lifecycle, stage
    diagnosis_completed and the finding events."""
    now = now or _now()
    store = loaded.store
    tenant, sid, day = store.tenant_id, store.store_id, rep.day
    version = await repo.next_report_version(session, tenant, sid, day)
    report_id = str(uuid.uuid4())
    keys = [finding_key(f.code, f.metric, f.dimensions) for f in rep.findings]
    fids = [finding_id(tenant, sid, day, k) for k in keys]
    impacts = [attributed_impact(f, rep) for f in rep.findings]
    body = report_document(
        rep,
        report_id=report_id,
        store=store,
        version=version,
        trigger=trigger,
        created_at=now,
        context_items=loaded.context_items,
        board=loaded.board,
        finding_ids=fids,
        impacts=impacts,
    )
    await repo.insert_report(
        session,
        {
            "id": report_id,
            "tenant_id": tenant,
            "store_id": sid,
            "date": day,
            "version": version,
            "baseline": rep.baseline,
            "trigger": trigger,
            "data_complete": rep.data_complete,
            "finding_count": len(rep.findings),
            "body": body,
            "created_at": now,
        },
    )
    events: list[Event] = await apply_findings(
        session, store, day, rep, fids, report_id, version, now, impacts=impacts
    )
    summaries = body["summaries"]
    loc = locale if locale in summaries else "en"
    events.append(
        DiagnosisCompletedV1(
            tenant_id=tenant,
            store_id=sid,
            report_id=uuid.UUID(report_id),
            date=day,
            report_version=version,
            baseline=rep.baseline,
            summary=summaries.get(loc) or "-",
            summary_locale=loc,
            kpis=[KpiV1.model_validate(k.model_dump()) for k in rep.kpis],
            finding_ids=[uuid.UUID(f) for f in fids],
            data_complete=rep.data_complete,
        )
    )
    await stage(session, *events)
    metrics.REPORTS.labels(trigger).inc()
    return Diagnosed(report_id, version, body, fids)


def _state(row: Any, **over: Any) -> dict[str, Any]:
    values = {
        "tenant_id": row.tenant_id,
        "store_id": row.store_id,
        "finding_id": uuid.UUID(row.id),
        "date": row.date,
        "code": row.code,
        "severity": row.severity,
        "metric": row.metric,
        "dimensions": json.loads(row.dims),
        "owner": row.owner,
        "title": row.title,
        "action": row.action,
        "status": row.status,
        "expected_gmv_impact": row.expected_gmv_impact,
        "confidence": row.confidence,
        "report_id": uuid.UUID(row.report_id) if row.report_id else None,
    }
    values.update(over)
    return values


def finding_event(row: Any, kind: str, **over: Any) -> Event:
    values = _state(row, **over)
    if kind == "opened":
        return FindingOpenedV1.model_validate(values)
    if kind == "closed":
        values["status"] = "resolved"
        values.setdefault("resolution", over.get("resolution") or row.resolution or "resolved")
        return FindingClosedV1.model_validate(values)
    return FindingUpdatedV1.model_validate(values)


async def _transition(
    session: AsyncSession,
    row: Any,
    action: str,
    to_status: str,
    now: datetime,
    *,
    actor: str = SYSTEM,
    key_id: str | None = None,
    note: str | None = None,
    until: datetime | None = None,
) -> None:
    await repo.add_transition(
        session,
        {
            "finding_id": row.id,
            "tenant_id": row.tenant_id,
            "action": action,
            "from_status": getattr(row, "status", None),
            "to_status": to_status,
            "actor": actor,
            "key_id": key_id,
            "note": note,
            "until": until,
            "at": now,
        },
    )


class _Row:
    """A finding row as a mutable record (what was read, plus the changes being written)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.__dict__.update(data)


async def apply_findings(
    session: AsyncSession,
    store: Any,
    day: dt.date,
    rep: EngineReport,
    fids: Sequence[str],
    report_id: str,
    version: int,
    now: datetime,
    *,
    impacts: Sequence[float | None] | None = None,
) -> list[Event]:
    """The findings' lifecycle for a new report of a day.

    - A problem (code, metric, dimensions) of this day already has its finding: it is updated
      (never a second one: the id is deterministic and the table has the key unique).
    - A finding of this day the newest report no longer raises is closed (superseded).
    - When no later day has a report, open findings of the week before are carried on by this
      day's finding (closed as superseded, their acknowledgement or snooze inherited) or, not
      raised and recovered past half their bound, closed as auto_resolved (engine.advance) once
      AUTO_RESOLVE_DAYS old (until then they stay in triage for their owner).
    """
    tenant, sid = store.tenant_id, store.store_id
    events: list[Event] = []
    if impacts is None:
        impacts = [attributed_impact(f, rep) for f in rep.findings]
    reporting, rate = await conversion(session, tenant, store.currency, day)
    existing = await repo.findings_of_days(
        session, tenant, sid, day - timedelta(days=EARLIER_WINDOW_DAYS), day + timedelta(days=400)
    )
    later = any(r.date > day for r in existing) or await repo.has_later_report(
        session, tenant, sid, day
    )
    today = {(r.code, r.metric, r.dims): r for r in existing if r.date == day}
    earlier = [r for r in existing if r.date < day and r.status in OPEN_STATUSES]
    inherit: dict[tuple[str, str, str], Any] = {}
    if not later:
        for r in sorted(earlier, key=lambda r: r.date):
            inherit[(r.code, r.metric, r.dims)] = r
    raised: set[tuple[str, str, str]] = set()
    for f, fid, attributed in zip(rep.findings, fids, impacts, strict=True):
        key = finding_key(f.code, f.metric, f.dimensions)
        raised.add(key)
        conf = confidence(f)
        impact = _num(attributed)
        content = {
            "owner": f.owner,
            "severity": f.severity,
            "title": f.title,
            "action": f.action,
            "evidence": {k: _num(v) for k, v in f.evidence.items()},
            "expected_gmv_impact": impact,
            "confidence": conf,
            **triage_fields(
                severity=f.severity,
                impact=impact,
                confidence=conf,
                currency=store.currency,
                reporting=reporting,
                rate=rate,
                day=day,
            ),
        }
        row = today.get(key)
        if row is None:
            prior = inherit.get(key)
            status = prior.status if prior is not None else "open"
            values = {
                "id": fid,
                "tenant_id": tenant,
                "store_id": sid,
                "date": day,
                "code": f.code,
                "metric": f.metric,
                "dims": key[2],
                **content,
                "status": status,
                "resolution": None,
                "snoozed_until": prior.snoozed_until if prior is not None else None,
                "report_id": report_id,
                "report_version": version,
                "opened_at": now,
                "updated_at": now,
                "closed_at": None,
            }
            if await repo.insert_finding(session, values):
                new = _Row(values)
                await _transition(session, _Row({**values, "status": None}), "opened", status, now)
                events.append(finding_event(new, "opened"))
                continue
            # A concurrent diagnosis of the same day inserted it first: update it instead.
            row = (await repo.findings_by_ids(session, [fid]))[0]
        changes: dict[str, Any] = {
            k: v for k, v in content.items() if getattr(row, k) != v and k != "evidence"
        }
        reopen = row.status == "resolved" and row.resolution == "superseded"
        if reopen:
            changes.update(status="open", resolution=None, closed_at=None)
        meaningful = bool(changes.keys() - TRIAGE_COLUMNS - {"confidence", "expected_gmv_impact"})
        changes.update(
            evidence=content["evidence"],
            report_id=report_id,
            report_version=version,
            updated_at=now,
            confidence=conf,
            expected_gmv_impact=impact,
            **{k: content[k] for k in TRIAGE_COLUMNS},
        )
        await repo.update_finding(session, row.id, changes)
        merged = _Row({**row._mapping, **changes})
        if reopen:
            await _transition(session, row, "reopened", "open", now, note="raised again")
        if meaningful or reopen:
            events.append(finding_event(merged, "updated"))
    for key, row in today.items():
        if key in raised or row.status == "resolved":
            continue
        closed = {
            "status": "resolved",
            "resolution": "superseded",
            "closed_at": now,
            "updated_at": now,
            "report_id": report_id,
            "report_version": version,
        }
        await repo.update_finding(session, row.id, closed)
        await _transition(
            session,
            row,
            "superseded",
            "resolved",
            now,
            note=f"not raised by report version {version} of its day",
        )
        events.append(
            finding_event(_Row({**row._mapping, **closed}), "closed", resolution="superseded")
        )
    if not later and earlier:
        opens = [
            OpenFinding(
                uuid.UUID(r.id),
                Finding(
                    r.code,
                    r.severity,
                    r.metric,
                    json.loads(r.dims),
                    r.owner,
                    r.title,
                    r.action,
                    {},
                    0.0,
                ),
                r.date,
                r.date,
            )
            for r in earlier
        ]
        t = advance(opens, rep.findings, day, rep.facts)
        by_id = {r.id: r for r in earlier}
        recovered = [o for o in t.closed if (day - o.opened).days >= AUTO_RESOLVE_DAYS]
        for of, resolution in [(o, "superseded") for o in t.updated] + [
            (o, "auto_resolved") for o in recovered
        ]:
            row = by_id[str(of.finding_id)]
            closed = {
                "status": "resolved",
                "resolution": resolution,
                "closed_at": now,
                "updated_at": now,
            }
            await repo.update_finding(session, row.id, closed)
            note = (
                f"carried on by the finding of {day}"
                if resolution == "superseded"
                else f"recovered on {day}"
            )
            await _transition(session, row, resolution, "resolved", now, note=note)
            events.append(
                finding_event(_Row({**row._mapping, **closed}), "closed", resolution=resolution)
            )
    return events


# ---- on request ----------------------------------------------------------------------------


async def _visible_store(session: AsyncSession, principal: Principal, store_id: str) -> Any:
    principal.check_store(store_id)
    store = await repo.get_store(session, principal.tenant_id, store_id)
    if store is None:
        if await repo.has_series(session, principal.tenant_id, store_id):
            raise Conflict(
                f"Store {store_id!r} has data but its registration has not reached diagnosis "
                "yet; retry in a moment"
            )
        raise NotFound(f"Store {store_id!r} not found")
    return store


async def request_diagnosis(
    read: AsyncSession,
    write: AsyncSession,
    principal: Principal,
    store_id: str,
    body: DiagnosisRequest,
    history_days: int,
) -> dict[str, Any]:
    store = await _visible_store(read, principal, store_id)
    today = local_today(store.timezone)
    if body.date > today:
        raise _invalid(
            ["body", "date"],
            f"{body.date} is in the future for this store (its local date is {today})",
        )
    loaded = await load_store_day(read, store, body.date, body.baseline, history_days)
    await read.rollback()  # release the read snapshot before the CPU-bound part
    if not loaded.rows:
        raise Conflict(
            f"No data yet for store {store_id!r} on or in the {history_days} days before "
            f"{body.date}: nothing to diagnose"
        )
    started = time.perf_counter()
    rep = await run_engine(loaded)
    done = await persist_diagnosis(write, loaded, rep, trigger="request", locale=body.locale)
    metrics.DURATION.labels("request").observe(time.perf_counter() - started)
    return shape_report(done.body, body.locale)


async def store_board(
    session: AsyncSession,
    principal: Principal,
    store_id: str,
    day: dt.date | None,
    baseline: str | None,
    history_days: int,
) -> dict[str, Any]:
    """GET /v1/stores/{id}/board: the day's KPIs by channel and free / paid against the
    baseline and the market, the market, and the competitors beside the store (yesterday, in the
    store's timezone, by default)."""
    store = await _visible_store(session, principal, store_id)
    today = local_today(store.timezone)
    day = day or today - timedelta(days=1)
    if day > today:
        raise _invalid(
            ["query", "date"],
            f"{day} is in the future for this store (its local date is {today})",
        )
    loaded = await load_store_day(session, store, day, baseline, history_days)
    await session.rollback()
    if not loaded.rows:
        raise Conflict(f"No data yet for store {store_id!r} on or before {day}")
    board = await asyncio.to_thread(build_board, loaded.store_day)
    return {"store_id": store_id, **board}


async def get_report(
    session: AsyncSession,
    principal: Principal,
    store_id: str,
    day: dt.date,
    version: int | None,
    locale: str,
) -> dict[str, Any]:
    await _visible_store(session, principal, store_id)
    row = await repo.get_report(session, principal.tenant_id, store_id, day, version)
    if row is None:
        what = f"version {version} of the report" if version else "a report"
        raise NotFound(f"Store {store_id!r} has no {what} for {day}")
    return shape_report(row.body, locale)


def encode_cursor(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(value, dict):
            raise ValueError
        return value
    except (ValueError, TypeError) as exc:
        raise _invalid(["query", "cursor"], "not a cursor this service issued") from exc


async def list_reports(
    session: AsyncSession,
    principal: Principal,
    store_id: str,
    start: dt.date | None,
    end: dt.date | None,
    limit: int,
    cursor: str | None,
    locale: str,
) -> ReportPage:
    if start and end and end < start:
        raise _invalid(["query", "end"], "end is before start")
    await _visible_store(session, principal, store_id)
    c = decode_cursor(cursor)
    before = None
    if c is not None:
        try:
            before = dt.date.fromisoformat(str(c["before"]))
        except (KeyError, ValueError) as exc:
            raise _invalid(["query", "cursor"], "not a cursor this service issued") from exc
    rows = await repo.list_reports(
        session, principal.tenant_id, store_id, start, end, before, limit + 1
    )
    items = [
        ReportListItem(
            id=r.id,
            date=r.date,
            version=r.version,
            baseline=r.baseline,
            trigger=r.trigger,
            data_complete=r.data_complete,
            finding_count=r.finding_count,
            created_at=r.created_at,
            summary=shape_report(r.body, locale)["summary"],
            severities=sorted({f["severity"] for f in r.body.get("findings", [])}),
        )
        for r in rows[:limit]
    ]
    nxt = encode_cursor({"before": rows[limit - 1].date.isoformat()}) if len(rows) > limit else None
    return ReportPage(items=items, next_cursor=nxt)


# ---- triage --------------------------------------------------------------------------------


def finding_out(row: Any, history: Sequence[Any] | None = None) -> FindingOut:
    return FindingOut(
        id=row.id,
        store_id=row.store_id,
        date=row.date,
        code=row.code,
        metric=row.metric,
        dimensions=json.loads(row.dims),
        owner=row.owner,
        severity=row.severity,
        title=row.title,
        action=row.action,
        evidence=row.evidence,
        expected_gmv_impact=row.expected_gmv_impact,
        impact_currency=row.impact_currency,
        impact_reporting=row.impact_reporting,
        reporting_currency=row.reporting_currency,
        fx_missing=row.fx_missing,
        confidence=row.confidence,
        priority=row.priority,
        status=row.status,
        resolution=row.resolution,
        snoozed_until=row.snoozed_until,
        report_id=row.report_id,
        report_version=row.report_version,
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        closed_at=row.closed_at,
        history=[
            TransitionOut(
                action=h.action,
                from_status=h.from_status,
                to_status=h.to_status,
                actor=h.actor,
                note=h.note,
                until=h.until,
                at=h.at,
            )
            for h in history
        ]
        if history is not None
        else None,
    )


GROUP_SCAN_LIMIT = 20_000
# group=cause: findings of one cause in one market group when their days are at most this far
# apart and their primary facts (relative changes) within this factor of each other.
GROUP_MAX_DAYS = 1
GROUP_MAX_RATIO = 2.0


def triage_key(row: Any) -> tuple[Any, ...]:
    """The triage order as a sort key (ascending): severity, rate known, impact, confidence."""
    return (
        -row.severity_rank,
        row.triage_tier,
        -row.triage_impact,
        -(row.confidence or 0.0),
        row.id,
    )


def magnitude(row: Any) -> float | None:
    """A finding's size as its rule's primary fact (a relative change, e.g. -0.4 = down 40%)."""
    evidence = row.evidence or {}
    rule = RULES_BY_CODE.get(row.code)
    if rule is not None:
        prefix = rule.when[0].fact.split("{scope}")[0]
        for k, v in evidence.items():
            if k.startswith(prefix) and isinstance(v, int | float):
                return float(v)
    first = next(iter(evidence.values()), None)
    return float(first) if isinstance(first, int | float) else None


def comparable(a: float | None, b: float | None, ratio: float = GROUP_MAX_RATIO) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a == 0 or b == 0 or (a > 0) != (b > 0):
        return a == b
    return max(abs(a), abs(b)) / min(abs(a), abs(b)) <= ratio


def group_by_cause(rows: Sequence[Any], markets: Mapping[str, str]) -> list[FindingGroup]:
    """Fold the same cause (code, metric, dimensions) into one item only where it plausibly is
    one: stores of the same market, on the same or adjacent days, moved by a comparable amount.
    A store whose market is not known yet stays on its own. Ranked as findings are."""
    buckets: dict[tuple[Any, ...], list[list[Any]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (r.date, -abs(magnitude(r) or 0.0), r.id)):
        market = markets.get(r.store_id)
        key = (r.code, r.metric, r.dims, market, None if market else r.store_id)
        size = magnitude(r)
        for cluster in buckets[key]:
            anchor = cluster[0]
            if (r.date - anchor.date).days <= GROUP_MAX_DAYS and comparable(
                size, magnitude(anchor)
            ):
                cluster.append(r)
                break
        else:
            buckets[key].append([r])
    out = []
    for (code, metric, dims, market, _), clusters in buckets.items():
        for members in clusters:
            members.sort(key=triage_key)
            top = members[0]
            store_ids = sorted({r.store_id for r in members})
            n = len(store_ids)
            currencies = {r.impact_currency for r in members}
            local = [r.expected_gmv_impact for r in members if r.expected_gmv_impact is not None]
            converted = [r.impact_reporting for r in members if r.impact_reporting is not None]
            out.append(
                FindingGroup(
                    code=code,
                    metric=metric,
                    dimensions=json.loads(dims),
                    market=market,
                    start=min(r.date for r in members),
                    end=max(r.date for r in members),
                    owner=top.owner,
                    severity=top.severity,
                    title=top.title
                    if n == 1
                    else f"market-wide in {market}: {n} stores - {top.title}",
                    stores=n,
                    store_ids=store_ids,
                    findings=len(members),
                    finding_ids=[r.id for r in members],
                    expected_gmv_impact=round(sum(local), 2)
                    if local and len(currencies) == 1
                    else None,
                    impact_currency=next(iter(currencies)) if len(currencies) == 1 else None,
                    impact_reporting=round(sum(converted), 2) if converted else None,
                    reporting_currency=next(
                        (r.reporting_currency for r in members if r.reporting_currency), None
                    ),
                    fx_missing=sorted({r.fx_missing for r in members if r.fx_missing}),
                    priority=round(sum(r.priority for r in members), 4),
                )
            )

    def rank(g: FindingGroup) -> tuple[Any, ...]:
        tier = 1 if g.impact_reporting is None and g.fx_missing else 0
        return (
            -SEVERITY_RANK.get(g.severity, 0),
            tier,
            -abs(g.impact_reporting or 0.0),
            -g.priority,
            g.code,
            g.market or "",
            g.start,
            g.finding_ids[0],
        )

    return sorted(out, key=rank)


async def list_findings(
    session: AsyncSession,
    principal: Principal,
    *,
    status: Sequence[str] | None,
    owner: str | None,
    store_id: str | None,
    severity: Sequence[str] | None,
    start: dt.date | None,
    end: dt.date | None,
    group: str | None,
    limit: int,
    cursor: str | None,
) -> FindingPage:
    """Triage: severity first (critical > high > medium > low), then the impact in the
    tenant's reporting currency (an item whose rate is missing after the converted ones of its
    severity), then confidence."""
    if start and end and end < start:
        raise _invalid(["query", "end"], "end is before start")
    statuses = list(status) if status else ["open", "acknowledged"]
    stores: list[str] | None = None
    if principal.store_ids is not None:
        stores = sorted(principal.store_ids)
    if store_id is not None:
        stores = [store_id] if principal.can_see_store(store_id) else []
    c = decode_cursor(cursor)
    common: dict[str, Any] = {
        "statuses": statuses,
        "store_ids": stores,
        "owner": owner,
        "severities": severity,
        "start": start,
        "end": end,
    }
    if group == "cause":
        rows = await repo.search_findings(
            session, principal.tenant_id, after=None, limit=GROUP_SCAN_LIMIT, **common
        )
        markets = await repo.store_markets(session, principal.tenant_id, {r.store_id for r in rows})
        ranked = group_by_cause(rows, markets)
        try:
            offset = int((c or {}).get("offset", 0))
        except (ValueError, TypeError) as exc:
            raise _invalid(["query", "cursor"], "not a cursor this service issued") from exc
        page = ranked[offset : offset + limit]
        nxt = encode_cursor({"offset": offset + limit}) if offset + limit < len(ranked) else None
        return FindingPage(items=[], groups=page, next_cursor=nxt)
    after = None
    if c is not None:
        after = c.get("k")
        if not isinstance(after, list) or len(after) != len(repo.TRIAGE_ORDER):
            raise _invalid(["query", "cursor"], "not a cursor this service issued")
    rows = await repo.search_findings(
        session, principal.tenant_id, after=after, limit=limit + 1, **common
    )
    items = [finding_out(r) for r in rows[:limit]]
    nxt = encode_cursor({"k": repo.triage_position(rows[limit - 1])}) if len(rows) > limit else None
    return FindingPage(items=items, groups=None, next_cursor=nxt)


async def get_finding(session: AsyncSession, principal: Principal, finding_id: str) -> FindingOut:
    row = await repo.get_finding(session, principal.tenant_id, finding_id)
    if row is None or not principal.can_see_store(row.store_id):
        raise NotFound(f"Finding {finding_id!r} not found")
    return finding_out(row, await repo.transitions_of(session, finding_id))


# action -> (statuses it applies to, resulting status)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "acknowledge": (("open", "snoozed"), "acknowledged"),
    "snooze": (("open", "acknowledged"), "snoozed"),
    "resolve": (("open", "acknowledged", "snoozed"), "resolved"),
    "reopen": (("resolved",), "open"),
}


async def transition_finding(
    session: AsyncSession,
    principal: Principal,
    finding_id: str,
    body: TransitionIn,
    now: datetime | None = None,
) -> FindingOut:
    now = now or _now()
    row = await repo.get_finding_for_update(session, principal.tenant_id, finding_id)
    if row is None or not principal.can_see_store(row.store_id):
        raise NotFound(f"Finding {finding_id!r} not found")
    allowed, target = TRANSITIONS[body.action]
    if row.status not in allowed:
        raise Conflict(
            f"Cannot {body.action} a finding that is {row.status} "
            f"(allowed from: {', '.join(allowed)})",
            current_status=row.status,
        )
    changes: dict[str, Any] = {"status": target, "updated_at": now}
    until = None
    if body.action == "snooze":
        until = body.until
        if until is None:
            raise _invalid(["body", "until"], "snooze needs until (an RFC 3339 time)")
        if until <= now:
            raise _invalid(["body", "until"], "until must be in the future")
        changes["snoozed_until"] = until
    elif body.action == "resolve":
        changes.update(resolution="resolved", closed_at=now, snoozed_until=None)
    elif body.action == "reopen":
        changes.update(resolution=None, closed_at=None, snoozed_until=None)
    else:
        changes["snoozed_until"] = None
    await repo.update_finding(session, row.id, changes)
    await _transition(
        session,
        row,
        body.action,
        target,
        now,
        actor=principal.user_id,
        key_id=principal.key_id,
        note=body.note,
        until=until,
    )
    merged = _Row({**row._mapping, **changes})
    if target == "resolved":
        await stage(session, finding_event(merged, "closed", resolution="resolved"))
    else:
        await stage(session, finding_event(merged, "updated"))
    metrics.TRANSITIONS.labels(body.action).inc()
    return finding_out(merged, await repo.transitions_of(session, row.id))


async def wake_snoozed(session: AsyncSession, now: datetime | None = None) -> int:
    """A snoozed finding re-surfaces (open again) once its `until` has passed."""
    now = now or _now()
    rows = await repo.due_snoozed(session, now)
    for row in rows:
        changes = {"status": "open", "snoozed_until": None, "updated_at": now}
        await repo.update_finding(session, row.id, changes)
        await _transition(session, row, "snooze_expired", "open", now)
        await stage(session, finding_event(_Row({**row._mapping, **changes}), "updated"))
    return len(rows)


async def refresh_open_gauge(session: AsyncSession) -> None:
    counts = await repo.open_counts(session)
    metrics.set_open(counts)
