"""Queries of notifications; flush, never commit (the consumer, route or worker commits)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis.models import KnownStore
from services.diagnosis.notify.models import (
    NotificationAlert,
    NotificationAttempt,
    NotificationDelivery,
    NotificationDigest,
    NotificationFinding,
    NotificationTarget,
)

targets: Table = NotificationTarget.__table__  # type: ignore[attr-defined]
findings: Table = NotificationFinding.__table__  # type: ignore[attr-defined]
alerts: Table = NotificationAlert.__table__  # type: ignore[attr-defined]
deliveries: Table = NotificationDelivery.__table__  # type: ignore[attr-defined]
attempts: Table = NotificationAttempt.__table__  # type: ignore[attr-defined]
digests: Table = NotificationDigest.__table__  # type: ignore[attr-defined]
known_stores: Table = KnownStore.__table__  # type: ignore[attr-defined]


async def known_store_ids(session: AsyncSession, tenant_id: str, ids: Iterable[str]) -> set[str]:
    """Which of `ids` are stores of this tenant that diagnosis heard of (ingest's events)."""
    q = select(known_stores.c.store_id).where(
        known_stores.c.tenant_id == tenant_id, known_stores.c.store_id.in_(list(ids))
    )
    return set((await session.execute(q)).scalars())


def _insert(session: AsyncSession, table: Table) -> Any:
    """INSERT with ON CONFLICT support on both backends."""
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


# --- targets -------------------------------------------------------------------------------------


async def insert_target(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(targets.insert().values(**values))


async def get_target(session: AsyncSession, tenant_id: str, target_id: str) -> Any:
    return (
        await session.execute(
            select(targets).where(targets.c.tenant_id == tenant_id, targets.c.id == target_id)
        )
    ).first()


async def get_target_by_id(session: AsyncSession, target_id: str) -> Any:
    return (await session.execute(select(targets).where(targets.c.id == target_id))).first()


async def list_targets(
    session: AsyncSession, tenant_id: str, owner: str | None, after: str | None, limit: int
) -> Sequence[Any]:
    q = select(targets).where(targets.c.tenant_id == tenant_id)
    if owner is not None:
        q = q.where(targets.c.owner == owner)
    if after is not None:
        q = q.where(targets.c.id > after)
    return (await session.execute(q.order_by(targets.c.id).limit(limit))).all()


async def update_target(session: AsyncSession, target_id: str, values: dict[str, Any]) -> None:
    await session.execute(update(targets).where(targets.c.id == target_id).values(**values))


async def delete_target(session: AsyncSession, target_id: str) -> None:
    ids = select(deliveries.c.id).where(deliveries.c.target_id == target_id).scalar_subquery()
    await session.execute(delete(attempts).where(attempts.c.delivery_id.in_(ids)))
    for table in (deliveries, alerts, digests):
        await session.execute(delete(table).where(table.c.target_id == target_id))
    await session.execute(delete(targets).where(targets.c.id == target_id))


async def targets_of_owner(session: AsyncSession, tenant_id: str, owner: str) -> Sequence[Any]:
    return (
        await session.execute(
            select(targets).where(
                targets.c.tenant_id == tenant_id,
                targets.c.owner == owner,
                targets.c.enabled.is_(True),
            )
        )
    ).all()


async def enabled_targets(session: AsyncSession) -> Sequence[Any]:
    return (await session.execute(select(targets).where(targets.c.enabled.is_(True)))).all()


# --- the findings' projection --------------------------------------------------------------------


async def upsert_finding(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert or replace a finding's state unless what we hold is newer; True if applied."""
    ins = _insert(session, findings).values(**values)
    changed = {k: ins.excluded[k] for k in values if k not in ("tenant_id", "finding_id")}
    stmt = ins.on_conflict_do_update(
        index_elements=[findings.c.tenant_id, findings.c.finding_id],
        set_=changed,
        where=findings.c.as_of <= ins.excluded.as_of,
    ).returning(findings.c.finding_id)
    return (await session.execute(stmt)).first() is not None


async def open_findings(
    session: AsyncSession,
    tenant_id: str,
    owner: str,
    store_ids: Iterable[str] | None,
    limit: int,
) -> tuple[list[Any], int]:
    """The owner's open (or acknowledged) findings, |impact| x confidence first, and how many."""
    where = [
        findings.c.tenant_id == tenant_id,
        findings.c.owner == owner,
        findings.c.status.in_(("open", "acknowledged")),
    ]
    if store_ids is not None:
        where.append(findings.c.store_id.in_(list(store_ids)))
    rank = func.abs(func.coalesce(findings.c.expected_gmv_impact, 0.0)) * func.coalesce(
        findings.c.confidence, 1.0
    )
    rows = (
        await session.execute(
            select(findings)
            .where(*where)
            .order_by(rank.desc(), findings.c.date.desc(), findings.c.finding_id)
            .limit(limit)
        )
    ).all()
    total = await session.scalar(select(func.count()).select_from(findings).where(*where))
    return list(rows), int(total or 0)


# --- alerts --------------------------------------------------------------------------------------


async def alerted_severities(session: AsyncSession, target_id: str, finding_id: str) -> list[str]:
    return list(
        (
            await session.scalars(
                select(alerts.c.severity).where(
                    alerts.c.target_id == target_id, alerts.c.finding_id == finding_id
                )
            )
        ).all()
    )


async def count_sent_since(session: AsyncSession, target_id: str, since: datetime) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(alerts)
            .where(
                alerts.c.target_id == target_id,
                alerts.c.state == "sent",
                alerts.c.created_at > since,
            )
        )
        or 0
    )


async def count_held(session: AsyncSession, target_id: str) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(alerts)
            .where(alerts.c.target_id == target_id, alerts.c.state == "held")
        )
        or 0
    )


async def insert_alert(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """The alert's id, or None when (target, finding, severity) was already decided."""
    stmt = (
        _insert(session, alerts)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[alerts.c.target_id, alerts.c.finding_id, alerts.c.severity]
        )
        .returning(alerts.c.id)
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else int(row[0])


async def set_alert_delivery(session: AsyncSession, alert_id: int, delivery_id: int) -> None:
    await session.execute(
        update(alerts).where(alerts.c.id == alert_id).values(delivery_id=delivery_id)
    )


async def held_alerts(session: AsyncSession, target_id: str) -> list[Any]:
    """Held alerts with their finding's latest state, oldest first."""
    q = (
        select(
            alerts.c.id,
            alerts.c.finding_id,
            alerts.c.severity,
            alerts.c.created_at,
            findings.c.store_id,
            findings.c.date,
            findings.c.title,
            findings.c.status,
        )
        .select_from(
            alerts.outerjoin(
                findings,
                and_(
                    findings.c.tenant_id == alerts.c.tenant_id,
                    findings.c.finding_id == alerts.c.finding_id,
                ),
            )
        )
        .where(alerts.c.target_id == target_id, alerts.c.state == "held")
        .order_by(alerts.c.id)
    )
    return list((await session.execute(q)).all())


async def mark_digested(
    session: AsyncSession, alert_ids: Sequence[int], local_date: dt.date, delivery_id: int | None
) -> None:
    if alert_ids:
        await session.execute(
            update(alerts)
            .where(alerts.c.id.in_(list(alert_ids)), alerts.c.state == "held")
            .values(state="digested", digest_date=local_date, delivery_id=delivery_id)
        )


# --- deliveries ----------------------------------------------------------------------------------


async def insert_delivery(session: AsyncSession, values: dict[str, Any]) -> int:
    row = (
        await session.execute(deliveries.insert().values(**values).returning(deliveries.c.id))
    ).first()
    assert row is not None
    return int(row[0])


async def claim_due(
    session: AsyncSession, now: datetime, limit: int, lease_until: datetime
) -> list[Any]:
    """Due pending deliveries with their target, leased to this worker until lease_until (so the
    HTTP calls happen outside any transaction and another worker does not take them meanwhile).
    PostgreSQL: FOR UPDATE SKIP LOCKED lets several pods claim disjoint batches."""
    q = (
        select(deliveries.c.id)
        .where(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= now)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(limit)
    )
    if _is_postgres(session):
        q = q.with_for_update(skip_locked=True)
    ids = list((await session.scalars(q)).all())
    if not ids:
        return []
    await session.execute(
        update(deliveries).where(deliveries.c.id.in_(ids)).values(next_attempt_at=lease_until)
    )
    rows = await session.execute(
        select(
            deliveries,
            targets.c.format,
            targets.c.url,
            targets.c.secret,
            targets.c.id.label("live_target"),
        )
        .select_from(deliveries.outerjoin(targets, targets.c.id == deliveries.c.target_id))
        .where(deliveries.c.id.in_(ids))
        .order_by(deliveries.c.id)
    )
    return list(rows.all())


async def update_delivery(session: AsyncSession, delivery_id: int, values: dict[str, Any]) -> None:
    await session.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))


async def insert_attempt(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(attempts.insert().values(**values))


async def count_pending(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(deliveries).where(deliveries.c.status == "pending")
        )
        or 0
    )


async def list_deliveries(
    session: AsyncSession, target_id: str, before: int | None, limit: int
) -> list[Any]:
    q = select(deliveries).where(deliveries.c.target_id == target_id)
    if before is not None:
        q = q.where(deliveries.c.id < before)
    return list((await session.execute(q.order_by(deliveries.c.id.desc()).limit(limit))).all())


async def attempts_of(session: AsyncSession, delivery_ids: Sequence[int]) -> list[Any]:
    if not delivery_ids:
        return []
    return list(
        (
            await session.execute(
                select(attempts)
                .where(attempts.c.delivery_id.in_(list(delivery_ids)))
                .order_by(attempts.c.delivery_id, attempts.c.attempt)
            )
        ).all()
    )


# --- digests -------------------------------------------------------------------------------------


async def claim_digest(session: AsyncSession, values: dict[str, Any]) -> bool:
    stmt = (
        _insert(session, digests)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[digests.c.target_id, digests.c.local_date])
        .returning(digests.c.target_id)
    )
    return (await session.execute(stmt)).first() is not None


async def update_digest(
    session: AsyncSession, target_id: str, local_date: dt.date, values: dict[str, Any]
) -> None:
    await session.execute(
        update(digests)
        .where(digests.c.target_id == target_id, digests.c.local_date == local_date)
        .values(**values)
    )


async def digest_dates(session: AsyncSession, target_id: str) -> list[dt.date]:
    return list(
        (
            await session.scalars(
                select(digests.c.local_date)
                .where(digests.c.target_id == target_id)
                .order_by(digests.c.local_date)
            )
        ).all()
    )
