"""Use cases of campaigns: decisions and invariants; events are staged in the same transaction."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns import repository as repo
from services.campaigns.planning import allocation, cpm, gantt, templates
from services.campaigns.schemas import (
    AllocationIn,
    AllocationOut,
    BookingCreate,
    BookingOut,
    CalendarOut,
    CalendarSettingsIn,
    CalendarSettingsOut,
    CampaignCreate,
    CampaignOut,
    CampaignPage,
    CampaignUpdate,
    Conflict,
    DependencyIn,
    DependencyOut,
    ExplainOut,
    FeedTokenOut,
    FestivalOut,
    GanttOut,
    HolidayOut,
    MoveResult,
    OutcomeOut,
    PhaseOut,
    SlotCreate,
    SlotOut,
    SlotRules,
    TaskBookingCreate,
    TaskMove,
    TaskOut,
    TeamFeedTokenOut,
)
from shared.auth import Principal
from shared.calendar import (
    ANY_PLATFORM,
    CalendarOverride,
    FestivalDef,
    Occurrence,
    WorkDays,
    WorkingCalendar,
    festival_markets,
    festivals_between,
    has_public_holidays,
    is_market,
    known_keys,
    makeup_working_days,
    markets_of,
    next_occurrence,
    parse_definitions,
    provisional_years,
    public_holidays,
)
from shared.errors import Conflict as ConflictError
from shared.errors import NotFound, Unauthorized, ValidationFailed
from shared.events.campaigns import CampaignCreatedV1, CampaignUpdatedV1, PhaseV1, TaskDueV1, TaskV1
from shared.events.diagnosis import (
    DiagnosisCompletedV1,
    FindingClosedV1,
    FindingOpenedV1,
    FindingUpdatedV1,
)
from shared.events.ingest import StoreRegisteredV1, StoreUpdatedV1
from shared.outbox import stage

DEFAULT_CAPACITY = 2  # concurrent tasks per owner role, unless the campaign says otherwise
MAX_CALENDAR_DAYS = 731
ALLOCATION_RULE = "tier-ordered round-robin with a share cap"
FEED_PREFIX = "cal_"


def _now() -> datetime:
    return datetime.now(UTC)


def _today() -> dt.date:
    return _now().date()


def _invalid(loc: list[Any], msg: str) -> ValidationFailed:
    return ValidationFailed([{"loc": loc, "msg": msg}], detail=msg)


def encode_cursor(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["after"]
        if not isinstance(value, str):
            raise ValueError
        return value
    except (ValueError, KeyError, TypeError) as exc:
        raise _invalid(["query", "cursor"], "not a cursor this service issued") from exc


# ---- stores (from ingest events) ------------------------------------------------------------


async def on_store_event(session: AsyncSession, event: StoreRegisteredV1 | StoreUpdatedV1) -> None:
    await repo.upsert_store(
        session,
        {
            "tenant_id": event.tenant_id,
            "store_id": event.store_id,
            "name": event.name,
            "timezone": event.timezone,
            "market": event.market,
            "currency": event.currency,
            "status": event.status,
            "platform": event.platform,
            "as_of": event.occurred_at,
        },
    )


async def _store(session: AsyncSession, principal: Principal, store_id: str) -> Any:
    principal.check_store(store_id)
    store = await repo.get_store(session, principal.tenant_id, store_id)
    if store is None:
        raise NotFound(f"Store {store_id!r} not found")
    return store


# ---- calendar -------------------------------------------------------------------------------


@dataclass
class TenantCalendar:
    festivals: list[FestivalDef]
    markets: dict[str, CalendarOverride]

    def working(self, market: str) -> WorkingCalendar:
        return WorkingCalendar(market, self.markets.get(market, CalendarOverride()))


async def tenant_calendar(session: AsyncSession, tenant_id: str) -> TenantCalendar:
    row = await repo.get_settings(session, tenant_id)
    if row is None:
        return TenantCalendar([], {})
    return TenantCalendar(
        parse_definitions(row.festivals),
        {k: CalendarOverride.model_validate(v) for k, v in row.markets.items()},
    )


async def get_calendar(
    session: AsyncSession, principal: Principal, market: str, start: dt.date, end: dt.date
) -> CalendarOut:
    market = market.upper()
    if end < start:
        raise _invalid(["query", "end"], "end is before start")
    if (end - start).days > MAX_CALENDAR_DAYS:
        raise _invalid(["query", "end"], f"at most {MAX_CALENDAR_DAYS} days at a time")
    tc = await tenant_calendar(session, principal.tenant_id)
    _check_market(market, tc)
    cal = tc.working(market)
    pending = set(provisional_years(market, start, end))
    return CalendarOut(
        market=market,
        start=start,
        end=end,
        festivals=[
            _festival_out(o)
            for o in festivals_between(market, start, end, tc.festivals, ANY_PLATFORM)
        ],
        holidays=[
            HolidayOut(date=d, name=n, provisional=d.year in pending)
            for d, n in public_holidays(market, start, end)
        ],
        working_weekends=[
            d for d in makeup_working_days(market, start, end) if cal.is_working_day(d)
        ],
        off_days=cal.off_days(start, end),
        provisional_years=sorted(pending),
    )


def _check_market(market: str, tc: TenantCalendar) -> None:
    """A market is a country the retail calendar has festivals for, or whose public holidays
    the `holidays` package knows; anything else (XX, a typo) is refused with the real list."""
    with_festivals = festival_markets(tc.festivals)
    if is_market(market) and (market in with_festivals or has_public_holidays(market)):
        return
    err = _invalid(
        ["query", "market"],
        f"unknown market {market!r}: an ISO 3166-1 alpha-2 country code. Markets with "
        f"shopping festivals: {', '.join(with_festivals)}; public holidays are known for the "
        "other countries the `holidays` package supports",
    )
    err.extra["markets"] = with_festivals
    raise err


def _festival_out(o: Occurrence) -> FestivalOut:
    return FestivalOut(
        key=o.key,
        name=o.name,
        date=o.date,
        start=o.start,
        end=o.end,
        phases=[PhaseOut(name=p.name, start=p.start, end=p.end, kind=p.kind) for p in o.phases],
        source=o.source,
        provisional=o.provisional,
        platforms=list(o.platforms),
    )


async def put_calendar_settings(
    session: AsyncSession, principal: Principal, body: CalendarSettingsIn
) -> CalendarSettingsOut:
    errors: list[dict[str, Any]] = []
    for i, raw in enumerate(body.festivals):
        try:
            parse_definitions([raw])
        except pydantic.ValidationError as exc:
            for e in exc.errors():
                errors.append({"loc": ["body", "festivals", i, *e["loc"]], "msg": e["msg"]})
    markets: dict[str, dict[str, Any]] = {}
    for market, raw in body.markets.items():
        if not is_market(market):
            errors.append({"loc": ["body", "markets", market], "msg": "not an ISO country code"})
            continue
        try:
            markets[market] = CalendarOverride.model_validate(raw).model_dump(mode="json")
        except pydantic.ValidationError as exc:
            for e in exc.errors():
                errors.append({"loc": ["body", "markets", market, *e["loc"]], "msg": e["msg"]})
    if errors:
        raise ValidationFailed(errors)
    festivals = [
        d.model_dump(mode="json", by_alias=True) for d in parse_definitions(body.festivals)
    ]
    await repo.put_settings(
        session,
        {
            "tenant_id": principal.tenant_id,
            "festivals": festivals,
            "markets": markets,
            "updated_at": _now(),
        },
    )
    return CalendarSettingsOut(festivals=festivals, markets=markets)


async def get_calendar_settings(session: AsyncSession, principal: Principal) -> CalendarSettingsOut:
    row = await repo.get_settings(session, principal.tenant_id)
    if row is None:
        return CalendarSettingsOut(festivals=[], markets={})
    return CalendarSettingsOut(festivals=row.festivals, markets=row.markets)


# ---- planning -------------------------------------------------------------------------------


@dataclass
class PlanTask:
    id: str
    name: str
    owner_role: str
    duration: int
    kind: str
    status: str
    copy_type: str | None
    pin: dt.date | None
    not_before: dt.date | None
    deps: list[cpm.Dep]
    source: str = "template"
    finding_id: str | None = None


@dataclass
class Computed:
    tasks: dict[str, dict[str, Any]]  # task id -> scheduled columns
    plan_start: dt.date  # where the forward pass starts: stored as the campaign's start
    start: dt.date
    end: dt.date
    critical_path: list[str]
    conflicts: list[Conflict]
    workdays: WorkDays


def _workdays(cal: WorkingCalendar, around: dt.date) -> WorkDays:
    return cal.index(around - dt.timedelta(days=730), around + dt.timedelta(days=400))


def compute(
    tasks: Sequence[PlanTask],
    cal: WorkingCalendar,
    *,
    deadline: dt.date,
    deadline_inclusive: bool,
    start: dt.date | None,
    floor: dt.date | None,
    capacities: dict[str, int],
) -> Computed:
    """Schedule a plan on a working calendar (raises cpm.CycleError / cpm.UnknownDependency)."""
    wd = _workdays(cal, deadline)
    limit = wd.floor(deadline) + 1 if deadline_inclusive else wd.ceil(deadline)
    cpm_tasks = [
        cpm.Task(
            id=t.id,
            duration=t.duration,
            deps=t.deps,
            pin=wd.ceil(t.pin) if t.pin is not None else None,
            not_before=wd.ceil(t.not_before) if t.not_before is not None else None,
        )
        for t in tasks
    ]
    sched = cpm.schedule(cpm_tasks, limit, floor=wd.ceil(floor) if floor is not None else None)
    if start is not None:
        # The plan's start is fixed once created: re-run the forward pass from it.
        sched = _from_start(cpm_tasks, limit, wd.ceil(start))
    by_id = {t.id: t for t in tasks}
    out: dict[str, dict[str, Any]] = {}
    for tid, slot in sched.slots.items():
        t = by_id[tid]
        if t.duration == 0:
            day = t.pin if t.pin is not None else wd.date(slot.es)
            due, late_start, late_finish = day, wd.date(slot.ls), wd.date(slot.ls)
            if t.pin is not None:
                late_start = late_finish = day
        else:
            day = wd.date(slot.es)
            due = wd.date(slot.ef - 1)
            late_start, late_finish = wd.date(slot.ls), wd.date(slot.lf - 1)
        out[tid] = {
            "start": day,
            "due": due,
            "late_start": late_start,
            "late_finish": late_finish,
            "slack": slot.slack,
            "critical": tid in sched.critical,
        }
    conflicts: list[Conflict] = []
    for tid in sched.late:
        slot = sched.slots[tid]
        bound = (
            f"the event on {deadline}"
            if slot.lf >= limit and not deadline_inclusive
            else f"what depends on it (latest finish {out[tid]['late_finish']})"
        )
        conflicts.append(
            Conflict(
                type="late",
                task_ids=[tid],
                date=out[tid]["due"],
                detail=f"{tid!r} ends {out[tid]['due']} and can no longer end before {bound}",
            )
        )
    spans = [
        (t.id, t.owner_role, sched.slots[t.id].es, sched.slots[t.id].ef)
        for t in tasks
        if t.status != "done"
    ]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for owner, pos, ids in cpm.over_capacity(spans, capacities, DEFAULT_CAPACITY):
        key = (owner, tuple(sorted(ids)))
        if key in seen:
            continue
        seen.add(key)
        cap = capacities.get(owner, DEFAULT_CAPACITY)
        conflicts.append(
            Conflict(
                type="over_capacity",
                task_ids=sorted(ids),
                owner_role=owner,
                date=wd.date(pos),
                detail=f"{owner} has {len(ids)} tasks at once from {wd.date(pos)} (capacity {cap})",
            )
        )
    starts = [v["start"] for v in out.values()]
    ends = [v["due"] for v in out.values()]
    return Computed(
        tasks=out,
        plan_start=wd.date(sched.start),
        start=min(starts, default=deadline),
        end=max(ends, default=deadline),
        critical_path=sched.critical_path,
        conflicts=conflicts,
        workdays=wd,
    )


def _from_start(tasks: Sequence[cpm.Task], limit: int, start: int) -> cpm.Schedule:
    order = cpm.topological_order(tasks)
    by_id = {t.id: t for t in tasks}
    base = cpm.schedule(tasks, limit)
    late = {k: (s.ls, s.lf) for k, s in base.slots.items()}
    slots: dict[str, cpm.Slot] = {}
    cpm.forward(order, by_id, late, slots, start)
    return cpm.finish(order, by_id, slots, start)


def _deps(raw: Sequence[DependencyIn | str]) -> list[cpm.Dep]:
    out = []
    for d in raw:
        if isinstance(d, str):
            out.append(cpm.Dep(d))
        else:
            out.append(cpm.Dep(d.task_id, d.type, d.lag))
    return out


def _check_graph(tasks: Sequence[PlanTask], loc: list[Any]) -> None:
    ids = [t.id for t in tasks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise _invalid(loc, f"task ids must be unique in a campaign: {dupes}")
    try:
        cpm.topological_order([cpm.Task(t.id, t.duration, t.deps) for t in tasks])
    except cpm.UnknownDependency as exc:
        i = ids.index(exc.task_id)
        raise _invalid(
            [*loc, i, "depends_on"],
            f"task {exc.task_id!r} depends on {exc.missing!r}, which is not a task of this "
            "campaign (dependencies never cross campaigns)",
        ) from exc
    except cpm.CycleError as exc:
        err = ValidationFailed([{"loc": loc, "msg": str(exc)}], detail=str(exc))
        err.extra["cycle"] = exc.cycle
        raise err from exc


def _phases(occ: Occurrence | None, plan_start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """The campaign's phases: preparation, the festival's selling phases and cut-offs, review.
    A logistics pause and the returns window are the festival's, not the campaign's: nothing
    of the plan sells in them."""
    if occ is None:
        return [{"name": "campaign", "start": plan_start.isoformat(), "end": end.isoformat()}]
    selling_end = occ.selling_end
    festival = [
        p
        for p in occ.phases
        if p.kind in ("selling", "cutoff")
        and p.start <= min(end, selling_end)
        and p.end >= plan_start
    ] or [occ.peak]
    out: list[dict[str, Any]] = []
    first = min(p.start for p in festival)
    if plan_start < first:
        out.append(
            {
                "name": "preparation",
                "kind": "preparation",
                "start": plan_start.isoformat(),
                "end": (first - dt.timedelta(days=1)).isoformat(),
            }
        )
    for p in festival:
        out.append(
            {
                "name": p.name,
                "kind": p.kind,
                "start": max(p.start, plan_start).isoformat(),
                "end": min(p.end, end).isoformat(),
            }
        )
    if end > selling_end:
        out.append(
            {
                "name": "review",
                "kind": "after_sale",
                "start": (selling_end + dt.timedelta(days=1)).isoformat(),
                "end": end.isoformat(),
            }
        )
    return out


def _other_pauses(
    occ: Occurrence, market: str, tc: TenantCalendar
) -> list[tuple[dt.date, dt.date]]:
    """Logistics pauses of the market's other festivals around an occurrence."""
    lo, hi = occ.start - dt.timedelta(days=60), occ.end
    return [
        (p.start, p.end)
        for o in festivals_between(market, lo, hi, tc.festivals, ANY_PLATFORM)
        if o.key != occ.key
        for p in o.phases
        if p.kind == "pause"
    ]


def _template_key(asked: str | None, platform: str | None) -> str:
    """The template asked for, else the one the store's platform calls for."""
    if asked is None or asked == templates.LEGACY_AUTO:
        return templates.for_platform(platform)
    return asked


def _occurrence(
    body: CampaignCreate, market: str, today: dt.date, tc: TenantCalendar
) -> Occurrence:
    assert body.event is not None
    on_or_after = dt.date(body.year, 1, 1) if body.year else (body.start or today)
    occ = next_occurrence(body.event, market, on_or_after, tc.festivals)
    if occ is None:
        here = known_keys(tc.festivals, market)
        elsewhere = markets_of(body.event, tc.festivals)
        if elsewhere and body.event not in here:
            why = f"{body.event!r} is a festival of {', '.join(elsewhere)}, not of {market}"
        elif elsewhere:
            why = f"{body.event!r} has no date known from {on_or_after}"
        else:
            why = f"unknown event {body.event!r}"
        err = _invalid(["body", "event"], f"{why}; {market}'s festivals: {', '.join(here)}")
        err.extra["events"] = here
        raise err
    if occ.date < today:
        raise _invalid(
            ["body", "year"], f"{body.event} {occ.date.year} was on {occ.date}: it is over"
        )
    return occ


async def create_campaign(
    session: AsyncSession,
    principal: Principal,
    store_id: str,
    body: CampaignCreate,
    *,
    today: dt.date | None = None,
) -> CampaignOut:
    store = await _store(session, principal, store_id)
    today = today or _today()
    tc = await tenant_calendar(session, principal.tenant_id)
    cal = tc.working(store.market)
    occ: Occurrence | None = None
    template_key: str | None = None
    if body.event is not None:
        occ = _occurrence(body, store.market, today, tc)
        trimmed = templates.around_pauses(occ, _other_pauses(occ, store.market, tc))
        if any(p.kind == "selling" for p in occ.phases) and not any(
            p.kind == "selling" for p in trimmed.phases
        ):
            raise _invalid(
                ["body", "event"],
                f"every selling day of {occ.name} {occ.date.year} falls in a logistics pause "
                f"in {store.market}: there is nothing to plan selling on",
            )
        occ = trimmed
    plan: list[PlanTask]
    if body.tasks is not None:
        plan = [
            PlanTask(
                id=t.id,
                name=t.name,
                owner_role=t.owner_role,
                duration=t.duration,
                kind="milestone" if t.duration == 0 else "task",
                status=t.status,
                copy_type=t.copy_type,
                pin=t.pin,
                not_before=None,
                deps=_deps(t.depends_on),
                source="explicit",
            )
            for t in body.tasks
        ]
    else:
        if occ is None:
            raise _invalid(["body", "tasks"], "give tasks, or an event with a template")
        template_key = _template_key(body.template, store.platform)
        tpl = templates.load(template_key)
        if tpl is None:
            raise _invalid(
                ["body", "template"],
                f"unknown template {template_key!r}; known: {', '.join(templates.available())} "
                f"(none: chosen from the store's platform, {store.platform or 'unknown'})",
            )
        plan = [
            PlanTask(
                id=s.id,
                name=s.name,
                owner_role=s.owner_role,
                duration=s.duration,
                kind=s.kind,
                status="todo",
                copy_type=s.copy_type,
                pin=s.pin,
                not_before=None,
                deps=[cpm.Dep(*d) for d in s.depends_on],  # type: ignore[arg-type]
            )
            for s in templates.instantiate(tpl, occ)
        ]
    _check_graph(plan, ["body", "tasks"])
    if occ is not None:
        # Preparation is due when the peak selling phase opens: the main day of most
        # festivals, the new-year shopping weeks of the Spring Festival (its day is in the
        # couriers' pause).
        deadline, inclusive = templates.deadline(occ), False
    else:
        assert body.end is not None
        deadline, inclusive = body.end, True
    fixed_start = body.start if occ is None else None
    computed = compute(
        plan,
        cal,
        deadline=deadline,
        deadline_inclusive=inclusive,
        start=fixed_start,
        floor=None if occ is None else max(today, body.start or today),
        capacities=body.capacities,
    )
    start = fixed_start or computed.plan_start
    end = max(computed.end, body.end or computed.end)
    if occ is not None:
        end = max(end, occ.selling_end)
    now = _now()
    campaign_id = str(uuid.uuid4())
    values = {
        "id": campaign_id,
        "tenant_id": principal.tenant_id,
        "store_id": store_id,
        "name": body.name,
        "event": body.event,
        "event_date": occ.date if occ else None,
        "template": template_key,
        "market": store.market,
        "start": start,
        "end": end,
        "deadline": deadline,
        "status": "planned",
        "budget": body.budget,
        "currency": store.currency if body.budget is not None else None,
        "phases": _phases(occ, start, end),
        "capacities": dict(body.capacities),
        "sequence": 0,
        "created_at": now,
        "updated_at": now,
    }
    await repo.insert_campaign(session, values)
    await repo.insert_tasks(
        session,
        [_task_row(values, i, t, computed.tasks[t.id], now) for i, t in enumerate(plan)],
    )
    await repo.replace_deps(
        session,
        campaign_id,
        None,
        [
            {
                "campaign_id": campaign_id,
                "task_id": t.id,
                "depends_on": d.task_id,
                "type": d.type,
                "lag": d.lag,
            }
            for t in plan
            for d in t.deps
        ],
    )
    out = await _load(session, principal.tenant_id, campaign_id, conflicts=computed.conflicts)
    await stage(session, _state_event(CampaignCreatedV1, principal.tenant_id, out))
    return out


def _task_row(
    campaign: dict[str, Any], position: int, t: PlanTask, sched: dict[str, Any], now: datetime
) -> dict[str, Any]:
    return {
        "campaign_id": campaign["id"],
        "task_id": t.id,
        "tenant_id": campaign["tenant_id"],
        "store_id": campaign["store_id"],
        "position": position,
        "name": t.name,
        "owner_role": t.owner_role,
        "duration": t.duration,
        "kind": t.kind,
        "status": t.status,
        "copy_type": t.copy_type,
        "pin": t.pin,
        "not_before": t.not_before,
        "source": t.source,
        "finding_id": t.finding_id,
        "due_notified": None,
        "sequence": 0,
        "updated_at": now,
        "baseline_start": sched["start"],
        "baseline_due": sched["due"],
        **sched,
    }


def _state_event(cls: Any, tenant_id: str, c: CampaignOut) -> Any:
    return cls(
        tenant_id=tenant_id,
        store_id=c.store_id,
        campaign_id=uuid.UUID(c.id),
        name=c.name,
        event=c.event,
        market=c.market,
        start=c.start,
        end=c.end,
        status=c.status,
        budget=c.budget,
        currency=c.currency,
        phases=[PhaseV1(name=p.name, start=p.start, end=p.end) for p in c.phases],
        tasks=[
            TaskV1(
                task_id=t.id,
                name=t.name,
                owner_role=t.owner_role,
                start=t.start,
                due=t.due,
                depends_on=[d.task_id for d in t.depends_on],
                status=t.status,
                kind=t.kind,
                copy_type=t.copy_type,
            )
            for t in c.tasks
        ],
    )


async def _rows(session: AsyncSession, tenant_id: str, campaign_id: str) -> tuple[Any, Any, Any]:
    row = await repo.get_campaign(session, tenant_id, campaign_id)
    if row is None:
        raise NotFound(f"Campaign {campaign_id!r} not found")
    return row, await repo.tasks_of(session, campaign_id), await repo.deps_of(session, campaign_id)


def _campaign_out(
    row: Any, tasks: Sequence[Any], deps: Sequence[Any], conflicts: list[Conflict]
) -> CampaignOut:
    by_task: dict[str, list[DependencyOut]] = {}
    for d in deps:
        by_task.setdefault(d.task_id, []).append(
            DependencyOut(task_id=d.depends_on, type=d.type, lag=d.lag)
        )
    task_out = [
        TaskOut(
            id=t.task_id,
            name=t.name,
            owner_role=t.owner_role,
            kind=t.kind,
            duration=t.duration,
            start=t.start,
            due=t.due,
            late_start=t.late_start,
            late_finish=t.late_finish,
            slack=t.slack,
            critical=t.critical,
            depends_on=sorted(by_task.get(t.task_id, []), key=lambda d: d.task_id),
            status=t.status,
            copy_type=t.copy_type,
            pinned=t.pin is not None,
            source=t.source,
            baseline_start=t.baseline_start,
            baseline_due=t.baseline_due,
        )
        for t in tasks
    ]
    critical = [t.id for t in sorted(task_out, key=lambda t: (t.start, t.due)) if t.critical]
    return CampaignOut(
        id=row.id,
        store_id=row.store_id,
        name=row.name,
        event=row.event,
        event_date=row.event_date,
        template=row.template,
        market=row.market,
        start=row.start,
        end=row.end,
        status=row.status,
        budget=row.budget,
        currency=row.currency,
        phases=[PhaseOut.model_validate(p) for p in row.phases],
        tasks=task_out,
        critical_path=critical,
        conflicts=conflicts,
        sequence=row.sequence,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _load(
    session: AsyncSession, tenant_id: str, campaign_id: str, conflicts: list[Conflict]
) -> CampaignOut:
    row, tasks, deps = await _rows(session, tenant_id, campaign_id)
    return _campaign_out(row, tasks, deps, conflicts)


def _plan_from_rows(tasks: Sequence[Any], deps: Sequence[Any]) -> list[PlanTask]:
    by_task: dict[str, list[cpm.Dep]] = {}
    for d in deps:
        by_task.setdefault(d.task_id, []).append(cpm.Dep(d.depends_on, d.type, d.lag))
    return [
        PlanTask(
            id=t.task_id,
            name=t.name,
            owner_role=t.owner_role,
            duration=t.duration,
            kind=t.kind,
            status=t.status,
            copy_type=t.copy_type,
            pin=t.pin,
            not_before=t.not_before,
            deps=by_task.get(t.task_id, []),
            source=t.source,
            finding_id=t.finding_id,
        )
        for t in tasks
    ]


async def _recompute(session: AsyncSession, row: Any, plan: list[PlanTask]) -> Computed:
    tc = await tenant_calendar(session, row.tenant_id)
    computed = compute(
        plan,
        tc.working(row.market),
        deadline=row.deadline,
        deadline_inclusive=row.event is None,
        start=row.start,
        floor=None,
        capacities=row.capacities,
    )
    return computed


async def _persist(
    session: AsyncSession,
    row: Any,
    plan: list[PlanTask],
    old: Sequence[Any],
    computed: Computed,
) -> list[str]:
    """Write the new schedule; raise SEQUENCE of what changed (RFC 5545); the tasks whose dates
    moved are returned."""
    now = _now()
    before = {t.task_id: t for t in old}
    moved: list[str] = []
    new_rows = []
    for i, t in enumerate(plan):
        sched = computed.tasks[t.id]
        prev = before.get(t.id)
        if prev is None:
            new_rows.append(_task_row(dict(row._mapping), i, t, sched, now))
            continue
        changed_dates = prev.start != sched["start"] or prev.due != sched["due"]
        changed = (
            changed_dates
            or prev.status != t.status
            or prev.duration != t.duration
            or prev.not_before != t.not_before
        )
        if changed_dates:
            moved.append(t.id)
        values = dict(sched)
        values.update(
            status=t.status,
            duration=t.duration,
            not_before=t.not_before,
            kind="milestone" if t.duration == 0 else "task",
        )
        if changed:
            values.update(sequence=prev.sequence + 1, updated_at=now)
        await repo.update_task(session, row.id, t.id, values)
    await repo.insert_tasks(session, new_rows)
    end = max(row.end, computed.end)
    await repo.update_campaign(
        session,
        row.id,
        {"end": end, "sequence": row.sequence + 1, "updated_at": now},
    )
    return moved


async def list_campaigns(
    session: AsyncSession, principal: Principal, store_id: str, limit: int, cursor: str | None
) -> CampaignPage:
    await _store(session, principal, store_id)
    rows = await repo.list_campaigns(
        session, principal.tenant_id, store_id, decode_cursor(cursor), limit + 1
    )
    items = []
    for row in rows[:limit]:
        tasks = await repo.tasks_of(session, row.id)
        deps = await repo.deps_of(session, row.id)
        items.append(_campaign_out(row, tasks, deps, []))
    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return CampaignPage(items=items, next_cursor=nxt)


async def _visible(session: AsyncSession, principal: Principal, campaign_id: str) -> Any:
    row = await repo.get_campaign(session, principal.tenant_id, campaign_id)
    if row is None or not principal.can_see_store(row.store_id):
        raise NotFound(f"Campaign {campaign_id!r} not found")
    return row


async def get_campaign(
    session: AsyncSession, principal: Principal, campaign_id: str
) -> CampaignOut:
    row = await _visible(session, principal, campaign_id)
    tasks = await repo.tasks_of(session, row.id)
    deps = await repo.deps_of(session, row.id)
    plan = _plan_from_rows(tasks, deps)
    computed = await _recompute(session, row, plan)
    return _campaign_out(row, tasks, deps, computed.conflicts)


# Which status may follow which: a finished or cancelled campaign stays so; a campaign set
# running by mistake can be set back to planned.
TRANSITIONS = {
    "draft": {"planned", "cancelled"},
    "planned": {"running", "cancelled", "draft"},
    "running": {"done", "cancelled", "planned"},
    "done": set(),
    "cancelled": set(),
}


def _status_allowed(row: Any, status: str, today: dt.date) -> None:
    """The dates must allow a status: a campaign runs once its plan has started, and is done
    once its selling has begun (the peak, or the end of a campaign without an event)."""
    if status not in TRANSITIONS[row.status]:
        raise ConflictError(
            f"a {row.status} campaign cannot become {status}; from {row.status}: "
            + (", ".join(sorted(TRANSITIONS[row.status])) or "nothing")
        )
    if status == "running" and today < row.start:
        raise ConflictError(
            f"campaign {row.name!r} starts on {row.start}: it cannot be running on {today}"
        )
    if status == "done":
        selling = row.deadline if row.event is not None else row.end
        if today < selling:
            raise ConflictError(
                f"campaign {row.name!r} sells from {selling}: it cannot be done on {today}"
            )


async def update_campaign(
    session: AsyncSession,
    principal: Principal,
    campaign_id: str,
    body: CampaignUpdate,
    *,
    today: dt.date | None = None,
) -> CampaignOut:
    row = await _visible(session, principal, campaign_id)
    values: dict[str, Any] = {}
    if body.status is not None and body.status != row.status:
        _status_allowed(row, body.status, today or _today())
        values["status"] = body.status
    if body.name is not None:
        values["name"] = body.name
    if "budget" in body.model_fields_set:
        store = await repo.get_store(session, row.tenant_id, row.store_id)
        values["budget"] = body.budget
        values["currency"] = (store.currency if store else row.currency) if body.budget else None
    values.update(sequence=row.sequence + 1, updated_at=_now())
    await repo.update_campaign(session, row.id, values)
    out = await get_campaign(session, principal, campaign_id)
    await stage(session, _state_event(CampaignUpdatedV1, principal.tenant_id, out))
    return out


async def move_task(
    session: AsyncSession, principal: Principal, campaign_id: str, task_id: str, body: TaskMove
) -> MoveResult:
    row = await _visible(session, principal, campaign_id)
    tasks = await repo.tasks_of(session, row.id)
    deps = await repo.deps_of(session, row.id)
    plan = _plan_from_rows(tasks, deps)
    target = next((t for t in plan if t.id == task_id), None)
    if target is None:
        raise NotFound(f"Task {task_id!r} not found in campaign {campaign_id}")
    extra: list[Conflict] = []
    if (body.start is not None or body.duration is not None) and target.pin is not None:
        raise ConflictError(
            f"task {task_id!r} is pinned to {target.pin} (a festival date) and cannot move"
        )
    if body.start is not None:
        target.not_before = body.start
    if body.duration is not None:
        if (body.duration == 0) != (target.duration == 0):
            raise _invalid(["body", "duration"], "a milestone stays a milestone and a task a task")
        target.duration = body.duration
    if body.status is not None:
        target.status = body.status
    if body.depends_on is not None:
        target.deps = _deps(body.depends_on)
        _check_graph(plan, ["body", "depends_on"])
        await repo.replace_deps(
            session,
            row.id,
            task_id,
            [
                {
                    "campaign_id": row.id,
                    "task_id": task_id,
                    "depends_on": d.task_id,
                    "type": d.type,
                    "lag": d.lag,
                }
                for d in target.deps
            ],
        )
    computed = await _recompute(session, row, plan)
    if body.start is not None and computed.tasks[task_id]["start"] > body.start:
        extra.append(
            Conflict(
                type="dependency",
                task_ids=[task_id],
                date=computed.tasks[task_id]["start"],
                detail=f"{task_id!r} cannot start on {body.start}: its dependencies allow "
                f"{computed.tasks[task_id]['start']} at the earliest",
            )
        )
    moved = await _persist(session, row, plan, tasks, computed)
    out = await _load(session, principal.tenant_id, row.id, conflicts=extra + computed.conflicts)
    await stage(session, _state_event(CampaignUpdatedV1, principal.tenant_id, out))
    return MoveResult(campaign=out, moved=moved, conflicts=out.conflicts)


async def gantt_data(
    session: AsyncSession, principal: Principal, campaign_id: str, *, today: dt.date | None = None
) -> GanttOut:
    c = await get_campaign(session, principal, campaign_id)
    tc = await tenant_calendar(session, principal.tenant_id)
    cal = tc.working(c.market)
    lo = min(c.start, *(t.start for t in c.tasks)) if c.tasks else c.start
    hi = max(c.end, *(t.due for t in c.tasks)) if c.tasks else c.end
    lanes: list[str] = []
    for t in sorted(c.tasks, key=lambda t: (t.start, t.due)):
        if t.owner_role not in lanes:
            lanes.append(t.owner_role)
    phases = list(c.phases)
    if c.event is not None and c.event_date is not None:
        # The festival's logistics pause, for context: the plan sells around it, never in it.
        occ = next_occurrence(c.event, c.market, c.event_date, tc.festivals)
        for p in occ.phases if occ is not None else ():
            if p.kind == "pause" and p.start <= hi and p.end >= lo:
                phases.append(
                    PhaseOut(name=p.name, start=max(p.start, lo), end=min(p.end, hi), kind="pause")
                )
    conflicting = sorted({x for k in c.conflicts for x in k.task_ids})
    return GanttOut(
        campaign_id=c.id,
        name=c.name,
        start=lo,
        end=hi,
        today=today or _today(),
        lanes=lanes,
        critical_path=c.critical_path,
        tasks=c.tasks,
        milestones=[t.id for t in c.tasks if t.kind == "milestone"],
        phases=phases,
        off_days=cal.off_days(lo, hi),
        holidays=[{"date": d, "name": n} for d, n in public_holidays(c.market, lo, hi)],
        conflicts=c.conflicts,
        dependencies=[
            {"from": d.task_id, "to": t.id, "type": d.type, "lag": d.lag}
            for t in c.tasks
            for d in t.depends_on
        ],
        late=[t.id for t in c.tasks if t.slack < 0],
        moved=[
            t.id
            for t in c.tasks
            if t.baseline_start is not None
            and (t.baseline_start, t.baseline_due) != (t.start, t.due)
        ],
        conflicting=conflicting,
    )


def gantt_svg(g: GanttOut) -> str:
    kinds: dict[str, list[str]] = {}
    for k in g.conflicts:
        for tid in k.task_ids:
            kinds.setdefault(tid, []).append(k.type.replace("_", " "))
    return gantt.render(
        title=f"{g.name} ({g.start} - {g.end})",
        bars=[
            gantt.Bar(
                id=t.id,
                name=t.name,
                owner_role=t.owner_role,
                start=t.start,
                due=t.due,
                milestone=t.kind == "milestone",
                critical=t.critical,
                slack=t.slack,
                status=t.status,
                late=t.slack < 0,
                conflicts=tuple(sorted(set(kinds.get(t.id, [])) - {"late"})),
                depends_on=tuple((d.task_id, d.type) for d in t.depends_on),
                pinned=t.pinned,
                baseline=(t.baseline_start, t.baseline_due)
                if t.baseline_start is not None
                and t.baseline_due is not None
                and (t.baseline_start, t.baseline_due) != (t.start, t.due)
                else None,
            )
            for t in g.tasks
        ],
        start=g.start,
        end=g.end,
        today=g.today,
        off_days=g.off_days,
        holidays=[(h["date"], h["name"]) for h in g.holidays],
        phases=[(p.name, p.start, p.end) for p in g.phases],
        pauses=[p.name for p in g.phases if p.kind == "pause"],
    )


# ---- findings -> remedial tasks --------------------------------------------------------------


async def on_finding(
    session: AsyncSession, event: FindingOpenedV1 | FindingUpdatedV1 | FindingClosedV1
) -> None:
    await repo.upsert_finding(
        session,
        {
            "finding_id": str(event.finding_id),
            "tenant_id": event.tenant_id,
            "store_id": event.store_id,
            "date": event.date,
            "owner": event.owner,
            "severity": event.severity,
            "code": event.code,
            "title": event.title,
            "action": event.action,
            "status": event.status,
            "referenced": False,
            "updated_at": _now(),
        },
    )
    await _maybe_add_remedial(session, str(event.finding_id))


async def on_diagnosis_completed(session: AsyncSession, event: DiagnosisCompletedV1) -> None:
    # Findings come with their own events, in either order: whichever arrives second adds the
    # remedial task.
    for fid in event.finding_ids:
        await repo.mark_referenced(
            session,
            {
                "finding_id": str(fid),
                "tenant_id": event.tenant_id,
                "store_id": event.store_id,
                "referenced": True,
                "updated_at": _now(),
            },
        )
        await _maybe_add_remedial(session, str(fid))


REMEDIAL_SEVERITIES = {"medium", "high", "critical"}


async def _maybe_add_remedial(session: AsyncSession, finding_id: str) -> None:
    f = await repo.get_finding(session, finding_id)
    if (
        f is None
        or not f.referenced
        or f.campaign_id is not None
        or f.title is None
        or f.status not in ("open", "acknowledged")
        or f.severity not in REMEDIAL_SEVERITIES
    ):
        return
    row = await repo.active_campaign(session, f.tenant_id, f.store_id, f.date)
    if row is None:
        return
    tasks = await repo.tasks_of(session, row.id)
    deps = await repo.deps_of(session, row.id)
    plan = _plan_from_rows(tasks, deps)
    task_id = f"fix-{finding_id[:8]}"
    if any(t.id == task_id for t in plan):
        return
    name = f"{f.owner}: {f.action}"
    plan.append(
        PlanTask(
            id=task_id,
            name=name[:300],
            owner_role=f.owner,
            duration=2 if f.severity in ("high", "critical") else 3,
            kind="task",
            status="todo",
            copy_type="banner" if f.code in ("ctr_drop",) else None,
            pin=None,
            not_before=max(f.date + dt.timedelta(days=1), row.start),
            deps=[],
            source="remedial",
            finding_id=finding_id,
        )
    )
    computed = await _recompute(session, row, plan)
    await _persist(session, row, plan, tasks, computed)
    await repo.set_finding_campaign(session, finding_id, row.id)
    out = await _load(session, row.tenant_id, row.id, conflicts=computed.conflicts)
    await stage(session, _state_event(CampaignUpdatedV1, row.tenant_id, out))


# ---- task_due -------------------------------------------------------------------------------


async def publish_due_tasks(session: AsyncSession, now: datetime, morning_hour: int) -> int:
    """Stage campaigns.task_due for every open task due today in its store's zone, once the
    store's morning has come; once per task and due date (a conditional update claims it, so
    two schedulers never both publish)."""
    utc_day = now.astimezone(UTC).date()
    count = 0
    rows = await repo.due_candidates(
        session, utc_day - dt.timedelta(days=1), utc_day + dt.timedelta(days=1)
    )
    for r in rows:
        local = now.astimezone(ZoneInfo(r.timezone))
        if local.date() != r.due or local.hour < morning_hour:
            continue
        if not await repo.mark_notified(session, r.campaign_id, r.task_id, r.due):
            continue
        await stage(
            session,
            TaskDueV1(
                tenant_id=r.tenant_id,
                store_id=r.store_id,
                campaign_id=uuid.UUID(r.campaign_id),
                task_id=r.task_id,
                name=r.name,
                owner_role=r.owner_role,
                due=r.due,
                status=r.status,
                kind=r.kind,
                copy_type=r.copy_type,
            ),
        )
        count += 1
    return count


# ---- slots ----------------------------------------------------------------------------------


def _slot_out(row: Any) -> SlotOut:
    return SlotOut(
        id=row.id,
        name=row.name,
        kind=row.kind,
        capacity=row.capacity,
        rules=SlotRules.model_validate(row.rules),
    )


def _rules(row: Any) -> allocation.Rules:
    r = SlotRules.model_validate(row.rules)
    return allocation.Rules(
        capacity=row.capacity,
        tier_order=tuple(r.tier_order),
        max_share=r.max_share,
        window_open_days=r.window_open_days,
        window_close_days=r.window_close_days,
    )


async def create_slot(session: AsyncSession, principal: Principal, body: SlotCreate) -> SlotOut:
    if await repo.slot_by_name(session, principal.tenant_id, body.name) is not None:
        raise ConflictError(f"a slot named {body.name!r} exists")
    values = {
        "id": str(uuid.uuid4()),
        "tenant_id": principal.tenant_id,
        "name": body.name,
        "kind": body.kind,
        "capacity": body.capacity,
        "rules": body.rules.model_dump(mode="json"),
        "created_at": _now(),
    }
    await repo.insert_slot(session, values)
    return SlotOut(
        id=values["id"], name=body.name, kind=body.kind, capacity=body.capacity, rules=body.rules
    )


async def list_slots(session: AsyncSession, principal: Principal) -> list[SlotOut]:
    return [_slot_out(r) for r in await repo.list_slots(session, principal.tenant_id)]


async def _slot(session: AsyncSession, principal: Principal, slot_id: str) -> Any:
    row = await repo.get_slot(session, principal.tenant_id, slot_id)
    if row is None:
        raise NotFound(f"Slot {slot_id!r} not found")
    return row


async def _alternatives(
    session: AsyncSession, principal: Principal, slot: Any, day: dt.date, today: dt.date
) -> list[dict[str, Any]]:
    """The nearest days of this slot with room, then other slots with room on the day."""
    rules = _rules(slot)
    lo, hi = day - dt.timedelta(days=14), day + dt.timedelta(days=14)
    booked = await repo.booked_by_day(session, [slot.id], lo, hi)
    days = sorted(
        (d for d in (lo + dt.timedelta(days=i) for i in range(29)) if d != day),
        key=lambda d: (abs((d - day).days), d),
    )
    out: list[dict[str, Any]] = []
    for d in days:
        if rules.in_window(d, today) and booked.get((slot.id, d), 0) < slot.capacity:
            out.append(
                {
                    "slot_id": slot.id,
                    "slot": slot.name,
                    "day": d.isoformat(),
                    "free": slot.capacity - booked.get((slot.id, d), 0),
                }
            )
        if len(out) == 3:
            break
    others = [s for s in await repo.list_slots(session, principal.tenant_id) if s.id != slot.id]
    taken = await repo.booked_by_day(session, [s.id for s in others], day, day)
    for s in others:
        free = s.capacity - taken.get((s.id, day), 0)
        if free > 0 and _rules(s).in_window(day, today):
            out.append({"slot_id": s.id, "slot": s.name, "day": day.isoformat(), "free": free})
    return out


async def book(
    session: AsyncSession,
    principal: Principal,
    slot_id: str,
    body: BookingCreate,
    *,
    today: dt.date | None = None,
) -> BookingOut:
    slot = await _slot(session, principal, slot_id)
    await _store(session, principal, body.store_id)
    today = today or _today()
    rules = _rules(slot)
    if body.campaign_id is not None and body.task_id is not None:
        await _booking_task(
            session, principal, body.store_id, body.campaign_id, body.task_id, body.day
        )
    if body.tier is None:
        # Stores carry no registered tier in this service: refuse rather than guess one.
        raise _invalid(
            ["body", "tier"],
            f"give the tier store {body.store_id!r} books as: one of the slot's tiers "
            f"{', '.join(rules.tier_order)} (stores have no registered tier to take it from)",
        )
    if not rules.in_window(body.day, today):
        raise _invalid(
            ["body", "day"],
            f"{body.day} is outside the booking window: from "
            f"{today + dt.timedelta(days=rules.window_close_days)} to "
            f"{today + dt.timedelta(days=rules.window_open_days)}",
        )
    if body.tier not in rules.tier_order:
        raise _invalid(
            ["body", "tier"], f"unknown tier {body.tier!r}; the slot's tiers: {rules.tier_order}"
        )
    limit = rules.max_per_store()
    if not await repo.take_store_unit(session, slot.id, body.day, body.store_id, limit):
        alternatives = await _alternatives(session, principal, slot, body.day, today)
        raise ConflictError(
            f"store {body.store_id!r} already holds its maximum share of "
            f"{slot.name!r} on {body.day} ({limit} of {slot.capacity} units a day); the "
            "alternatives list other days and slots with room",
            alternatives=alternatives,
        )
    values = {
        "id": str(uuid.uuid4()),
        "tenant_id": principal.tenant_id,
        "slot_id": slot.id,
        "store_id": body.store_id,
        "day": body.day,
        "tier": body.tier,
        "priority": body.priority,
        "allocation_id": None,
        "campaign_id": body.campaign_id,
        "task_id": body.task_id,
        "created_at": _now(),
    }
    await repo.insert_bookings(session, [values])
    # The contended row last: its lock is held only from this statement to the commit.
    if not await repo.take_unit(session, slot.id, body.day, slot.capacity):
        alternatives = await _alternatives(session, principal, slot, body.day, today)
        raise ConflictError(
            f"slot {slot.name!r} is full on {body.day}: store {body.store_id!r} can take one "
            "of the alternatives",
            alternatives=alternatives,
        )
    return BookingOut(**{k: v for k, v in values.items() if k in BookingOut.model_fields})


async def _booking_task(
    session: AsyncSession,
    principal: Principal,
    store_id: str,
    campaign_id: str,
    task_id: str,
    day: dt.date,
) -> Any:
    """The plan task a booking is made from: of the booking's store, on a day of the plan."""
    row = await repo.get_campaign(session, principal.tenant_id, campaign_id)
    if row is None or not principal.can_see_store(row.store_id):
        raise NotFound(f"Campaign {campaign_id!r} not found")
    if row.store_id != store_id:
        raise _invalid(
            ["body", "campaign_id"],
            f"campaign {campaign_id!r} is store {row.store_id!r}'s, not {store_id!r}'s",
        )
    tasks = {t.task_id: t for t in await repo.tasks_of(session, campaign_id)}
    if task_id not in tasks:
        raise NotFound(f"Task {task_id!r} not found in campaign {campaign_id}")
    if not row.start <= day <= row.end:
        raise _invalid(
            ["body", "day"],
            f"{day} is outside campaign {row.name!r} ({row.start} - {row.end}): a slot booked "
            "from its plan runs during it",
        )
    return tasks[task_id]


async def book_from_task(
    session: AsyncSession,
    principal: Principal,
    campaign_id: str,
    task_id: str,
    body: TaskBookingCreate,
    *,
    today: dt.date | None = None,
) -> BookingOut:
    """A booking made from the plan's "Book promotion slots" task: the store is the
    campaign's, and the booking stays linked to the task."""
    row = await _visible(session, principal, campaign_id)
    return await book(
        session,
        principal,
        body.slot_id,
        BookingCreate(
            store_id=row.store_id,
            day=body.day,
            tier=body.tier,
            priority=body.priority,
            campaign_id=campaign_id,
            task_id=task_id,
        ),
        today=today,
    )


async def task_bookings(
    session: AsyncSession, principal: Principal, campaign_id: str, task_id: str
) -> list[BookingOut]:
    row = await _visible(session, principal, campaign_id)
    if task_id not in {t.task_id for t in await repo.tasks_of(session, row.id)}:
        raise NotFound(f"Task {task_id!r} not found in campaign {campaign_id}")
    return [_booking_out(r) for r in await repo.task_bookings(session, row.id, task_id)]


def _booking_out(r: Any) -> BookingOut:
    return BookingOut(
        id=r.id,
        slot_id=r.slot_id,
        store_id=r.store_id,
        day=r.day,
        tier=r.tier,
        priority=r.priority,
        allocation_id=r.allocation_id,
        campaign_id=r.campaign_id,
        task_id=r.task_id,
    )


async def cancel_booking(
    session: AsyncSession, principal: Principal, slot_id: str, booking_id: str
) -> None:
    slot = await _slot(session, principal, slot_id)
    booking = await repo.get_booking(session, principal.tenant_id, slot.id, booking_id)
    if booking is None or not principal.can_see_store(booking.store_id):
        raise NotFound(f"Booking {booking_id!r} not found")
    await repo.delete_booking(session, booking)


async def list_bookings(
    session: AsyncSession, principal: Principal, slot_id: str, start: dt.date, end: dt.date
) -> list[BookingOut]:
    slot = await _slot(session, principal, slot_id)
    if end < start or (end - start).days > MAX_CALENDAR_DAYS:
        raise _invalid(
            ["query", "end"], f"end is before start or more than {MAX_CALENDAR_DAYS} days on"
        )
    rows = await repo.list_bookings(session, principal.tenant_id, slot.id, start, end)
    return [_booking_out(r) for r in rows if principal.can_see_store(r.store_id)]


async def allocate_period(
    session: AsyncSession,
    principal: Principal,
    slot_id: str,
    body: AllocationIn,
    *,
    today: dt.date | None = None,
) -> AllocationOut:
    slot = await _slot(session, principal, slot_id)
    today = today or _today()
    for i, r in enumerate(body.requests):
        principal.check_store(r.store_id)
        if await repo.get_store(session, principal.tenant_id, r.store_id) is None:
            raise _invalid(["body", "requests", i, "store_id"], f"unknown store {r.store_id!r}")
    days = [d for r in body.requests for d in r.days]
    lo, hi = min(days), max(days)
    booked = {d: n for (_, d), n in (await repo.booked_by_day(session, [slot.id], lo, hi)).items()}
    by_store = await repo.booked_by_store(session, slot.id, lo, hi)
    outcomes = allocation.allocate(
        [
            allocation.Request(r.store_id, r.tier, r.priority, tuple(r.days), r.units)
            for r in body.requests
        ],
        _rules(slot),
        today=today,
        booked=booked,
        booked_by_store=by_store,
    )
    run_id = str(uuid.uuid4())
    now = _now()
    tiers = {r.store_id: (r.tier, r.priority) for r in body.requests}
    bookings = []
    limit = _rules(slot).max_per_store()
    for o in outcomes:
        if not o.granted:
            continue
        ok = await repo.take_unit(session, slot.id, o.day, slot.capacity, o.granted)
        ok = ok and await repo.take_store_unit(
            session, slot.id, o.day, o.store_id, limit, o.granted
        )
        if not ok:  # a booking slipped in since we read: nothing is kept, the client retries
            raise ConflictError("the slot changed while allocating; retry")
        for _ in range(o.granted):
            tier, priority = tiers[o.store_id]
            bookings.append(
                {
                    "id": str(uuid.uuid4()),
                    "tenant_id": principal.tenant_id,
                    "slot_id": slot.id,
                    "store_id": o.store_id,
                    "day": o.day,
                    "tier": tier,
                    "priority": priority,
                    "allocation_id": run_id,
                    "created_at": now,
                }
            )
    await repo.insert_bookings(session, bookings)
    outs = [
        OutcomeOut(
            store_id=o.store_id, day=o.day, wanted=o.wanted, granted=o.granted, reasons=o.reasons
        )
        for o in outcomes
    ]
    await repo.insert_run(
        session,
        {
            "id": run_id,
            "tenant_id": principal.tenant_id,
            "slot_id": slot.id,
            "request": body.model_dump(mode="json"),
            "result": {
                "rule": ALLOCATION_RULE,
                "outcomes": [o.model_dump(mode="json") for o in outs],
            },
            "created_at": now,
        },
    )
    return AllocationOut(id=run_id, slot_id=slot.id, rule=ALLOCATION_RULE, outcomes=outs)


async def explain(
    session: AsyncSession, principal: Principal, slot_id: str, run_id: str, store_id: str
) -> ExplainOut:
    slot = await _slot(session, principal, slot_id)
    principal.check_store(store_id)
    run = await repo.get_run(session, principal.tenant_id, slot.id, run_id)
    if run is None:
        raise NotFound(f"Allocation {run_id!r} not found")
    mine = [
        OutcomeOut.model_validate(o) for o in run.result["outcomes"] if o["store_id"] == store_id
    ]
    if not mine:
        raise NotFound(f"Store {store_id!r} took no part in allocation {run_id}")
    asked = next(r for r in run.request["requests"] if r["store_id"] == store_id)
    rules = _rules(slot)
    for o in mine:
        o.explanation = allocation.explain_for_store(
            slot=slot.name,
            day=o.day,
            wanted=o.wanted,
            granted=o.granted,
            tier=asked["tier"],
            priority=asked.get("priority", 0),
            reasons=o.reasons,
            rules=rules,
        )
    granted, wanted = sum(o.granted for o in mine), sum(o.wanted for o in mine)
    short = [o.day.isoformat() for o in mine if o.granted < o.wanted]
    summary = (
        f"Store {store_id!r} (tier {asked['tier']}) asked for {wanted} units of {slot.name!r} "
        f"and got {granted}"
        + (f"; short on {', '.join(short)}: see each day's explanation." if short else ".")
    )
    return ExplainOut(
        allocation_id=run_id,
        store_id=store_id,
        granted=granted,
        wanted=wanted,
        outcomes=mine,
        summary=summary,
    )


# ---- calendar feeds -------------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def rotate_feed_token(
    session: AsyncSession, principal: Principal, store_id: str
) -> FeedTokenOut:
    await _store(session, principal, store_id)
    token = FEED_PREFIX + secrets.token_urlsafe(32)
    await repo.put_feed_token(
        session,
        {
            "tenant_id": principal.tenant_id,
            "store_id": store_id,
            "token_hash": _hash(token),
            "created_at": _now(),
            "revoked_at": None,
        },
    )
    return FeedTokenOut(
        store_id=store_id, token=token, url=f"/v1/stores/{store_id}/calendar.ics?token={token}"
    )


async def revoke_feed_token(session: AsyncSession, principal: Principal, store_id: str) -> None:
    await _store(session, principal, store_id)
    if not await repo.revoke_feed(session, principal.tenant_id, store_id, _now()):
        raise NotFound(f"Store {store_id!r} has no active calendar feed")


async def feed(
    session: AsyncSession, store_id: str, token: str | None, *, today: dt.date | None = None
) -> bytes:
    from services.campaigns.planning import ics

    if not token or len(token) > 200:
        raise Unauthorized("Give the feed's token: ?token=...")
    row = await repo.feed_by_hash(session, _hash(token))
    if row is None or row.store_id != store_id or row.revoked_at is not None:
        raise Unauthorized("The feed token is not valid or has been revoked")
    store = await repo.get_store(session, row.tenant_id, store_id)
    if store is None:
        raise NotFound(f"Store {store_id!r} not found")
    today = today or _today()
    tc = await tenant_calendar(session, row.tenant_id)
    campaigns = await repo.store_campaigns(session, row.tenant_id, store_id)
    tasks = await repo.tasks_of_many(session, [c.id for c in campaigns])
    lo, hi = _feed_span(today, campaigns)
    festivals = festivals_between(store.market, lo, hi, tc.festivals, ANY_PLATFORM)
    return ics.build(
        title=f"{store.name}: festivals and campaigns",
        festivals=[(store.market, f) for f in festivals],
        campaigns=campaigns,
        tasks=tasks,
    )


def _feed_span(today: dt.date, campaigns: Sequence[Any]) -> tuple[dt.date, dt.date]:
    lo = min([today - dt.timedelta(days=30), *(c.start for c in campaigns)])
    hi = max([today + dt.timedelta(days=365), *(c.end for c in campaigns)])
    return lo, hi


TEAM_ALL = ""  # owner_role of the tenant feed with every role


async def rotate_team_feed_token(
    session: AsyncSession, principal: Principal, owner_role: str | None
) -> TeamFeedTokenOut:
    """Issue (or rotate) the tenant's feed across stores, for every role or one owner role.
    The feed covers the stores the issuing key sees: a scoped key's feed never shows more."""
    token = FEED_PREFIX + secrets.token_urlsafe(32)
    scope = sorted(principal.store_ids) if principal.store_ids is not None else None
    await repo.put_team_feed_token(
        session,
        {
            "tenant_id": principal.tenant_id,
            "owner_role": owner_role or TEAM_ALL,
            "token_hash": _hash(token),
            "store_ids": scope,
            "created_at": _now(),
            "revoked_at": None,
        },
    )
    return TeamFeedTokenOut(
        owner_role=owner_role, stores=scope, token=token, url=f"/v1/calendar.ics?token={token}"
    )


async def revoke_team_feed_token(
    session: AsyncSession, principal: Principal, owner_role: str | None
) -> None:
    if not await repo.revoke_team_feed(
        session, principal.tenant_id, owner_role or TEAM_ALL, _now()
    ):
        what = f"owner role {owner_role!r}" if owner_role else "the whole team"
        raise NotFound(f"No active calendar feed for {what}")


async def team_feed(
    session: AsyncSession, token: str | None, *, today: dt.date | None = None
) -> bytes:
    """One feed for the tenant's stores (or one owner role's tasks across them)."""
    from services.campaigns.planning import ics

    if not token or len(token) > 200:
        raise Unauthorized("Give the feed's token: ?token=...")
    row = await repo.team_feed_by_hash(session, _hash(token))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("The feed token is not valid or has been revoked")
    today = today or _today()
    stores = await repo.tenant_stores(session, row.tenant_id, row.store_ids)
    names = {s.store_id: s.name for s in stores}
    tc = await tenant_calendar(session, row.tenant_id)
    campaigns = await repo.tenant_campaigns(session, row.tenant_id, list(names))
    tasks = await repo.tasks_of_many(session, [c.id for c in campaigns])
    if row.owner_role != TEAM_ALL:
        tasks = [t for t in tasks if t.owner_role == row.owner_role]
    lo, hi = _feed_span(today, campaigns)
    festivals = [
        (m, f)
        for m in sorted({s.market for s in stores})
        for f in festivals_between(m, lo, hi, tc.festivals, ANY_PLATFORM)
    ]
    who = f"{row.owner_role} tasks" if row.owner_role != TEAM_ALL else "festivals and campaigns"
    return ics.build(
        title=f"{row.tenant_id}: {who} across {len(stores)} stores",
        festivals=festivals,
        campaigns=campaigns,
        tasks=tasks,
        store_names=names,
        role_feed=row.owner_role != TEAM_ALL,
    )
