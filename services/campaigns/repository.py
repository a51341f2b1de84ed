"""Queries of campaigns. Repositories flush, never commit; the request or consumer commits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.models import (
    AllocationRun,
    Booking,
    CalendarSettings,
    Campaign,
    CampaignTask,
    FeedToken,
    KnownFinding,
    KnownStore,
    PromotionSlot,
    SlotDay,
    SlotDayStore,
    TaskDependency,
    TeamFeedToken,
)

STORES: Table = KnownStore.__table__  # type: ignore[attr-defined]
CAMPAIGNS: Table = Campaign.__table__  # type: ignore[attr-defined]
TASKS: Table = CampaignTask.__table__  # type: ignore[attr-defined]
DEPS: Table = TaskDependency.__table__  # type: ignore[attr-defined]
SLOTS: Table = PromotionSlot.__table__  # type: ignore[attr-defined]
SLOT_DAYS: Table = SlotDay.__table__  # type: ignore[attr-defined]
SLOT_DAY_STORES: Table = SlotDayStore.__table__  # type: ignore[attr-defined]
BOOKINGS: Table = Booking.__table__  # type: ignore[attr-defined]
RUNS: Table = AllocationRun.__table__  # type: ignore[attr-defined]
FEEDS: Table = FeedToken.__table__  # type: ignore[attr-defined]
TEAM_FEEDS: Table = TeamFeedToken.__table__  # type: ignore[attr-defined]
SETTINGS: Table = CalendarSettings.__table__  # type: ignore[attr-defined]
FINDINGS: Table = KnownFinding.__table__  # type: ignore[attr-defined]


def _insert(session: AsyncSession, table: Table) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


# ---- stores ---------------------------------------------------------------------------------


async def get_store(session: AsyncSession, tenant_id: str, store_id: str) -> Any:
    return (
        await session.execute(
            select(STORES).where(STORES.c.tenant_id == tenant_id, STORES.c.store_id == store_id)
        )
    ).first()


async def upsert_store(session: AsyncSession, values: dict[str, Any]) -> None:
    stmt = _insert(session, STORES).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "store_id"],
        set_={k: stmt.excluded[k] for k in values if k not in ("tenant_id", "store_id")},
        where=STORES.c.as_of <= stmt.excluded.as_of,
    )
    await session.execute(stmt)


# ---- calendar settings ----------------------------------------------------------------------


async def get_settings(session: AsyncSession, tenant_id: str) -> Any:
    return (
        await session.execute(select(SETTINGS).where(SETTINGS.c.tenant_id == tenant_id))
    ).first()


async def put_settings(session: AsyncSession, values: dict[str, Any]) -> None:
    stmt = _insert(session, SETTINGS).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id"],
        set_={k: stmt.excluded[k] for k in values if k != "tenant_id"},
    )
    await session.execute(stmt)


# ---- campaigns ------------------------------------------------------------------------------


async def insert_campaign(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(CAMPAIGNS.insert().values(**values))


async def update_campaign(session: AsyncSession, campaign_id: str, values: dict[str, Any]) -> None:
    await session.execute(CAMPAIGNS.update().where(CAMPAIGNS.c.id == campaign_id).values(**values))


async def get_campaign(session: AsyncSession, tenant_id: str, campaign_id: str) -> Any:
    return (
        await session.execute(
            select(CAMPAIGNS).where(
                CAMPAIGNS.c.tenant_id == tenant_id, CAMPAIGNS.c.id == campaign_id
            )
        )
    ).first()


async def list_campaigns(
    session: AsyncSession, tenant_id: str, store_id: str, after: str | None, limit: int
) -> Sequence[Any]:
    q = select(CAMPAIGNS).where(
        CAMPAIGNS.c.tenant_id == tenant_id, CAMPAIGNS.c.store_id == store_id
    )
    if after:
        q = q.where(CAMPAIGNS.c.id > after)
    return (await session.execute(q.order_by(CAMPAIGNS.c.id).limit(limit))).all()


async def store_campaigns(session: AsyncSession, tenant_id: str, store_id: str) -> Sequence[Any]:
    return (
        await session.execute(
            select(CAMPAIGNS)
            .where(CAMPAIGNS.c.tenant_id == tenant_id, CAMPAIGNS.c.store_id == store_id)
            .order_by(CAMPAIGNS.c.start, CAMPAIGNS.c.id)
        )
    ).all()


async def active_campaign(session: AsyncSession, tenant_id: str, store_id: str, on: dt.date) -> Any:
    """The store's campaign running or planned around a date: the soonest not yet ended."""
    return (
        await session.execute(
            select(CAMPAIGNS)
            .where(
                CAMPAIGNS.c.tenant_id == tenant_id,
                CAMPAIGNS.c.store_id == store_id,
                CAMPAIGNS.c.status.in_(["planned", "running"]),
                CAMPAIGNS.c.end >= on,
            )
            .order_by(CAMPAIGNS.c.start, CAMPAIGNS.c.id)
            .limit(1)
        )
    ).first()


async def tasks_of(session: AsyncSession, campaign_id: str) -> Sequence[Any]:
    return (
        await session.execute(
            select(TASKS).where(TASKS.c.campaign_id == campaign_id).order_by(TASKS.c.position)
        )
    ).all()


async def tasks_of_many(session: AsyncSession, campaign_ids: Sequence[str]) -> Sequence[Any]:
    if not campaign_ids:
        return []
    return (
        await session.execute(
            select(TASKS)
            .where(TASKS.c.campaign_id.in_(campaign_ids))
            .order_by(TASKS.c.campaign_id, TASKS.c.position)
        )
    ).all()


async def deps_of(session: AsyncSession, campaign_id: str) -> Sequence[Any]:
    return (await session.execute(select(DEPS).where(DEPS.c.campaign_id == campaign_id))).all()


async def insert_tasks(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(TASKS.insert(), list(rows))


async def update_task(
    session: AsyncSession, campaign_id: str, task_id: str, values: dict[str, Any]
) -> None:
    await session.execute(
        TASKS.update()
        .where(TASKS.c.campaign_id == campaign_id, TASKS.c.task_id == task_id)
        .values(**values)
    )


async def replace_deps(
    session: AsyncSession, campaign_id: str, task_id: str | None, rows: Sequence[dict[str, Any]]
) -> None:
    q = DEPS.delete().where(DEPS.c.campaign_id == campaign_id)
    if task_id is not None:
        q = q.where(DEPS.c.task_id == task_id)
    await session.execute(q)
    if rows:
        await session.execute(DEPS.insert(), list(rows))


async def due_candidates(session: AsyncSession, lo: dt.date, hi: dt.date) -> Sequence[Any]:
    """Open tasks due in [lo, hi] not yet notified for their due date, with the store's zone."""
    q = (
        select(TASKS, STORES.c.timezone, CAMPAIGNS.c.status.label("campaign_status"))
        .join(CAMPAIGNS, CAMPAIGNS.c.id == TASKS.c.campaign_id)
        .join(
            STORES,
            and_(STORES.c.tenant_id == TASKS.c.tenant_id, STORES.c.store_id == TASKS.c.store_id),
        )
        .where(
            TASKS.c.due >= lo,
            TASKS.c.due <= hi,
            TASKS.c.status != "done",
            CAMPAIGNS.c.status.in_(["planned", "running"]),
            or_(TASKS.c.due_notified.is_(None), TASKS.c.due_notified != TASKS.c.due),
        )
    )
    return (await session.execute(q)).all()


async def mark_notified(
    session: AsyncSession, campaign_id: str, task_id: str, due: dt.date
) -> bool:
    """Claim the notification of a task's due date; false if another worker already did."""
    result = await session.execute(
        TASKS.update()
        .where(
            TASKS.c.campaign_id == campaign_id,
            TASKS.c.task_id == task_id,
            TASKS.c.due == due,
            or_(TASKS.c.due_notified.is_(None), TASKS.c.due_notified != due),
        )
        .values(due_notified=due)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ---- slots ----------------------------------------------------------------------------------


async def insert_slot(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(SLOTS.insert().values(**values))


async def get_slot(session: AsyncSession, tenant_id: str, slot_id: str) -> Any:
    return (
        await session.execute(
            select(SLOTS).where(SLOTS.c.tenant_id == tenant_id, SLOTS.c.id == slot_id)
        )
    ).first()


async def slot_by_name(session: AsyncSession, tenant_id: str, name: str) -> Any:
    return (
        await session.execute(
            select(SLOTS.c.id).where(SLOTS.c.tenant_id == tenant_id, SLOTS.c.name == name)
        )
    ).first()


async def list_slots(session: AsyncSession, tenant_id: str) -> Sequence[Any]:
    return (
        await session.execute(
            select(SLOTS).where(SLOTS.c.tenant_id == tenant_id).order_by(SLOTS.c.name)
        )
    ).all()


async def take_unit(
    session: AsyncSession, slot_id: str, day: dt.date, capacity: int, units: int = 1
) -> bool:
    """One conditional UPDATE: the row lock serialises concurrent bookers and the condition is
    re-checked after the wait (READ COMMITTED), so a day is never oversold. The day's row is
    created on first use (ON CONFLICT DO NOTHING makes concurrent first uses agree)."""
    t = SLOT_DAYS
    where = (t.c.slot_id == slot_id, t.c.day == day)
    stmt = (
        t.update().where(*where, t.c.booked + units <= capacity).values(booked=t.c.booked + units)
    )
    if (await session.execute(stmt)).rowcount:  # type: ignore[attr-defined]
        return True
    # No row, or the condition failed: make sure the row exists and ask once more. (A row that
    # another booker created after our UPDATE must not read as "full": the second UPDATE sees
    # it, under READ COMMITTED, after waiting for its lock.)
    await session.execute(
        _insert(session, t)
        .values(slot_id=slot_id, day=day, booked=0)
        .on_conflict_do_nothing(index_elements=["slot_id", "day"])
    )
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def take_store_unit(
    session: AsyncSession, slot_id: str, day: dt.date, store_id: str, limit: int, units: int = 1
) -> bool:
    t = SLOT_DAY_STORES
    where = (t.c.slot_id == slot_id, t.c.day == day, t.c.store_id == store_id)
    stmt = t.update().where(*where, t.c.booked + units <= limit).values(booked=t.c.booked + units)
    if (await session.execute(stmt)).rowcount:  # type: ignore[attr-defined]
        return True
    # No row, or the condition failed: make sure the row exists and ask once more. (A row that
    # another booker created after our UPDATE must not read as "full": the second UPDATE sees
    # it, under READ COMMITTED, after waiting for its lock.)
    await session.execute(
        _insert(session, t)
        .values(slot_id=slot_id, day=day, store_id=store_id, booked=0)
        .on_conflict_do_nothing(index_elements=["slot_id", "day", "store_id"])
    )
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def booked_by_day(
    session: AsyncSession, slot_ids: Sequence[str], lo: dt.date, hi: dt.date
) -> dict[tuple[str, dt.date], int]:
    rows = (
        await session.execute(
            select(SLOT_DAYS).where(
                SLOT_DAYS.c.slot_id.in_(slot_ids), SLOT_DAYS.c.day >= lo, SLOT_DAYS.c.day <= hi
            )
        )
    ).all()
    return {(r.slot_id, r.day): r.booked for r in rows}


async def booked_by_store(
    session: AsyncSession, slot_id: str, lo: dt.date, hi: dt.date
) -> dict[tuple[dt.date, str], int]:
    rows = (
        await session.execute(
            select(SLOT_DAY_STORES).where(
                SLOT_DAY_STORES.c.slot_id == slot_id,
                SLOT_DAY_STORES.c.day >= lo,
                SLOT_DAY_STORES.c.day <= hi,
            )
        )
    ).all()
    return {(r.day, r.store_id): r.booked for r in rows}


async def insert_bookings(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(BOOKINGS.insert(), list(rows))


async def get_booking(session: AsyncSession, tenant_id: str, slot_id: str, booking_id: str) -> Any:
    return (
        await session.execute(
            select(BOOKINGS).where(
                BOOKINGS.c.tenant_id == tenant_id,
                BOOKINGS.c.slot_id == slot_id,
                BOOKINGS.c.id == booking_id,
            )
        )
    ).first()


async def delete_booking(session: AsyncSession, booking: Any) -> None:
    """Remove a booking and give its unit back (both counters, in the same transaction)."""
    await session.execute(BOOKINGS.delete().where(BOOKINGS.c.id == booking.id))
    await session.execute(
        SLOT_DAYS.update()
        .where(SLOT_DAYS.c.slot_id == booking.slot_id, SLOT_DAYS.c.day == booking.day)
        .values(booked=SLOT_DAYS.c.booked - 1)
    )
    await session.execute(
        SLOT_DAY_STORES.update()
        .where(
            SLOT_DAY_STORES.c.slot_id == booking.slot_id,
            SLOT_DAY_STORES.c.day == booking.day,
            SLOT_DAY_STORES.c.store_id == booking.store_id,
        )
        .values(booked=SLOT_DAY_STORES.c.booked - 1)
    )


async def list_bookings(
    session: AsyncSession, tenant_id: str, slot_id: str, lo: dt.date, hi: dt.date
) -> Sequence[Any]:
    return (
        await session.execute(
            select(BOOKINGS)
            .where(
                BOOKINGS.c.tenant_id == tenant_id,
                BOOKINGS.c.slot_id == slot_id,
                BOOKINGS.c.day >= lo,
                BOOKINGS.c.day <= hi,
            )
            .order_by(BOOKINGS.c.day, BOOKINGS.c.created_at, BOOKINGS.c.id)
        )
    ).all()


async def count_bookings(session: AsyncSession, slot_id: str, day: dt.date | None = None) -> int:
    q = select(func.count()).select_from(BOOKINGS).where(BOOKINGS.c.slot_id == slot_id)
    if day is not None:
        q = q.where(BOOKINGS.c.day == day)
    return int(await session.scalar(q) or 0)


async def insert_run(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(RUNS.insert().values(**values))


async def get_run(session: AsyncSession, tenant_id: str, slot_id: str, run_id: str) -> Any:
    return (
        await session.execute(
            select(RUNS).where(
                RUNS.c.tenant_id == tenant_id, RUNS.c.slot_id == slot_id, RUNS.c.id == run_id
            )
        )
    ).first()


# ---- feeds ----------------------------------------------------------------------------------


async def put_feed_token(session: AsyncSession, values: dict[str, Any]) -> None:
    stmt = _insert(session, FEEDS).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "store_id"],
        set_={
            "token_hash": stmt.excluded.token_hash,
            "created_at": stmt.excluded.created_at,
            "revoked_at": None,
        },
    )
    await session.execute(stmt)


async def feed_by_hash(session: AsyncSession, token_hash: str) -> Any:
    return (await session.execute(select(FEEDS).where(FEEDS.c.token_hash == token_hash))).first()


async def revoke_feed(
    session: AsyncSession, tenant_id: str, store_id: str, now: dt.datetime
) -> bool:
    result = await session.execute(
        FEEDS.update()
        .where(
            FEEDS.c.tenant_id == tenant_id,
            FEEDS.c.store_id == store_id,
            FEEDS.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ---- findings -------------------------------------------------------------------------------


async def get_finding(session: AsyncSession, finding_id: str) -> Any:
    return (
        await session.execute(select(FINDINGS).where(FINDINGS.c.finding_id == finding_id))
    ).first()


async def upsert_finding(session: AsyncSession, values: dict[str, Any]) -> None:
    stmt = _insert(session, FINDINGS).values(**values)
    update = {k: stmt.excluded[k] for k in values if k not in ("finding_id", "referenced")}
    if values.get("referenced"):
        update["referenced"] = stmt.excluded.referenced
    stmt = stmt.on_conflict_do_update(index_elements=["finding_id"], set_=update)
    await session.execute(stmt)


async def mark_referenced(session: AsyncSession, values: dict[str, Any]) -> None:
    stmt = _insert(session, FINDINGS).values(**values)
    stmt = stmt.on_conflict_do_update(index_elements=["finding_id"], set_={"referenced": True})
    await session.execute(stmt)


async def set_finding_campaign(session: AsyncSession, finding_id: str, campaign_id: str) -> None:
    await session.execute(
        FINDINGS.update().where(FINDINGS.c.finding_id == finding_id).values(campaign_id=campaign_id)
    )


async def task_bookings(session: AsyncSession, campaign_id: str, task_id: str) -> Sequence[Any]:
    return (
        await session.execute(
            select(BOOKINGS)
            .where(BOOKINGS.c.campaign_id == campaign_id, BOOKINGS.c.task_id == task_id)
            .order_by(BOOKINGS.c.day, BOOKINGS.c.created_at, BOOKINGS.c.id)
        )
    ).all()


async def put_team_feed_token(session: AsyncSession, values: dict[str, Any]) -> None:
    stmt = _insert(session, TEAM_FEEDS).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "owner_role"],
        set_={
            "token_hash": stmt.excluded.token_hash,
            "store_ids": stmt.excluded.store_ids,
            "created_at": stmt.excluded.created_at,
            "revoked_at": None,
        },
    )
    await session.execute(stmt)


async def team_feed_by_hash(session: AsyncSession, token_hash: str) -> Any:
    return (
        await session.execute(select(TEAM_FEEDS).where(TEAM_FEEDS.c.token_hash == token_hash))
    ).first()


async def revoke_team_feed(
    session: AsyncSession, tenant_id: str, owner_role: str, now: dt.datetime
) -> bool:
    result = await session.execute(
        TEAM_FEEDS.update()
        .where(
            TEAM_FEEDS.c.tenant_id == tenant_id,
            TEAM_FEEDS.c.owner_role == owner_role,
            TEAM_FEEDS.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def tenant_stores(
    session: AsyncSession, tenant_id: str, store_ids: Sequence[str] | None
) -> Sequence[Any]:
    q = select(STORES).where(STORES.c.tenant_id == tenant_id)
    if store_ids is not None:
        q = q.where(STORES.c.store_id.in_(list(store_ids)))
    return (await session.execute(q.order_by(STORES.c.store_id))).all()


async def tenant_campaigns(
    session: AsyncSession, tenant_id: str, store_ids: Sequence[str]
) -> Sequence[Any]:
    if not store_ids:
        return []
    return (
        await session.execute(
            select(CAMPAIGNS)
            .where(CAMPAIGNS.c.tenant_id == tenant_id, CAMPAIGNS.c.store_id.in_(list(store_ids)))
            .order_by(CAMPAIGNS.c.start, CAMPAIGNS.c.id)
        )
    ).all()
