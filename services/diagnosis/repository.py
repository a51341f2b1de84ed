"""Queries of diagnosis; flush, never commit (the request or the consumer commits)."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import String, Table, and_, func, or_, select, type_coerce, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis.engine.columns import SeriesColumns, codes_of
from services.diagnosis.models import (
    BenchmarkRow,
    CampaignWindowRow,
    CompetitorRow,
    FindingRow,
    FindingTransition,
    FxRateRow,
    KnownStore,
    KnownTenant,
    Report,
    SeriesRow,
    StoreDayState,
)

STORES: Table = KnownStore.__table__  # type: ignore[attr-defined]
SERIES: Table = SeriesRow.__table__  # type: ignore[attr-defined]
BENCH: Table = BenchmarkRow.__table__  # type: ignore[attr-defined]
COMP: Table = CompetitorRow.__table__  # type: ignore[attr-defined]
CAMPAIGNS: Table = CampaignWindowRow.__table__  # type: ignore[attr-defined]
DAYS: Table = StoreDayState.__table__  # type: ignore[attr-defined]
REPORTS: Table = Report.__table__  # type: ignore[attr-defined]
FINDINGS: Table = FindingRow.__table__  # type: ignore[attr-defined]
TRANSITIONS: Table = FindingTransition.__table__  # type: ignore[attr-defined]
TENANTS: Table = KnownTenant.__table__  # type: ignore[attr-defined]
FX: Table = FxRateRow.__table__  # type: ignore[attr-defined]

# Rows per statement of a bulk upsert: under SQLite's and asyncpg's bind-parameter limits.
CHUNK = 2000


def canonical(dimensions: dict[str, str]) -> str:
    return json.dumps(dimensions, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _insert(session: AsyncSession, table: Table) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


def is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


# ---- stores ---------------------------------------------------------------------------------


async def upsert_store(session: AsyncSession, values: dict[str, Any]) -> None:
    stmt = _insert(session, STORES).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "store_id"],
        set_={k: stmt.excluded[k] for k in values if k not in ("tenant_id", "store_id")},
        where=STORES.c.as_of <= stmt.excluded.as_of,
    )
    await session.execute(stmt)


async def upsert_tenant(session: AsyncSession, values: dict[str, Any]) -> None:
    stmt = _insert(session, TENANTS).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id"],
        set_={k: stmt.excluded[k] for k in values if k != "tenant_id"},
        where=TENANTS.c.as_of <= stmt.excluded.as_of,
    )
    await session.execute(stmt)


async def get_tenant(session: AsyncSession, tenant_id: str) -> Any:
    return (await session.execute(select(TENANTS).where(TENANTS.c.tenant_id == tenant_id))).first()


async def upsert_fx_rates(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Rates are small batches (one a currency a day): one statement per chunk of rows."""
    for start in range(0, len(rows), 500):
        part = list(rows[start : start + 500])
        stmt = _insert(session, FX).values(part)
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "base", "quote", "date"],
            set_={"value": stmt.excluded.value},
        )
        await session.execute(stmt)


async def fx_rate_on(
    session: AsyncSession, tenant_id: str, base: str, quote: str, day: dt.date
) -> float | None:
    """The latest rate on or before the day (ingest's rule for its rollup)."""
    q = (
        select(FX.c.value)
        .where(
            FX.c.tenant_id == tenant_id,
            FX.c.base == base,
            FX.c.quote == quote,
            FX.c.date <= day,
        )
        .order_by(FX.c.date.desc())
        .limit(1)
    )
    value = await session.scalar(q)
    return None if value is None else float(value)


async def fx_rates_of(
    session: AsyncSession, tenant_id: str, bases: Sequence[str], quote: str
) -> list[Any]:
    q = (
        select(FX.c.base, FX.c.date, FX.c.value)
        .where(FX.c.tenant_id == tenant_id, FX.c.base.in_(list(bases)), FX.c.quote == quote)
        .order_by(FX.c.base, FX.c.date)
    )
    return list((await session.execute(q)).all())


async def store_markets(
    session: AsyncSession, tenant_id: str, store_ids: Iterable[str]
) -> dict[str, str]:
    ids = sorted(set(store_ids))
    if not ids:
        return {}
    q = select(STORES.c.store_id, STORES.c.market).where(
        STORES.c.tenant_id == tenant_id, STORES.c.store_id.in_(ids)
    )
    return {r.store_id: r.market for r in (await session.execute(q)).all()}


async def get_store(session: AsyncSession, tenant_id: str, store_id: str) -> Any:
    return (
        await session.execute(
            select(STORES).where(STORES.c.tenant_id == tenant_id, STORES.c.store_id == store_id)
        )
    ).first()


async def active_stores(session: AsyncSession) -> list[Any]:
    return list((await session.execute(select(STORES).where(STORES.c.status == "active"))).all())


async def stores_of_market(
    session: AsyncSession, tenant_id: str, market: str, category: str
) -> list[str]:
    rows = await session.execute(
        select(STORES.c.store_id).where(
            STORES.c.tenant_id == tenant_id,
            STORES.c.market == market,
            STORES.c.category == category,
        )
    )
    return [r[0] for r in rows]


# ---- series ---------------------------------------------------------------------------------


async def upsert_series(
    session: AsyncSession, tenant_id: str, store_id: str, rows: Sequence[dict[str, Any]]
) -> set[dt.date]:
    """Insert or update rows; returns the dates where something changed (a replay: none)."""
    changed: set[dt.date] = set()
    for i in range(0, len(rows), CHUNK):
        part = rows[i : i + CHUNK]
        stmt = _insert(session, SERIES).values(
            [
                {
                    "tenant_id": tenant_id,
                    "store_id": store_id,
                    "date": r["date"],
                    "metric": r["metric"],
                    "dims": r["dims"],
                    "value": r["value"],
                }
                for r in part
            ]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "store_id", "date", "metric", "dims"],
            set_={"value": stmt.excluded.value},
            where=SERIES.c.value != stmt.excluded.value,
        ).returning(SERIES.c.date)
        changed.update(r[0] for r in await session.execute(stmt))
    return changed


async def delete_series(
    session: AsyncSession,
    tenant_id: str,
    store_id: str,
    keys: Sequence[tuple[dt.date, str, str]],
) -> set[dt.date]:
    """Delete rows by identity (date, metric, canonical dims); returns the dates that lost one."""
    changed: set[dt.date] = set()
    by_day: dict[tuple[dt.date, str], list[str]] = defaultdict(list)
    for d, m, key in keys:
        by_day[(d, m)].append(key)
    for (d, m), dims in by_day.items():
        for i in range(0, len(dims), CHUNK):
            res = await session.execute(
                SERIES.delete()
                .where(
                    SERIES.c.tenant_id == tenant_id,
                    SERIES.c.store_id == store_id,
                    SERIES.c.date == d,
                    SERIES.c.metric == m,
                    SERIES.c.dims.in_(dims[i : i + CHUNK]),
                )
                .returning(SERIES.c.date)
            )
            changed.update(r[0] for r in res)
    return changed


async def load_series(
    session: AsyncSession, tenant_id: str, store_id: str, start: dt.date, end: dt.date
) -> SeriesColumns:
    """A store's rows of [start, end] in one query, as the engine's columns.

    A wide store-day is 100,000+ rows: nothing is done per row in Python. The rows are fetched
    (on SQLite through the driver in one call, no result-row objects), transposed, and each
    column turned into a table of its distinct values and codes; each distinct date is parsed
    once (read untyped: SQLite hands back text, asyncpg a date) and the distinct dimension
    strings are decoded in one JSON document. The rows keep the order the query returns."""
    fetched: Sequence[Sequence[Any]] | None = None
    if not is_postgres(session):
        conn = await session.connection()
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        if driver is not None and hasattr(driver, "execute_fetchall"):
            fetched = await driver.execute_fetchall(
                "SELECT date, metric, dims, value FROM diag_series WHERE tenant_id = ? "
                "AND store_id = ? AND date >= ? AND date <= ?",
                (tenant_id, store_id, start.isoformat(), end.isoformat()),
            )
    if fetched is None:
        result = await session.execute(
            select(
                type_coerce(SERIES.c.date, String), SERIES.c.metric, SERIES.c.dims, SERIES.c.value
            ).where(
                SERIES.c.tenant_id == tenant_id,
                SERIES.c.store_id == store_id,
                SERIES.c.date >= start,
                SERIES.c.date <= end,
            )
        )
        fetched = result.all()
    return series_columns(fetched)


def series_columns(fetched: Sequence[Sequence[Any]]) -> SeriesColumns:
    """(date, metric, dims, value) rows as the engine's columns (see load_series)."""
    if not fetched:
        none = np.zeros(0, dtype=np.int64)
        return SeriesColumns((), (), (), none, none, none, np.zeros(0))
    day_table, day_codes = codes_of(list(map(itemgetter(0), fetched)))
    metric_table, metric_codes = codes_of(list(map(itemgetter(1), fetched)))
    dims_table, dims_codes = codes_of(list(map(itemgetter(2), fetched)))
    return SeriesColumns(
        [d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)) for d in day_table],
        metric_table,
        decode_dims(dims_table),
        day_codes,
        metric_codes,
        dims_codes,
        np.fromiter(map(itemgetter(3), fetched), dtype=np.float64, count=len(fetched)),
        # distinct canonical strings: distinct dimensions, items in name order
        canonical_dims=True,
    )


def decode_dims(texts: Sequence[str]) -> list[dict[str, str]]:
    """Canonical dimension strings (as `canonical` writes them) decoded in one JSON document
    (one call instead of one per string); anything unexpected is decoded one by one."""
    if all(t[:1] == "{" and t[-1:] == "}" for t in texts):
        try:
            out = json.loads("[" + ",".join(texts) + "]")
        except ValueError:
            out = None
        if isinstance(out, list) and len(out) == len(texts) and all(type(d) is dict for d in out):
            return out
    return [json.loads(t) for t in texts]


async def has_series(session: AsyncSession, tenant_id: str, store_id: str) -> bool:
    found = await session.scalar(
        select(SERIES.c.date)
        .where(SERIES.c.tenant_id == tenant_id, SERIES.c.store_id == store_id)
        .limit(1)
    )
    return found is not None


async def upsert_benchmarks(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[dt.date]:
    changed: set[dt.date] = set()
    for i in range(0, len(rows), CHUNK):
        stmt = _insert(session, BENCH).values(list(rows[i : i + CHUNK]))
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "market", "category", "date", "metric"],
            set_={"value": stmt.excluded.value, "value_kind": stmt.excluded.value_kind},
            where=or_(
                BENCH.c.value != stmt.excluded.value,
                BENCH.c.value_kind != stmt.excluded.value_kind,
            ),
        ).returning(BENCH.c.date)
        changed.update(r[0] for r in await session.execute(stmt))
    return changed


async def load_benchmark(
    session: AsyncSession,
    tenant_id: str,
    market: str,
    category: str,
    start: dt.date,
    end: dt.date,
) -> list[tuple[dt.date, str, float, str]]:
    result = await session.execute(
        select(BENCH.c.date, BENCH.c.metric, BENCH.c.value, BENCH.c.value_kind).where(
            BENCH.c.tenant_id == tenant_id,
            BENCH.c.market == market,
            BENCH.c.category == category,
            BENCH.c.date >= start,
            BENCH.c.date <= end,
        )
    )
    return [tuple(r) for r in result]


async def upsert_competitor_rows(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> set[dt.date]:
    changed: set[dt.date] = set()
    for i in range(0, len(rows), CHUNK):
        stmt = _insert(session, COMP).values(list(rows[i : i + CHUNK]))
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "store_id", "competitor_id", "date", "metric", "dims"],
            set_={"value": stmt.excluded.value},
            where=COMP.c.value != stmt.excluded.value,
        ).returning(COMP.c.date)
        changed.update(r[0] for r in await session.execute(stmt))
    return changed


async def load_competitors(
    session: AsyncSession, tenant_id: str, store_id: str, start: dt.date, end: dt.date
) -> list[tuple[str, dt.date, str, float]]:
    """Store-level competitor rows (dimensions {})."""
    result = await session.execute(
        select(COMP.c.competitor_id, COMP.c.date, COMP.c.metric, COMP.c.value).where(
            COMP.c.tenant_id == tenant_id,
            COMP.c.store_id == store_id,
            COMP.c.dims == "{}",
            COMP.c.date >= start,
            COMP.c.date <= end,
        )
    )
    return [tuple(r) for r in result]


# ---- campaigns ------------------------------------------------------------------------------


async def upsert_campaign(session: AsyncSession, values: dict[str, Any]) -> None:
    stmt = _insert(session, CAMPAIGNS).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["campaign_id"],
        set_={k: stmt.excluded[k] for k in values if k != "campaign_id"},
        where=CAMPAIGNS.c.as_of <= stmt.excluded.as_of,
    )
    await session.execute(stmt)


async def campaigns_between(
    session: AsyncSession, tenant_id: str, store_id: str, start: dt.date, end: dt.date
) -> list[Any]:
    result = await session.execute(
        select(CAMPAIGNS).where(
            CAMPAIGNS.c.tenant_id == tenant_id,
            CAMPAIGNS.c.store_id == store_id,
            CAMPAIGNS.c.start <= end,
            CAMPAIGNS.c.end >= start,
        )
    )
    return list(result.all())


# ---- the schedule ---------------------------------------------------------------------------


async def touch_days(
    session: AsyncSession, tenant_id: str, store_id: str, days: Iterable[dt.date], now: datetime
) -> None:
    """Mark store-days as having new data (creating their schedule rows)."""
    values = [
        {
            "tenant_id": tenant_id,
            "store_id": store_id,
            "date": d,
            "data_version": 1,
            "data_changed_at": now,
            "diagnosed_data_version": 0,
            "diagnosed_version": 0,
        }
        for d in sorted(set(days))
    ]
    for i in range(0, len(values), CHUNK):
        stmt = _insert(session, DAYS).values(values[i : i + CHUNK])
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "store_id", "date"],
            set_={"data_version": DAYS.c.data_version + 1, "data_changed_at": now},
        )
        await session.execute(stmt)


async def ensure_days(
    session: AsyncSession, keys: Sequence[tuple[str, str, dt.date]], now: datetime
) -> None:
    """Create schedule rows (if absent) for days due by the clock, data or not."""
    if not keys:
        return
    values = [
        {
            "tenant_id": t,
            "store_id": s,
            "date": d,
            "data_version": 1,
            "data_changed_at": now,
            "diagnosed_data_version": 0,
            "diagnosed_version": 0,
        }
        for t, s, d in keys
    ]
    for i in range(0, len(values), CHUNK):
        stmt = _insert(session, DAYS).values(values[i : i + CHUNK]).on_conflict_do_nothing()
        await session.execute(stmt)


async def recent_store_days(session: AsyncSession, since: dt.date) -> set[tuple[str, str]]:
    """Stores that had data on or after a date (their feed is live)."""
    rows = await session.execute(
        select(DAYS.c.tenant_id, DAYS.c.store_id).where(DAYS.c.date >= since).distinct()
    )
    return {(r[0], r[1]) for r in rows}


async def pending_days(
    session: AsyncSession,
    since: dt.date,
    until: dt.date,
    now: datetime,
    debounce: dt.timedelta,
    limit: int,
) -> list[Any]:
    """Store-days that need a diagnosis (never, or data changed since), not claimed, quiet for
    the debounce, of known stores; the caller applies each store's cut-off."""
    q = (
        select(
            DAYS.c.tenant_id,
            DAYS.c.store_id,
            DAYS.c.date,
            DAYS.c.data_version,
            DAYS.c.diagnosed_version,
            STORES.c.timezone,
        )
        .join(
            STORES,
            and_(STORES.c.tenant_id == DAYS.c.tenant_id, STORES.c.store_id == DAYS.c.store_id),
        )
        .where(
            DAYS.c.date >= since,
            DAYS.c.date <= until,
            DAYS.c.data_version > DAYS.c.diagnosed_data_version,
            DAYS.c.data_changed_at <= now - debounce,
            or_(DAYS.c.claimed_until.is_(None), DAYS.c.claimed_until < now),
            STORES.c.status == "active",
        )
        .order_by(DAYS.c.tenant_id, DAYS.c.store_id, DAYS.c.date)
        .limit(limit)
    )
    return list((await session.execute(q)).all())


async def claim_days(
    session: AsyncSession,
    tenant_id: str,
    store_id: str,
    days: Sequence[dt.date],
    worker: str,
    now: datetime,
    until: datetime,
) -> list[dt.date]:
    """Claim store-days for one worker; only rows nobody holds are taken (a conditional update,
    so two pods racing for a day get it once)."""
    taken: list[dt.date] = []
    for d in days:
        res = await session.execute(
            update(DAYS)
            .where(
                DAYS.c.tenant_id == tenant_id,
                DAYS.c.store_id == store_id,
                DAYS.c.date == d,
                or_(DAYS.c.claimed_until.is_(None), DAYS.c.claimed_until < now),
            )
            .values(claimed_by=worker, claimed_until=until)
        )
        if res.rowcount == 1:  # type: ignore[attr-defined]
            taken.append(d)
    return taken


async def get_day(session: AsyncSession, tenant_id: str, store_id: str, day: dt.date) -> Any:
    return (
        await session.execute(
            select(DAYS).where(
                DAYS.c.tenant_id == tenant_id, DAYS.c.store_id == store_id, DAYS.c.date == day
            )
        )
    ).first()


async def finish_day(
    session: AsyncSession,
    tenant_id: str,
    store_id: str,
    day: dt.date,
    data_version: int | None,
    worker: str | None,
) -> None:
    """Record what the diagnosis read and release the claim (only the holder's claim)."""
    values: dict[str, Any] = {"claimed_by": None, "claimed_until": None}
    if data_version is not None:
        values["diagnosed_data_version"] = data_version
    q = update(DAYS).where(
        DAYS.c.tenant_id == tenant_id, DAYS.c.store_id == store_id, DAYS.c.date == day
    )
    if worker is not None:
        q = q.where(DAYS.c.claimed_by == worker)
    await session.execute(q.values(**values))


async def release_day(
    session: AsyncSession, tenant_id: str, store_id: str, day: dt.date, worker: str
) -> None:
    await session.execute(
        update(DAYS)
        .where(
            DAYS.c.tenant_id == tenant_id,
            DAYS.c.store_id == store_id,
            DAYS.c.date == day,
            DAYS.c.claimed_by == worker,
        )
        .values(claimed_by=None, claimed_until=None)
    )


async def touch_market_days(
    session: AsyncSession,
    tenant_id: str,
    store_ids: Sequence[str],
    days: Iterable[dt.date],
    now: datetime,
) -> None:
    """New market or competitor data changes existing store-days only."""
    ds = sorted(set(days))
    if not store_ids or not ds:
        return
    await session.execute(
        update(DAYS)
        .where(
            DAYS.c.tenant_id == tenant_id,
            DAYS.c.store_id.in_(list(store_ids)),
            DAYS.c.date.in_(ds),
        )
        .values(data_version=DAYS.c.data_version + 1, data_changed_at=now)
    )


# ---- reports --------------------------------------------------------------------------------


async def next_report_version(
    session: AsyncSession, tenant_id: str, store_id: str, day: dt.date
) -> int:
    v = await session.scalar(
        select(func.max(REPORTS.c.version)).where(
            REPORTS.c.tenant_id == tenant_id,
            REPORTS.c.store_id == store_id,
            REPORTS.c.date == day,
        )
    )
    return int(v or 0) + 1


async def has_later_report(
    session: AsyncSession, tenant_id: str, store_id: str, day: dt.date
) -> bool:
    found = await session.scalar(
        select(REPORTS.c.version)
        .where(
            REPORTS.c.tenant_id == tenant_id,
            REPORTS.c.store_id == store_id,
            REPORTS.c.date > day,
        )
        .limit(1)
    )
    return found is not None


async def insert_report(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(REPORTS.insert().values(**values))
    await session.execute(
        update(DAYS)
        .where(
            DAYS.c.tenant_id == values["tenant_id"],
            DAYS.c.store_id == values["store_id"],
            DAYS.c.date == values["date"],
        )
        .values(diagnosed_version=values["version"])
    )


async def get_report(
    session: AsyncSession, tenant_id: str, store_id: str, day: dt.date, version: int | None
) -> Any:
    q = select(REPORTS).where(
        REPORTS.c.tenant_id == tenant_id, REPORTS.c.store_id == store_id, REPORTS.c.date == day
    )
    q = q.where(REPORTS.c.version == version) if version else q.order_by(REPORTS.c.version.desc())
    return (await session.execute(q.limit(1))).first()


async def list_reports(
    session: AsyncSession,
    tenant_id: str,
    store_id: str,
    start: dt.date | None,
    end: dt.date | None,
    before: dt.date | None,
    limit: int,
) -> list[Any]:
    """The latest version of each day, newest day first."""
    latest = (
        select(
            REPORTS.c.date.label("d"),
            func.max(REPORTS.c.version).label("v"),
        )
        .where(REPORTS.c.tenant_id == tenant_id, REPORTS.c.store_id == store_id)
        .group_by(REPORTS.c.date)
    )
    if start:
        latest = latest.where(REPORTS.c.date >= start)
    if end:
        latest = latest.where(REPORTS.c.date <= end)
    if before:
        latest = latest.where(REPORTS.c.date < before)
    sub = latest.subquery()
    q = (
        select(
            REPORTS.c.id,
            REPORTS.c.date,
            REPORTS.c.version,
            REPORTS.c.baseline,
            REPORTS.c.trigger,
            REPORTS.c.data_complete,
            REPORTS.c.finding_count,
            REPORTS.c.created_at,
            REPORTS.c.body,
        )
        .join(sub, and_(REPORTS.c.date == sub.c.d, REPORTS.c.version == sub.c.v))
        .where(REPORTS.c.tenant_id == tenant_id, REPORTS.c.store_id == store_id)
        .order_by(REPORTS.c.date.desc())
        .limit(limit)
    )
    return list((await session.execute(q)).all())


# ---- findings -------------------------------------------------------------------------------


async def findings_of_days(
    session: AsyncSession, tenant_id: str, store_id: str, start: dt.date, end: dt.date
) -> list[Any]:
    q = select(FINDINGS).where(
        FINDINGS.c.tenant_id == tenant_id,
        FINDINGS.c.store_id == store_id,
        FINDINGS.c.date >= start,
        FINDINGS.c.date <= end,
    )
    return list((await session.execute(q)).all())


async def insert_finding(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert unless the problem already has its finding (a concurrent writer): False then."""
    stmt = _insert(session, FINDINGS).values(**values).on_conflict_do_nothing()
    res = await session.execute(stmt)
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def update_finding(session: AsyncSession, finding_id: str, values: dict[str, Any]) -> None:
    await session.execute(update(FINDINGS).where(FINDINGS.c.id == finding_id).values(**values))


async def get_finding(session: AsyncSession, tenant_id: str, finding_id: str) -> Any:
    return (
        await session.execute(
            select(FINDINGS).where(FINDINGS.c.tenant_id == tenant_id, FINDINGS.c.id == finding_id)
        )
    ).first()


async def get_finding_for_update(session: AsyncSession, tenant_id: str, finding_id: str) -> Any:
    q = select(FINDINGS).where(FINDINGS.c.tenant_id == tenant_id, FINDINGS.c.id == finding_id)
    if is_postgres(session):
        q = q.with_for_update()
    return (await session.execute(q)).first()


async def findings_by_ids(session: AsyncSession, ids: Sequence[str]) -> list[Any]:
    if not ids:
        return []
    return list((await session.execute(select(FINDINGS).where(FINDINGS.c.id.in_(ids)))).all())


# The triage order (service.triage_fields): severity, rate known before missing, impact in the
# reporting currency, confidence, then the id for a total order.
TRIAGE_ORDER: tuple[tuple[str, bool], ...] = (
    ("severity_rank", True),
    ("triage_tier", False),
    ("triage_impact", True),
    ("confidence", True),
    ("id", False),
)


def _after(position: Sequence[Any]) -> Any:
    """Rows strictly after `position` in TRIAGE_ORDER (keyset pagination: the OR of each
    column's step with the columns before it equal)."""
    cols = [
        (func.coalesce(FINDINGS.c[name], 0.0) if name == "confidence" else FINDINGS.c[name], desc)
        for name, desc in TRIAGE_ORDER
    ]
    steps = []
    for i, (col, desc) in enumerate(cols):
        equal = [c == v for (c, _), v in zip(cols[:i], position[:i], strict=True)]
        steps.append(and_(*equal, col < position[i] if desc else col > position[i]))
    return or_(*steps)


def triage_position(row: Any) -> list[Any]:
    return [
        row.severity_rank,
        row.triage_tier,
        row.triage_impact,
        row.confidence if row.confidence is not None else 0.0,
        row.id,
    ]


async def search_findings(
    session: AsyncSession,
    tenant_id: str,
    *,
    statuses: Sequence[str],
    store_ids: Sequence[str] | None,
    owner: str | None,
    severities: Sequence[str] | None,
    start: dt.date | None,
    end: dt.date | None,
    after: Sequence[Any] | None,
    limit: int | None,
) -> list[Any]:
    q = select(FINDINGS).where(FINDINGS.c.tenant_id == tenant_id, FINDINGS.c.status.in_(statuses))
    if store_ids is not None:
        q = q.where(FINDINGS.c.store_id.in_(list(store_ids)))
    if owner:
        q = q.where(FINDINGS.c.owner == owner)
    if severities:
        q = q.where(FINDINGS.c.severity.in_(list(severities)))
    if start:
        q = q.where(FINDINGS.c.date >= start)
    if end:
        q = q.where(FINDINGS.c.date <= end)
    if after is not None:
        q = q.where(_after(after))
    order = [
        (func.coalesce(FINDINGS.c[n], 0.0) if n == "confidence" else FINDINGS.c[n])
        for n, _ in TRIAGE_ORDER
    ]
    q = q.order_by(
        *(c.desc() if desc else c.asc() for c, (_, desc) in zip(order, TRIAGE_ORDER, strict=True))
    )
    if limit is not None:
        q = q.limit(limit)
    return list((await session.execute(q)).all())


async def findings_to_reprice(
    session: AsyncSession,
    tenant_id: str,
    currencies: Sequence[str] | None = None,
    since: dt.date | None = None,
) -> list[Any]:
    """Findings whose impact in the reporting currency a rate (or the currency) changes."""
    q = select(FINDINGS).where(
        FINDINGS.c.tenant_id == tenant_id, FINDINGS.c.impact_currency.is_not(None)
    )
    if currencies is not None:
        q = q.where(FINDINGS.c.impact_currency.in_(list(currencies)))
    if since is not None:
        q = q.where(FINDINGS.c.date >= since)
    return list((await session.execute(q)).all())


async def due_snoozed(session: AsyncSession, now: datetime, limit: int = 500) -> list[Any]:
    q = (
        select(FINDINGS)
        .where(FINDINGS.c.status == "snoozed", FINDINGS.c.snoozed_until <= now)
        .limit(limit)
    )
    return list((await session.execute(q)).all())


async def open_counts(session: AsyncSession) -> list[tuple[str, str, int]]:
    q = (
        select(FINDINGS.c.owner, FINDINGS.c.severity, func.count())
        .where(FINDINGS.c.status.in_(("open", "acknowledged")))
        .group_by(FINDINGS.c.owner, FINDINGS.c.severity)
    )
    return [(r[0], r[1], int(r[2])) for r in await session.execute(q)]


async def add_transition(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(TRANSITIONS.insert().values(**values))


async def transitions_of(session: AsyncSession, finding_id: str) -> list[Any]:
    q = select(TRANSITIONS).where(TRANSITIONS.c.finding_id == finding_id).order_by(TRANSITIONS.c.id)
    return list((await session.execute(q)).all())
