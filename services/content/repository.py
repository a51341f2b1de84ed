"""Queries of content. Repositories flush, never commit; the request or consumer commits."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, and_, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.models import (
    Brief,
    ContentCampaign,
    ContentStore,
    ContentUser,
    Copy,
    CopyAudit,
    CopyMetric,
    CopyRevision,
    Experiment,
    Reviewer,
)

STORES: Table = ContentStore.__table__  # type: ignore[attr-defined]
CAMPAIGNS: Table = ContentCampaign.__table__  # type: ignore[attr-defined]
COPIES: Table = Copy.__table__  # type: ignore[attr-defined]
REVISIONS: Table = CopyRevision.__table__  # type: ignore[attr-defined]
AUDIT: Table = CopyAudit.__table__  # type: ignore[attr-defined]
BRIEFS: Table = Brief.__table__  # type: ignore[attr-defined]
EXPERIMENTS: Table = Experiment.__table__  # type: ignore[attr-defined]
METRICS: Table = CopyMetric.__table__  # type: ignore[attr-defined]


# ---- stores ----------------------------------------------------------------------------------


async def get_store(session: AsyncSession, tenant_id: str, store_id: str) -> Any:
    q = select(STORES).where(STORES.c.tenant_id == tenant_id, STORES.c.store_id == store_id)
    return (await session.execute(q)).first()


async def get_campaign(session: AsyncSession, tenant_id: str, campaign_id: str) -> Any:
    q = select(CAMPAIGNS).where(
        CAMPAIGNS.c.tenant_id == tenant_id, CAMPAIGNS.c.campaign_id == campaign_id
    )
    return (await session.execute(q)).first()


async def upsert_campaign(session: AsyncSession, values: dict[str, Any]) -> None:
    key = (CAMPAIGNS.c.tenant_id == values["tenant_id"]) & (
        CAMPAIGNS.c.campaign_id == values["campaign_id"]
    )
    if await get_campaign(session, values["tenant_id"], values["campaign_id"]) is None:
        await session.execute(CAMPAIGNS.insert().values(**values))
    else:
        await session.execute(CAMPAIGNS.update().where(key).values(**values))


async def upsert_store(session: AsyncSession, values: dict[str, Any]) -> None:
    existing = await get_store(session, values["tenant_id"], values["store_id"])
    if existing is None:
        await session.execute(STORES.insert().values(**values))
    elif existing.updated_at <= values["updated_at"]:
        # Events of one store come in order on its partition; a replay of an older state loses.
        await session.execute(
            STORES.update()
            .where(
                STORES.c.tenant_id == values["tenant_id"],
                STORES.c.store_id == values["store_id"],
            )
            .values(**values)
        )


# ---- copies ----------------------------------------------------------------------------------


async def insert_copy(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(COPIES.insert().values(**values))


async def get_copy(session: AsyncSession, tenant_id: str, copy_id: str) -> Any:
    q = select(COPIES).where(COPIES.c.tenant_id == tenant_id, COPIES.c.id == copy_id)
    return (await session.execute(q)).first()


async def get_copies(session: AsyncSession, tenant_id: str, copy_ids: Sequence[str]) -> list[Any]:
    q = select(COPIES).where(COPIES.c.tenant_id == tenant_id, COPIES.c.id.in_(list(copy_ids)))
    return list((await session.execute(q)).all())


async def update_copy(session: AsyncSession, copy_id: str, values: dict[str, Any]) -> None:
    await session.execute(COPIES.update().where(COPIES.c.id == copy_id).values(**values))


async def _list_page(
    session: AsyncSession,
    table: Any,
    tenant_id: str,
    store_ids: frozenset[str] | None,
    filters: dict[str, Any],
    after: str | None,
    limit: int,
) -> Sequence[Any]:
    """A tenant's rows by id, keyset-paginated, within the key's stores, filtered by equality."""
    q = select(table).where(table.c.tenant_id == tenant_id)
    if store_ids is not None:
        q = q.where(table.c.store_id.in_(sorted(store_ids)))
    for key, value in filters.items():
        if value is not None:
            q = q.where(table.c[key] == value)
    if after:
        q = q.where(table.c.id > after)
    return (await session.execute(q.order_by(table.c.id).limit(limit))).all()


async def list_copies(
    session: AsyncSession,
    tenant_id: str,
    *,
    store_ids: frozenset[str] | None,
    filters: dict[str, Any],
    after: str | None,
    limit: int,
) -> Sequence[Any]:
    return await _list_page(session, COPIES, tenant_id, store_ids, filters, after, limit)


async def published_copies(session: AsyncSession, tenant_id: str, store_id: str) -> list[Any]:
    q = select(COPIES.c.id).where(
        COPIES.c.tenant_id == tenant_id,
        COPIES.c.store_id == store_id,
        COPIES.c.status == "published",
    )
    return list((await session.execute(q.order_by(COPIES.c.id))).all())


async def copies_answering(
    session: AsyncSession, tenant_id: str, brief_ids: Sequence[str]
) -> dict[str, list[str]]:
    q = select(COPIES.c.id, COPIES.c.brief_id).where(
        COPIES.c.tenant_id == tenant_id, COPIES.c.brief_id.in_(list(brief_ids))
    )
    out: dict[str, list[str]] = defaultdict(list)
    for row in (await session.execute(q.order_by(COPIES.c.created_at))).all():
        out[row.brief_id].append(row.id)
    return out


# ---- revisions and audit ---------------------------------------------------------------------


async def insert_revision(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(REVISIONS.insert().values(**values))


async def get_revision(session: AsyncSession, copy_id: str, revision: int) -> Any:
    q = select(REVISIONS).where(REVISIONS.c.copy_id == copy_id, REVISIONS.c.revision == revision)
    return (await session.execute(q)).first()


async def list_revisions(session: AsyncSession, copy_id: str) -> Sequence[Any]:
    q = select(REVISIONS).where(REVISIONS.c.copy_id == copy_id).order_by(REVISIONS.c.revision)
    return (await session.execute(q)).all()


async def revision_authors(session: AsyncSession, copy_id: str) -> set[str]:
    q = select(REVISIONS.c.created_by).where(REVISIONS.c.copy_id == copy_id).distinct()
    return {r[0] for r in (await session.execute(q)).all()}


async def insert_audit(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(AUDIT.insert().values(**values))


async def list_audit(session: AsyncSession, copy_id: str) -> Sequence[Any]:
    q = select(AUDIT).where(AUDIT.c.copy_id == copy_id).order_by(AUDIT.c.id)
    return (await session.execute(q)).all()


# ---- briefs ----------------------------------------------------------------------------------


async def get_brief_by_source(session: AsyncSession, tenant_id: str, source_key: str) -> Any:
    q = select(BRIEFS).where(BRIEFS.c.tenant_id == tenant_id, BRIEFS.c.source_key == source_key)
    return (await session.execute(q)).first()


async def get_brief(session: AsyncSession, tenant_id: str, brief_id: str) -> Any:
    q = select(BRIEFS).where(BRIEFS.c.tenant_id == tenant_id, BRIEFS.c.id == brief_id)
    return (await session.execute(q)).first()


async def insert_brief(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(BRIEFS.insert().values(**values))


async def update_brief(session: AsyncSession, brief_id: str, values: dict[str, Any]) -> None:
    await session.execute(BRIEFS.update().where(BRIEFS.c.id == brief_id).values(**values))


async def briefs_of_campaign(session: AsyncSession, tenant_id: str, campaign_id: str) -> list[Any]:
    q = select(BRIEFS).where(
        BRIEFS.c.tenant_id == tenant_id,
        BRIEFS.c.campaign_id == campaign_id,
        BRIEFS.c.kind == "campaign",
    )
    return list((await session.execute(q)).all())


async def list_briefs(
    session: AsyncSession,
    tenant_id: str,
    *,
    store_ids: frozenset[str] | None,
    filters: dict[str, Any],
    after: str | None,
    limit: int,
) -> Sequence[Any]:
    q = select(BRIEFS).where(BRIEFS.c.tenant_id == tenant_id)
    if store_ids is not None:
        q = q.where(BRIEFS.c.store_id.in_(sorted(store_ids)))
    for key, value in filters.items():
        if value is not None:
            q = q.where(BRIEFS.c[key] == value)
    if after:
        q = q.where(BRIEFS.c.id > after)
    return (await session.execute(q.order_by(BRIEFS.c.id).limit(limit))).all()


# ---- experiments -----------------------------------------------------------------------------


async def insert_experiment(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(EXPERIMENTS.insert().values(**values))


async def get_experiment(session: AsyncSession, tenant_id: str, experiment_id: str) -> Any:
    q = select(EXPERIMENTS).where(
        EXPERIMENTS.c.tenant_id == tenant_id, EXPERIMENTS.c.id == experiment_id
    )
    return (await session.execute(q)).first()


async def update_experiment(session: AsyncSession, exp_id: str, values: dict[str, Any]) -> None:
    await session.execute(EXPERIMENTS.update().where(EXPERIMENTS.c.id == exp_id).values(**values))


async def list_experiments(
    session: AsyncSession,
    tenant_id: str,
    *,
    store_ids: frozenset[str] | None,
    filters: dict[str, Any],
    after: str | None,
    limit: int,
) -> Sequence[Any]:
    return await _list_page(session, EXPERIMENTS, tenant_id, store_ids, filters, after, limit)


async def running_experiments(session: AsyncSession, tenant_id: str, store_id: str) -> list[Any]:
    q = select(EXPERIMENTS).where(
        EXPERIMENTS.c.tenant_id == tenant_id,
        EXPERIMENTS.c.store_id == store_id,
        EXPERIMENTS.c.status == "running",
    )
    return list((await session.execute(q)).all())


# ---- counts attributed to copies -------------------------------------------------------------


async def upsert_copy_metrics(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Insert new rows and replace changed values; returns how many rows changed."""
    changed = 0
    for row in rows:
        key = and_(
            METRICS.c.tenant_id == row["tenant_id"],
            METRICS.c.store_id == row["store_id"],
            METRICS.c.copy_id == row["copy_id"],
            METRICS.c.date == row["date"],
            METRICS.c.metric == row["metric"],
            METRICS.c.dims_key == row["dims_key"],
        )
        existing = (await session.execute(select(METRICS.c.id, METRICS.c.value).where(key))).first()
        if existing is None:
            await session.execute(METRICS.insert().values(**row))
            changed += 1
        elif existing.value != row["value"]:
            await session.execute(
                METRICS.update().where(METRICS.c.id == existing.id).values(value=row["value"])
            )
            changed += 1
    return changed


async def delete_copy_metrics(
    session: AsyncSession,
    tenant_id: str,
    store_id: str,
    keys: Sequence[tuple[str, Any, str, str]],
) -> None:
    """Delete rows by identity (copy_id, date, metric, dims_key)."""
    for copy_id, day, metric, dims_key in keys:
        await session.execute(
            METRICS.delete().where(
                METRICS.c.tenant_id == tenant_id,
                METRICS.c.store_id == store_id,
                METRICS.c.copy_id == copy_id,
                METRICS.c.date == day,
                METRICS.c.metric == metric,
                METRICS.c.dims_key == dims_key,
            )
        )


async def copy_counts(
    session: AsyncSession,
    tenant_id: str,
    store_id: str,
    copy_ids: Sequence[str],
    start: dt.date | None,
    end: dt.date | None,
) -> dict[str, dict[str, float]]:
    """Totals per copy and metric. Rows may come at several breakdowns (by copy alone, by copy
    and channel...); per (copy, date, metric) only the coarsest breakdown is summed, so a total
    is never counted twice."""
    q = select(
        METRICS.c.copy_id, METRICS.c.date, METRICS.c.metric, METRICS.c.n_dims, METRICS.c.value
    ).where(
        METRICS.c.tenant_id == tenant_id,
        METRICS.c.store_id == store_id,
        METRICS.c.copy_id.in_(list(copy_ids)),
    )
    if start is not None:
        q = q.where(METRICS.c.date >= start)
    if end is not None:
        q = q.where(METRICS.c.date <= end)
    best: dict[tuple[str, dt.date, str], tuple[int, float]] = {}
    for r in (await session.execute(q)).all():
        k = (r.copy_id, r.date, r.metric)
        cur = best.get(k)
        if cur is None or r.n_dims < cur[0]:
            best[k] = (r.n_dims, r.value)
        elif r.n_dims == cur[0]:
            best[k] = (cur[0], cur[1] + r.value)
    out: dict[str, dict[str, float]] = {c: defaultdict(float) for c in copy_ids}
    for (copy_id, _d, metric), (_n, value) in best.items():
        out[copy_id][metric] += value
    return out


# ---- reviewers and the user directory --------------------------------------------------------


async def list_reviewers(session: AsyncSession, tenant_id: str) -> Sequence[Any]:
    t = Reviewer.__table__  # type: ignore[attr-defined]
    q = select(t).where(t.c.tenant_id == tenant_id).order_by(t.c.user_id)
    return (await session.execute(q)).all()


async def is_reviewer(session: AsyncSession, tenant_id: str, user_id: str) -> bool:
    t = Reviewer.__table__  # type: ignore[attr-defined]
    q = select(t.c.user_id).where(t.c.tenant_id == tenant_id, t.c.user_id == user_id)
    return (await session.scalar(q)) is not None


async def upsert_reviewer(session: AsyncSession, values: dict[str, Any]) -> None:
    t = Reviewer.__table__  # type: ignore[attr-defined]
    where = (t.c.tenant_id == values["tenant_id"], t.c.user_id == values["user_id"])
    if (await session.scalar(select(t.c.user_id).where(*where))) is None:
        await session.execute(t.insert().values(**values))
    else:
        await session.execute(t.update().where(*where).values(note=values["note"]))


async def delete_reviewer(session: AsyncSession, tenant_id: str, user_id: str) -> int:
    t = Reviewer.__table__  # type: ignore[attr-defined]
    res = await session.execute(delete(t).where(t.c.tenant_id == tenant_id, t.c.user_id == user_id))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


async def upsert_user(session: AsyncSession, values: dict[str, Any]) -> None:
    t = ContentUser.__table__  # type: ignore[attr-defined]
    where = (t.c.tenant_id == values["tenant_id"], t.c.user_id == values["user_id"])
    if (await session.scalar(select(t.c.user_id).where(*where))) is None:
        await session.execute(t.insert().values(**values))
    else:
        await session.execute(t.update().where(*where).values(**values))


async def user_names(session: AsyncSession, tenant_id: str, user_ids: set[str]) -> dict[str, str]:
    if not user_ids:
        return {}
    t = ContentUser.__table__  # type: ignore[attr-defined]
    q = select(t.c.user_id, t.c.name).where(
        t.c.tenant_id == tenant_id, t.c.user_id.in_(sorted(user_ids))
    )
    return {r.user_id: r.name for r in (await session.execute(q)).all()}


async def open_brief_for(
    session: AsyncSession, tenant_id: str, store_id: str, campaign_id: str, copy_type: str
) -> Any:
    """The open (or started) campaign brief of this campaign and copy type, earliest due first."""
    t = Brief.__table__  # type: ignore[attr-defined]
    q = (
        select(t)
        .where(
            t.c.tenant_id == tenant_id,
            t.c.store_id == store_id,
            t.c.campaign_id == campaign_id,
            t.c.copy_type == copy_type,
            t.c.status.in_(("open", "in_progress")),
        )
        .order_by(t.c.due, t.c.id)
        .limit(1)
    )
    return (await session.execute(q)).first()
