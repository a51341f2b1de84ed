"""Use cases of diagnosis: keep the copy of the series, diagnose store-days into versioned
reports, keep the findings' lifecycle, triage them. Events are staged in the caller's
transaction (the outbox); the request or consumer boundary commits."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis import metrics
from services.diagnosis import repository as repo
from services.diagnosis.context import CampaignWindow, context_for
from services.diagnosis.engine.baselines import COMPARABLE_LOOKBACK_WEEKS, comparable_days
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
    MetricsDeletedV1,
    MetricsIngestedV1,
    StoreRegisteredV1,
    StoreUpdatedV1,
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
                "expected_gmv_impact": _num(f.expected_gmv_impact),
                "confidence": confidence(f),
            }
            for fid, f in zip(finding_ids, rep.findings, strict=True)
        ],
        "context": {"in_context": rep.context, "items": context_items},
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
    """The engine is CPU-bound: run it off the event loop so requests keep being served."""
    return await asyncio.to_thread(diagnose_store_day, loaded.store_day)


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
    body = report_document(
        rep,
        report_id=report_id,
        store=store,
        version=version,
        trigger=trigger,
        created_at=now,
        context_items=loaded.context_items,
        finding_ids=fids,
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
        session, store, day, rep, fids, report_id, version, now
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
    for f, fid in zip(rep.findings, fids, strict=True):
        key = finding_key(f.code, f.metric, f.dimensions)
        raised.add(key)
        conf = confidence(f)
        impact = _num(f.expected_gmv_impact)
        content = {
            "owner": f.owner,
            "severity": f.severity,
            "title": f.title,
            "action": f.action,
            "evidence": {k: _num(v) for k, v in f.evidence.items()},
            "expected_gmv_impact": impact,
            "confidence": conf,
            "priority": abs(impact or 0.0) * conf,
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
        meaningful = bool(changes.keys() - {"priority", "confidence", "expected_gmv_impact"})
        changes.update(
            evidence=content["evidence"],
            report_id=report_id,
            report_version=version,
            updated_at=now,
            priority=content["priority"],
            confidence=conf,
            expected_gmv_impact=impact,
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
        groups: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
        for r in rows:
            groups[(r.code, r.metric, r.dims)].append(r)
        ranked = sorted(
            groups.items(),
            key=lambda kv: (-sum(r.priority for r in kv[1]), kv[0]),
        )
        offset = int((c or {}).get("offset", 0)) if c else 0
        page = ranked[offset : offset + limit]
        out = []
        for (code, metric, dims), members in page:
            store_ids = sorted({r.store_id for r in members})
            impact = [r.expected_gmv_impact for r in members if r.expected_gmv_impact is not None]
            top = max(members, key=lambda r: (r.priority, r.id))
            n = len(store_ids)
            out.append(
                FindingGroup(
                    code=code,
                    metric=metric,
                    dimensions=json.loads(dims),
                    owner=top.owner,
                    severity=max(
                        (r.severity for r in members),
                        key=("low", "medium", "high", "critical").index,
                    ),
                    title=top.title if n == 1 else f"platform-wide: {n} stores - {top.title}",
                    stores=n,
                    store_ids=store_ids,
                    findings=len(members),
                    finding_ids=[r.id for r in sorted(members, key=lambda r: -r.priority)],
                    expected_gmv_impact=round(sum(impact), 2) if impact else None,
                    priority=round(sum(r.priority for r in members), 4),
                )
            )
        nxt = encode_cursor({"offset": offset + limit}) if offset + limit < len(ranked) else None
        return FindingPage(items=[], groups=out, next_cursor=nxt)
    after = None
    if c is not None:
        try:
            after = (float(c["p"]), str(c["id"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise _invalid(["query", "cursor"], "not a cursor this service issued") from exc
    rows = await repo.search_findings(
        session, principal.tenant_id, after=after, limit=limit + 1, **common
    )
    items = [finding_out(r) for r in rows[:limit]]
    nxt = (
        encode_cursor({"p": rows[limit - 1].priority, "id": rows[limit - 1].id})
        if len(rows) > limit
        else None
    )
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
