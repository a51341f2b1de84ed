"""Queries of ingest. Repositories flush, never commit; the request or consumer commits."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.models import MetricRow, Store, Tenant, User
from shared.auth import AuthKey

STORES: Table = Store.__table__  # type: ignore[attr-defined]
TENANTS: Table = Tenant.__table__  # type: ignore[attr-defined]
USERS: Table = User.__table__  # type: ignore[attr-defined]
KEYS: Table = AuthKey.__table__  # type: ignore[attr-defined]
METRICS: Table = MetricRow.__table__  # type: ignore[attr-defined]


# ---- registry --------------------------------------------------------------------------------


async def get_tenant(session: AsyncSession, tenant_id: str) -> Any:
    return (await session.execute(select(TENANTS).where(TENANTS.c.id == tenant_id))).first()


async def insert_tenant(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(TENANTS.insert().values(**values))


async def get_user(session: AsyncSession, tenant_id: str, user_id: str) -> Any:
    return (
        await session.execute(
            select(USERS).where(USERS.c.tenant_id == tenant_id, USERS.c.id == user_id)
        )
    ).first()


async def get_user_by_email(session: AsyncSession, tenant_id: str, email: str) -> Any:
    return (
        await session.execute(
            select(USERS).where(USERS.c.tenant_id == tenant_id, USERS.c.email == email)
        )
    ).first()


async def insert_user(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(USERS.insert().values(**values))


async def insert_key(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(KEYS.insert().values(**values))


async def get_key(session: AsyncSession, tenant_id: str | None, key_id: str) -> Any:
    q = select(KEYS).where(KEYS.c.key_id == key_id)
    if tenant_id is not None:
        q = q.where(KEYS.c.tenant_id == tenant_id)
    return (await session.execute(q)).first()


async def list_keys(session: AsyncSession, tenant_id: str) -> Sequence[Any]:
    q = select(KEYS).where(KEYS.c.tenant_id == tenant_id, KEYS.c.lookup != "-")
    return (await session.execute(q.order_by(KEYS.c.created_at))).all()


async def set_key_revoked(session: AsyncSession, key_id: str, when: datetime) -> None:
    await session.execute(KEYS.update().where(KEYS.c.key_id == key_id).values(revoked_at=when))


async def get_store(session: AsyncSession, tenant_id: str, store_id: str) -> Any:
    return (
        await session.execute(
            select(STORES).where(STORES.c.tenant_id == tenant_id, STORES.c.id == store_id)
        )
    ).first()


async def insert_store(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(STORES.insert().values(**values))


async def update_store(
    session: AsyncSession, tenant_id: str, store_id: str, values: dict[str, Any]
) -> None:
    await session.execute(
        STORES.update()
        .where(STORES.c.tenant_id == tenant_id, STORES.c.id == store_id)
        .values(**values)
    )


async def list_stores(
    session: AsyncSession,
    tenant_id: str,
    store_ids: frozenset[str] | None,
    after: str | None,
    limit: int,
) -> Sequence[Any]:
    q = select(STORES).where(STORES.c.tenant_id == tenant_id)
    if store_ids is not None:
        q = q.where(STORES.c.id.in_(sorted(store_ids)))
    if after:
        q = q.where(STORES.c.id > after)
    return (await session.execute(q.order_by(STORES.c.id).limit(limit))).all()


async def count_rows(session: AsyncSession, table: Table, tenant_id: str) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
        )
        or 0
    )


# ---- idempotent row upsert -------------------------------------------------------------------


@dataclass
class UpsertResult:
    inserted: list[dict[str, Any]]
    updated: list[dict[str, Any]]
    duplicates: int


async def upsert_rows(
    session: AsyncSession, table: Table, key_columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> UpsertResult:
    """Insert new rows, update changed values, count identical ones as duplicates.

    `rows` carry every column but id and are unique on key_columns. PostgreSQL: COPY into a temp
    table, then one INSERT ... ON CONFLICT ... DO UPDATE ... WHERE value changed RETURNING: exact
    under concurrency and free of the bind-parameter limit. SQLite: writers are serialised by
    BEGIN IMMEDIATE, so reading the existing values first is exact too.
    """
    if not rows:
        return UpsertResult([], [], 0)
    if session.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
        return await _upsert_postgres(session, table, key_columns, rows)
    return await _upsert_sqlite(session, table, key_columns, rows)


async def _upsert_sqlite(
    session: AsyncSession, table: Table, key_columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> UpsertResult:
    """Stage the rows in a temporary table (executemany), then classify them with one join on
    the unique key, insert the new ones and update the changed ones with one statement each:
    every loop runs inside SQLite, and nothing grows with the rows already stored. Exact because
    writers are serialised by BEGIN IMMEDIATE."""
    from sqlalchemy import Column, MetaData, and_, exists, insert, literal_column, update

    columns = [c for c in table.columns if c.name != "id"]
    stage = Table(
        f"stage_{table.name}",
        MetaData(),
        *[Column(c.name, c.type) for c in columns],
        prefixes=["TEMPORARY"],
    )
    conn = await session.connection()
    await conn.run_sync(lambda c: stage.create(c, checkfirst=True))
    await conn.execute(stage.delete())
    await conn.execute(insert(stage), list(rows))
    match = and_(*[table.c[k] == stage.c[k] for k in key_columns])
    found = await conn.execute(
        select(literal_column(f"{stage.name}.rowid"), table.c.value).select_from(
            stage.outerjoin(table, match)
        )
    )
    inserted: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    dupes = 0
    for rowid, value in found:
        row = rows[rowid - 1]
        if value is None:
            inserted.append(row)
        elif value != row["value"]:
            updated.append(row)
        else:
            dupes += 1
    names = [c.name for c in columns]
    if inserted:
        await conn.execute(
            insert(table).from_select(
                names, select(*[stage.c[n] for n in names]).where(~exists().where(match))
            )
        )
    if updated:
        values: dict[str, Any] = {"value": stage.c.value, "updated_at": stage.c.updated_at}
        if "source" in table.c:
            values["source"] = stage.c.source
        await conn.execute(
            update(table).where(match, table.c.value != stage.c.value).values(**values)
        )
    return UpsertResult(inserted, updated, dupes)


async def _upsert_postgres(
    session: AsyncSession, table: Table, key_columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> UpsertResult:
    import json

    columns = [c.name for c in table.columns if c.name != "id"]
    tmp = f"tmp_upsert_{uuid.uuid4().hex[:12]}"
    conn = await session.connection()
    await conn.execute(
        text(f"CREATE TEMP TABLE {tmp} (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DROP")
    )
    await conn.execute(text(f"ALTER TABLE {tmp} DROP COLUMN id"))
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    json_cols = {c.name for c in table.columns if c.type.__class__.__name__ == "JSON"}
    # The canonical dimensions key is already the dimensions' JSON text: COPY it as is.
    sources = ["dims_key" if c == "dimensions" and "dims_key" in table.c else c for c in columns]
    slow = [i for i, c in enumerate(sources) if c in json_cols]
    get = itemgetter(*sources)
    if slow:
        records = []
        for r in rows:
            rec = list(get(r))
            for i in slow:
                rec[i] = json.dumps(rec[i], separators=(",", ":"))
            records.append(tuple(rec))
    else:
        records = [get(r) for r in rows]
    await driver.copy_records_to_table(tmp, records=records, columns=columns)  # type: ignore[union-attr]
    src: Any = select(*[literal_column(c) for c in columns]).select_from(text(tmp))
    stmt: Any = pg_insert(table).from_select(columns, src)
    update_cols = {"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at}
    if "source" in table.c:
        update_cols["source"] = stmt.excluded.source
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in key_columns],
        set_=update_cols,
        where=table.c.value.is_distinct_from(stmt.excluded.value),
    ).returning(
        literal_column("(xmax = 0)").label("inserted"),
        *[table.c[k] for k in key_columns],
        table.c.value,
    )
    res = await conn.execute(stmt)
    key_of = itemgetter(*key_columns)
    by_key = {key_of(r): r for r in rows}
    inserted: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    width = len(key_columns)
    for hit in res:
        original = by_key[tuple(hit[1 : 1 + width]) if width > 1 else hit[1]]
        (inserted if hit[0] else updated).append(original)
    return UpsertResult(inserted, updated, len(rows) - len(inserted) - len(updated))


def now() -> datetime:
    return datetime.now(UTC)


# ---- data health -----------------------------------------------------------------------------


async def bump_source_health(
    session: AsyncSession,
    tenant_id: str,
    store_id: str,
    source: str,
    outcome: str,
    error: str | None,
    now: datetime,
) -> None:
    """Count one delivery in one statement: concurrent deliveries of a store neither collide
    on creating its row nor cost a second round trip."""
    from services.ingest.models import SourceHealth

    t: Table = SourceHealth.__table__  # type: ignore[attr-defined]
    first: dict[str, Any] = {"delivered": 0, "failed": 0, "rejected": 0, outcome: 1}
    bump: dict[str, Any] = {outcome: t.c[outcome] + 1}
    if outcome == "delivered":
        first["last_delivery_at"] = bump["last_delivery_at"] = now
    else:
        first["last_failure_at"] = bump["last_failure_at"] = now
        first["last_error"] = bump["last_error"] = (error or "")[:2000]
    dialect = session.bind.dialect.name  # type: ignore[union-attr]
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt: Any = make(t).values(tenant_id=tenant_id, store_id=store_id, source=source, **first)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[t.c.tenant_id, t.c.store_id, t.c.source], set_=bump
        )
    )


async def source_health(session: AsyncSession, tenant_id: str, store_id: str) -> Sequence[Any]:
    from services.ingest.models import SourceHealth

    t: Table = SourceHealth.__table__  # type: ignore[attr-defined]
    return (
        await session.execute(
            select(t)
            .where(t.c.tenant_id == tenant_id, t.c.store_id == store_id)
            .order_by(t.c.source)
        )
    ).all()


# ---- reading series --------------------------------------------------------------------------


async def metric_levels(
    session: AsyncSession,
    tenant_id: str,
    store_ids: Sequence[str],
    metrics: Sequence[str],
    start: Any,
    end: Any,
) -> dict[str, set[str]]:
    """The levels of detail (dimension-name sets) present per metric in the range."""
    t = METRICS
    q = (
        select(t.c.metric, t.c.dims_level)
        .where(
            t.c.tenant_id == tenant_id,
            t.c.store_id.in_(list(store_ids)),
            t.c.metric.in_(list(metrics)),
            t.c.date >= start,
            t.c.date <= end,
        )
        .group_by(t.c.metric, t.c.dims_level)
    )
    out: dict[str, set[str]] = {}
    for metric, level in await session.execute(q):
        out.setdefault(metric, set()).add(level)
    return out


async def metric_levels_by_day(
    session: AsyncSession,
    tenant_id: str,
    store_ids: Sequence[str],
    metrics: Sequence[str],
    start: Any,
    end: Any,
) -> list[Any]:
    """(store_id, date, metric, dims_level) for each level of detail present in the range."""
    t = METRICS
    keys = (t.c.store_id, t.c.date, t.c.metric, t.c.dims_level)
    q = (
        select(*keys)
        .where(
            t.c.tenant_id == tenant_id,
            t.c.store_id.in_(list(store_ids)),
            t.c.metric.in_(list(metrics)),
            t.c.date >= start,
            t.c.date <= end,
        )
        .group_by(*keys)
    )
    return list((await session.execute(q)).all())


async def aggregate_metric(
    session: AsyncSession,
    tenant_id: str,
    store_ids: Sequence[str],
    metric: str,
    level: str,
    group_by: Sequence[str],
    start: Any,
    end: Any,
    *,
    average: bool,
    by_store: bool = False,
    filters: Mapping[str, Sequence[str]] | None = None,
) -> list[Any]:
    """Sum (or average, for scores) one metric at one level, by date and the group_by
    dimensions (and by store when asked), over the rows whose dimensions match the filters
    (name -> allowed values)."""
    t = METRICS
    dims = [t.c.dimensions[k].as_string().label(f"d_{i}") for i, k in enumerate(group_by)]
    agg = func.avg(t.c.value) if average else func.sum(t.c.value)
    keys: list[Any] = [t.c.date, *dims]
    if by_store:
        keys.insert(0, t.c.store_id)
    q = (
        select(*keys, agg.label("v"), func.count().label("n"))
        .where(
            t.c.tenant_id == tenant_id,
            t.c.store_id.in_(list(store_ids)),
            t.c.metric == metric,
            t.c.dims_level == level,
            t.c.date >= start,
            t.c.date <= end,
            *(t.c.dimensions[k].as_string().in_(list(v)) for k, v in (filters or {}).items()),
        )
        .group_by(*keys)
    )
    return list((await session.execute(q)).all())


async def delete_metric_rows(
    session: AsyncSession,
    tenant_id: str,
    store_id: str,
    start: Any,
    end: Any,
    metrics: Sequence[str] | None,
    level: str | None,
    *,
    before: datetime | None = None,
    dates: Sequence[Any] | None = None,
) -> list[Any]:
    """Delete a store's rows of [start, end] (of these metrics, of this level of detail; None:
    all; `before`: only rows last written before then); returns (date, metric, dimensions) of
    each row deleted."""
    t = METRICS
    q = t.delete().where(
        t.c.tenant_id == tenant_id,
        t.c.store_id == store_id,
        t.c.date >= start,
        t.c.date <= end,
    )
    if metrics is not None:
        q = q.where(t.c.metric.in_(list(metrics)))
    if level is not None:
        q = q.where(t.c.dims_level == level)
    if before is not None:
        q = q.where(t.c.updated_at < before)
    if dates is not None:
        q = q.where(t.c.date.in_(list(dates)))
    res = await session.execute(q.returning(t.c.date, t.c.metric, t.c.dimensions))
    return list(res.all())


async def benchmark_rows(
    session: AsyncSession,
    tenant_id: str,
    market: str,
    category: str,
    metrics: Sequence[str],
    start: Any,
    end: Any,
) -> list[Any]:
    from services.ingest.models import BenchmarkRow

    t: Table = BenchmarkRow.__table__  # type: ignore[attr-defined]
    q = (
        select(t.c.date, t.c.metric, t.c.dimensions, t.c.value, t.c.value_kind)
        .where(
            t.c.tenant_id == tenant_id,
            t.c.market == market,
            t.c.category == category,
            t.c.metric.in_(list(metrics)),
            t.c.date >= start,
            t.c.date <= end,
        )
        .order_by(t.c.date, t.c.metric)
    )
    return list((await session.execute(q)).all())


async def competitor_rows(
    session: AsyncSession,
    tenant_id: str,
    store_id: str,
    competitor_id: str,
    metrics: Sequence[str],
    start: Any,
    end: Any,
) -> list[Any]:
    from services.ingest.models import CompetitorRow

    t: Table = CompetitorRow.__table__  # type: ignore[attr-defined]
    q = (
        select(
            t.c.date,
            t.c.metric,
            t.c.dimensions,
            t.c.value,
            literal_column("'absolute'").label("value_kind"),
        )
        .where(
            t.c.tenant_id == tenant_id,
            t.c.store_id == store_id,
            t.c.competitor_id == competitor_id,
            t.c.metric.in_(list(metrics)),
            t.c.date >= start,
            t.c.date <= end,
        )
        .order_by(t.c.date, t.c.metric)
    )
    return list((await session.execute(q)).all())


async def competitor_exists(
    session: AsyncSession, tenant_id: str, store_id: str, competitor_id: str
) -> bool:
    from services.ingest.models import CompetitorRow

    t: Table = CompetitorRow.__table__  # type: ignore[attr-defined]
    q = (
        select(t.c.id)
        .where(
            t.c.tenant_id == tenant_id,
            t.c.store_id == store_id,
            t.c.competitor_id == competitor_id,
        )
        .limit(1)
    )
    return (await session.execute(q)).first() is not None


async def insert_correction(session: AsyncSession, values: dict[str, Any]) -> None:
    from services.ingest.models import MetricCorrection

    table: Table = MetricCorrection.__table__  # type: ignore[attr-defined]
    await session.execute(table.insert().values(**values))


async def list_corrections(
    session: AsyncSession, tenant_id: str, store_id: str, limit: int
) -> list[Any]:
    from services.ingest.models import MetricCorrection

    t: Table = MetricCorrection.__table__  # type: ignore[attr-defined]
    q = (
        select(t)
        .where(t.c.tenant_id == tenant_id, t.c.store_id == store_id)
        .order_by(t.c.created_at.desc(), t.c.id)
        .limit(limit)
    )
    return list((await session.execute(q)).all())


async def upsert_fx(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> UpsertResult:
    from services.ingest.models import FxRate

    return await upsert_rows(
        session,
        FxRate.__table__,  # type: ignore[attr-defined]
        ("tenant_id", "date", "base", "quote"),
        rows,
    )


async def fx_rates(session: AsyncSession, tenant_id: str, quote: str, end: Any) -> list[Any]:
    from services.ingest.models import FxRate

    t: Table = FxRate.__table__  # type: ignore[attr-defined]
    q = (
        select(t.c.date, t.c.base, t.c.value)
        .where(t.c.tenant_id == tenant_id, t.c.quote == quote, t.c.date <= end)
        .order_by(t.c.date)
    )
    return list((await session.execute(q)).all())


async def stores_of(
    session: AsyncSession, tenant_id: str, store_ids: frozenset[str] | None
) -> list[Any]:
    q = select(STORES).where(STORES.c.tenant_id == tenant_id)
    if store_ids is not None:
        q = q.where(STORES.c.id.in_(sorted(store_ids)))
    return list((await session.execute(q.order_by(STORES.c.id))).all())


# ---- import jobs -----------------------------------------------------------------------------


def _jobs() -> Table:
    from services.ingest.models import ImportJob

    return ImportJob.__table__  # type: ignore[attr-defined]


def _problems() -> Table:
    from services.ingest.models import ImportProblem

    return ImportProblem.__table__  # type: ignore[attr-defined]


async def insert_job(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(_jobs().insert().values(**values))


async def get_job(session: AsyncSession, job_id: str, tenant_id: str | None = None) -> Any:
    t = _jobs()
    q = select(t).where(t.c.id == job_id)
    if tenant_id is not None:
        q = q.where(t.c.tenant_id == tenant_id)
    return (await session.execute(q)).first()


async def update_job(session: AsyncSession, job_id: str, values: dict[str, Any]) -> None:
    t = _jobs()
    await session.execute(t.update().where(t.c.id == job_id).values(**values))


async def add_job_counts(
    session: AsyncSession, job_id: str, values: dict[str, Any], counts: dict[str, int]
) -> None:
    t = _jobs()
    await session.execute(
        t.update()
        .where(t.c.id == job_id)
        .values(**values, **{k: t.c[k] + v for k, v in counts.items()})
    )


async def next_job(session: AsyncSession) -> str | None:
    t = _jobs()
    return await session.scalar(
        select(t.c.id)
        .where(t.c.status.in_(("queued", "running")))
        .order_by(t.c.created_at)
        .limit(1)
    )


async def list_jobs(
    session: AsyncSession, tenant_id: str, store_id: str, limit: int
) -> Sequence[Any]:
    t = _jobs()
    return (
        await session.execute(
            select(t)
            .where(t.c.tenant_id == tenant_id, t.c.store_id == store_id)
            .order_by(t.c.created_at.desc())
            .limit(limit)
        )
    ).all()


async def insert_problems(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(_problems().insert(), list(rows))


async def job_problems(session: AsyncSession, job_id: str, after: int, limit: int) -> Sequence[Any]:
    t = _problems()
    return (
        await session.execute(
            select(t).where(t.c.job_id == job_id, t.c.id > after).order_by(t.c.id).limit(limit)
        )
    ).all()


async def days_with_rows(
    session: AsyncSession, tenant_id: str, store_id: str, start: Any, end: Any
) -> set[Any]:
    t = METRICS
    q = (
        select(t.c.date)
        .where(
            t.c.tenant_id == tenant_id, t.c.store_id == store_id, t.c.date >= start, t.c.date <= end
        )
        .group_by(t.c.date)
    )
    return {d for (d,) in await session.execute(q)}


async def last_data_date(session: AsyncSession, tenant_id: str, store_id: str) -> Any:
    t = METRICS
    return await session.scalar(
        select(func.max(t.c.date)).where(t.c.tenant_id == tenant_id, t.c.store_id == store_id)
    )


async def stale_store_count(session: AsyncSession, before: datetime) -> int:
    """Active stores whose every source last delivered before `before` (or never)."""
    from services.ingest.models import SourceHealth

    h: Table = SourceHealth.__table__  # type: ignore[attr-defined]
    latest = (
        select(h.c.tenant_id, h.c.store_id, func.max(h.c.last_delivery_at).label("last"))
        .group_by(h.c.tenant_id, h.c.store_id)
        .subquery()
    )
    q = (
        select(func.count())
        .select_from(
            STORES.outerjoin(
                latest,
                (latest.c.tenant_id == STORES.c.tenant_id) & (latest.c.store_id == STORES.c.id),
            )
        )
        .where(STORES.c.status == "active", (latest.c.last.is_(None)) | (latest.c.last < before))
    )
    return int(await session.scalar(q) or 0)
