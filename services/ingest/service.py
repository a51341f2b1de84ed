"""Use cases of ingest: decisions and invariants; events are staged in the same transaction."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, cast, get_args
from zoneinfo import ZoneInfo

from prometheus_client import Counter, Gauge
from pydantic_core import to_json
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest import fileformats
from services.ingest import repository as repo
from services.ingest.models import BenchmarkRow, CompetitorRow, FxRate, MetricRow
from services.ingest.schemas import (
    BASE_METRICS as BASE_READABLE,
)
from services.ingest.schemas import (
    DIMENSION_KEY,
    ApiKeyCreate,
    ApiKeyOut,
    BenchmarksIn,
    CompetitorMetricsIn,
    CorrectionOut,
    ImportJobOut,
    ImportProblemOut,
    IngestResult,
    MetricRowIn,
    Page,
    PresetOut,
    SourceHealthOut,
    StoreCreate,
    StoreHealth,
    StoreOut,
    StoreUpdate,
    TenantCreate,
    TenantOut,
    UserCreate,
    UserOut,
)
from shared import grains
from shared.auth import (
    DEFAULT_TENANT,
    Principal,
    generate_token,
    hash_token,
)
from shared.errors import BadRequest, Conflict, Forbidden, NotFound, ValidationFailed
from shared.events.chunking import chunk_rows
from shared.events.common import (
    CHANNELS,
    COUNT_METRICS,
    DERIVED,
    MONEY_METRICS,
    SCORE_METRICS,
    IngestSource,
)
from shared.events.ingest import (
    ApiKeyCreatedV1,
    ApiKeyRevokedV1,
    BenchmarkIngestedV1,
    BenchmarkRowV1,
    CompetitorMetricsIngestedV1,
    FxRatesIngestedV1,
    FxRateV1,
    MetricsDeletedV1,
    MetricsIngestedV1,
    StoreRegisteredV1,
    StoreUpdatedV1,
    TenantCreatedV1,
)
from shared.outbox import stage, stage_many

MAX_ROWS_PER_REQUEST = 50_000


def _now() -> datetime:
    return datetime.now(UTC)


def canonical_dimensions(dims: dict[str, str]) -> str:
    return _canonical(tuple(sorted(dims.items())))


@lru_cache(maxsize=8192)
def _level(dims_key: str) -> str:
    """The dimension names of a canonical key: the row's level of detail."""
    return ",".join(json.loads(dims_key))


@lru_cache(maxsize=8192)
def _canonical(items: tuple[tuple[str, str], ...]) -> str:
    return json.dumps(dict(items), separators=(",", ":"), ensure_ascii=False)


def encode_cursor(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded))["after"]
        if not isinstance(value, str):
            raise ValueError
        return value
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed([{"loc": ["query", "cursor"], "msg": "invalid cursor"}]) from exc


def decode_offset(cursor: str | None) -> int:
    value = decode_cursor(cursor)
    if value is None:
        return 0
    if not value.isdigit():
        raise ValidationFailed([{"loc": ["query", "cursor"], "msg": "invalid cursor"}])
    return int(value)


# ---- tenants, users, keys --------------------------------------------------------------------


async def ensure_default_tenant(session: AsyncSession) -> None:
    if await repo.get_tenant(session, DEFAULT_TENANT) is None:
        await repo.insert_tenant(
            session,
            {
                "id": DEFAULT_TENANT,
                "name": "Default",
                "reporting_currency": "USD",
                "created_at": _now(),
            },
        )


async def create_tenant(
    session: AsyncSession, principal: Principal, body: TenantCreate
) -> TenantOut:
    if not principal.is_platform_admin:
        raise Forbidden("Only an admin of the default tenant creates tenants")
    if await repo.get_tenant(session, body.id) is not None:
        raise Conflict(f"Tenant {body.id!r} already exists")
    values = {
        "id": body.id,
        "name": body.name,
        "reporting_currency": body.reporting_currency,
        "created_at": _now(),
    }
    await repo.insert_tenant(session, values)
    await stage(
        session,
        TenantCreatedV1(
            tenant_id=body.id, name=body.name, reporting_currency=body.reporting_currency
        ),
    )
    return TenantOut(**values)


def _target_tenant(principal: Principal, tenant_id: str | None) -> str:
    if tenant_id is None or tenant_id == principal.tenant_id:
        return principal.tenant_id
    if not principal.is_platform_admin:
        raise NotFound(f"Tenant {tenant_id!r} not found")
    return tenant_id


async def create_user(session: AsyncSession, principal: Principal, body: UserCreate) -> UserOut:
    tenant_id = _target_tenant(principal, body.tenant_id)
    if await repo.get_tenant(session, tenant_id) is None:
        raise NotFound(f"Tenant {tenant_id!r} not found")
    if await repo.get_user_by_email(session, tenant_id, body.email) is not None:
        raise Conflict(f"A user with email {body.email!r} already exists")
    values = {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant_id,
        "email": body.email,
        "name": body.name,
        "created_at": _now(),
    }
    await repo.insert_user(session, values)
    return UserOut(**values)


async def create_api_key(
    session: AsyncSession, principal: Principal, body: ApiKeyCreate, tenant_id: str | None = None
) -> ApiKeyOut:
    tenant = _target_tenant(principal, tenant_id)
    user = await repo.get_user(session, tenant, body.user_id)
    if user is None:
        raise ValidationFailed([{"loc": ["body", "user_id"], "msg": "no such user in the tenant"}])
    if body.store_ids is not None:
        for i, sid in enumerate(body.store_ids):
            if await repo.get_store(session, tenant, sid) is None:
                raise ValidationFailed(
                    [{"loc": ["body", "store_ids", i], "msg": f"no store {sid!r} in the tenant"}]
                )
    token = generate_token()
    lookup, digest = hash_token(token)
    key_id = str(uuid.uuid4())
    created = _now()
    store_ids = sorted(set(body.store_ids)) if body.store_ids is not None else None
    await repo.insert_key(
        session,
        {
            "key_id": key_id,
            "tenant_id": tenant,
            "user_id": body.user_id,
            "name": body.name,
            "role": body.role,
            "store_ids": store_ids,
            "lookup": lookup,
            "secret_hash": digest,
            "created_at": created,
            "revoked_at": None,
        },
    )
    await stage(
        session,
        ApiKeyCreatedV1(
            tenant_id=tenant,
            key_id=uuid.UUID(key_id),
            user_id=uuid.UUID(body.user_id),
            name=body.name,
            role=body.role,
            user_name=user.name,
            store_ids=store_ids,
            lookup=lookup,
            secret_hash=digest,
            created_at=created,
        ),
    )
    return ApiKeyOut(
        id=key_id,
        tenant_id=tenant,
        user_id=body.user_id,
        name=body.name,
        role=body.role,
        store_ids=store_ids,
        created_at=created,
        key=token,
    )


def _key_out(row: Any) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.key_id,
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        name=row.name,
        role=row.role,
        store_ids=row.store_ids,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


async def list_api_keys(session: AsyncSession, principal: Principal) -> list[ApiKeyOut]:
    return [_key_out(r) for r in await repo.list_keys(session, principal.tenant_id)]


async def revoke_api_key(session: AsyncSession, principal: Principal, key_id: str) -> ApiKeyOut:
    row = await repo.get_key(
        session, None if principal.is_platform_admin else principal.tenant_id, key_id
    )
    if row is None or row.lookup == "-":
        raise NotFound(f"API key {key_id!r} not found")
    if row.revoked_at is None:
        when = _now()
        await repo.set_key_revoked(session, key_id, when)
        await stage(
            session,
            ApiKeyRevokedV1(tenant_id=row.tenant_id, key_id=uuid.UUID(key_id), revoked_at=when),
        )
        row = await repo.get_key(session, None, key_id)
    return _key_out(row)


# ---- stores ----------------------------------------------------------------------------------


def _store_out(row: Any, secret: str | None = None) -> StoreOut:
    return StoreOut(
        id=row.id,
        name=row.name,
        platform=row.platform,
        timezone=row.timezone,
        currency=row.currency,
        market=row.market,
        category=row.category,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        has_webhook_secret=row.webhook_secret is not None,
        webhook_secret=secret,
        partition_dimensions=list(row.partition_dimensions or []),
    )


def _store_event(cls: type[StoreRegisteredV1] | type[StoreUpdatedV1], row: Any) -> Any:
    return cls(
        tenant_id=row.tenant_id,
        store_id=row.id,
        name=row.name,
        platform=row.platform,
        timezone=row.timezone,
        currency=row.currency,
        market=row.market,
        category=row.category,
        status=row.status,
        partition_dimensions=list(row.partition_dimensions or []),
    )


async def create_store(session: AsyncSession, principal: Principal, body: StoreCreate) -> StoreOut:
    if principal.store_ids is not None:
        raise Forbidden("A key scoped to some stores cannot register stores")
    if await repo.get_store(session, principal.tenant_id, body.id) is not None:
        raise Conflict(
            f"Store {body.id!r} already exists",
            errors=[{"loc": ["body", "id"], "msg": "already exists"}],
        )
    secret = body.webhook_secret
    shown = None
    if secret is None and body.platform == "generic":
        # Standard Webhooks: the receiver issues a whsec_ secret (24-64 random bytes, base64).
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        shown = secret
    now = _now()
    values = {
        **body.model_dump(exclude={"webhook_secret"}),
        "tenant_id": principal.tenant_id,
        "status": "active",
        "webhook_secret": secret,
        "created_at": now,
        "updated_at": now,
    }
    await repo.insert_store(session, values)
    row = await repo.get_store(session, principal.tenant_id, body.id)
    await stage(session, _store_event(StoreRegisteredV1, row))
    return _store_out(row, shown)


async def _visible_store(session: AsyncSession, principal: Principal, store_id: str) -> Any:
    principal.check_store(store_id)
    row = await repo.get_store(session, principal.tenant_id, store_id)
    if row is None:
        raise NotFound(f"Store {store_id!r} not found")
    return row


async def get_store(session: AsyncSession, principal: Principal, store_id: str) -> StoreOut:
    return _store_out(await _visible_store(session, principal, store_id))


async def list_stores(
    session: AsyncSession, principal: Principal, *, limit: int, cursor: str | None
) -> Page[StoreOut]:
    after = decode_cursor(cursor)
    rows = await repo.list_stores(
        session, principal.tenant_id, principal.store_ids, after, limit + 1
    )
    items = [_store_out(r) for r in rows[:limit]]
    nxt = encode_cursor(items[-1].id) if len(rows) > limit and items else None
    return Page[StoreOut](items=items, next_cursor=nxt)


async def update_store(
    session: AsyncSession, principal: Principal, store_id: str, body: StoreUpdate
) -> StoreOut:
    await _visible_store(session, principal, store_id)
    changes = body.model_dump(exclude_unset=True)
    if any(v is None for v in changes.values()):
        nulls = [k for k, v in changes.items() if v is None]
        raise ValidationFailed([{"loc": ["body", k], "msg": "cannot be null"} for k in nulls])
    if changes:
        changes["updated_at"] = _now()
        await repo.update_store(session, principal.tenant_id, store_id, changes)
    row = await repo.get_store(session, principal.tenant_id, store_id)
    if set(changes) - {"webhook_secret", "updated_at"}:
        await stage(session, _store_event(StoreUpdatedV1, row))
    return _store_out(row)


# ---- metric rows -----------------------------------------------------------------------------


def _check_dates(
    rows: Sequence[MetricRowIn] | Sequence[Any], tz: str, max_future_days: int, field: str = "rows"
) -> None:
    latest = datetime.now(ZoneInfo(tz)).date() + timedelta(days=max_future_days)
    for i, r in enumerate(rows):
        if r.date > latest:
            raise ValidationFailed(
                [
                    {
                        "loc": ["body", field, i, "date"],
                        "msg": f"date {r.date} is in the future for the store's timezone ({tz})",
                    }
                ]
            )


def _dedupe(rows: Sequence[Any], keys: Sequence[Any], field: str = "rows") -> list[int]:
    """Indices of the rows to write (`keys[i]` is row i's identity): an exact repeat inside one
    request is a duplicate, two different values for one identity are a 422 naming both rows."""
    if len(set(keys)) == len(keys):
        return list(range(len(rows)))  # the usual case: no identity repeats, one set build
    seen: dict[Any, int] = {}
    keep: list[int] = []
    for i, (r, k) in enumerate(zip(rows, keys, strict=True)):
        j = seen.get(k)
        if j is None:
            seen[k] = i
            keep.append(i)
        elif rows[j].value != r.value:
            raise ValidationFailed(
                [
                    {
                        "loc": ["body", field, i],
                        "msg": f"same identity as row {j} with a different value",
                    }
                ]
            )
    return keep


@dataclass
class _Batch:
    """One request's rows ready to write: the records (unique on the table's identity), how
    many rows the client sent, and how to turn written records into an event."""

    table: Table
    key_columns: tuple[str, ...]
    records: list[dict[str, Any]]
    sent: int
    to_event_row: Callable[[dict[str, Any]], Any]
    make_event: Callable[..., Any]


async def _write_batch(session: AsyncSession, batch: _Batch) -> IngestResult:
    """Upsert, then stage the batch's events (the changed rows, chunked) in the same
    transaction."""
    res = await repo.upsert_rows(session, batch.table, batch.key_columns, batch.records)
    duplicates = res.duplicates + (batch.sent - len(batch.records))
    result = IngestResult(
        batch_id=str(uuid.uuid4()),
        accepted=len(res.inserted),
        duplicates=duplicates,
        updated=len(res.updated),
    )
    chunks = chunk_rows([batch.to_event_row(r) for r in res.inserted + res.updated])
    events = [
        batch.make_event(
            batch_id=uuid.UUID(result.batch_id),
            chunk=i,
            chunks=len(chunks),
            rows=part,
            result=result,
        )
        for i, part in enumerate(chunks)
    ]
    await stage_many(
        session, events, [_event_json(e, part) for e, part in zip(events, chunks, strict=True)]
    )
    return result


_NO_ROWS = '"rows":[]'


def _event_json(event: Any, rows: list[Any]) -> str | None:
    """An assembled event's JSON with its rows serialized in one pydantic-core call: the rows
    are plain dicts (model_construct), which the model's serializer would walk through its
    slower fallback. The envelope is serialized without rows and the rows spliced in; `"rows":[]`
    can only be the key itself (a quote inside a JSON string is always escaped). None (let
    the outbox serialize it) if the marker is not found exactly once."""
    head = event.model_copy(update={"rows": []}).model_dump_json(warnings=False)
    if head.count(_NO_ROWS) != 1:
        return None
    return head.replace(_NO_ROWS, '"rows":' + to_json(rows).decode(), 1)


def _metric_event_row(r: dict[str, Any]) -> dict[str, Any]:
    # Plain dicts: the event validates all its rows in one pydantic-core call.
    return {
        "date": r["date"],
        "metric": r["metric"],
        "value": r["value"],
        "dimensions": r["dimensions"],
    }


async def ingest_metrics(
    session: AsyncSession,
    principal: Principal,
    store_id: str,
    rows: Sequence[MetricRowIn],
    *,
    source: str = "api",
    max_rows: int = MAX_ROWS_PER_REQUEST,
    max_future_days: int = 1,
) -> IngestResult:
    if source not in get_args(IngestSource):
        raise ValueError(f"unknown source {source!r}")
    store = await _visible_store(session, principal, store_id)
    if len(rows) > max_rows:
        raise ValidationFailed(
            [{"loc": ["body", "rows"], "msg": f"at most {max_rows} rows per request"}]
        )
    _check_dates(rows, store.timezone, max_future_days)
    dims_keys = [canonical_dimensions(r.dimensions) for r in rows]
    keep = _dedupe(rows, [(r.date, r.metric, k) for r, k in zip(rows, dims_keys, strict=True)])
    now = _now()
    records = [
        {
            "tenant_id": principal.tenant_id,
            "store_id": store_id,
            "date": rows[i].date,
            "metric": rows[i].metric,
            "dims_key": dims_keys[i],
            "dims_level": _level(dims_keys[i]),
            "dimensions": rows[i].dimensions,
            "value": float(rows[i].value),
            "source": source,
            "updated_at": now,
        }
        for i in keep
    ]

    def make_event(*, result: IngestResult, **chunk: Any) -> MetricsIngestedV1:
        # Up to 50,000 rows a request, each checked on the way in by MetricRowIn (stricter than
        # the contract): the event is assembled without validating every row a second time.
        # tests/services/ingest/test_metrics_api.py decodes these events against the contract.
        return MetricsIngestedV1.model_construct(
            tenant_id=principal.tenant_id,
            store_id=store_id,
            source=cast(IngestSource, source),
            accepted=result.accepted,
            duplicates=result.duplicates,
            updated=result.updated,
            **chunk,
        )

    if source == "api":
        await record_delivery(session, principal.tenant_id, store_id, "api", "delivered")
    return await _write_batch(
        session,
        _Batch(
            table=MetricRow.__table__,  # type: ignore[attr-defined]
            key_columns=("tenant_id", "store_id", "date", "metric", "dims_key"),
            records=records,
            sent=len(rows),
            to_event_row=_metric_event_row,
            make_event=make_event,
        ),
    )


def _check_whole_counts(rows: Sequence[Any]) -> None:
    errors = [
        {
            "loc": ["body", "rows", i, "value"],
            "msg": "a count must be a whole number (post value_kind 'index' for an index "
            "such as Sycm's 流量指数)",
        }
        for i, r in enumerate(rows)
        if r.metric in COUNT_METRICS and r.value != int(r.value)
    ]
    if errors:
        raise ValidationFailed(errors[:100])


async def ingest_benchmarks(
    session: AsyncSession, principal: Principal, body: BenchmarksIn, *, source: str = "api"
) -> IngestResult:
    if principal.store_ids is not None:
        raise Forbidden("A key scoped to some stores cannot post market benchmarks")
    # A market has no single timezone: refuse only what is in the future everywhere.
    _check_dates(body.rows, "Pacific/Kiritimati", 1)
    if body.value_kind == "absolute":
        _check_whole_counts(body.rows)
    keep = _dedupe(body.rows, [(r.date, r.metric) for r in body.rows])
    now = _now()
    records = [
        {
            "tenant_id": principal.tenant_id,
            "market": body.market,
            "category": body.category,
            "date": body.rows[i].date,
            "metric": body.rows[i].metric,
            "dims_key": "{}",
            "dimensions": {},
            "value": float(body.rows[i].value),
            "value_kind": body.value_kind,
            "source": body.provider,
            "updated_at": now,
        }
        for i in keep
    ]

    def make_event(*, result: IngestResult, **chunk: Any) -> BenchmarkIngestedV1:
        return BenchmarkIngestedV1(
            tenant_id=principal.tenant_id,
            market=body.market,
            category=body.category,
            value_kind=body.value_kind,
            source=source,
            **chunk,
        )

    return await _write_batch(
        session,
        _Batch(
            table=BenchmarkRow.__table__,  # type: ignore[attr-defined]
            key_columns=("tenant_id", "market", "category", "date", "metric", "dims_key"),
            records=records,
            sent=len(body.rows),
            to_event_row=lambda r: BenchmarkRowV1(
                date=r["date"], metric=r["metric"], value=r["value"]
            ),
            make_event=make_event,
        ),
    )


async def ingest_competitor_metrics(
    session: AsyncSession,
    principal: Principal,
    store_id: str,
    competitor_id: str,
    body: CompetitorMetricsIn,
) -> IngestResult:
    store = await _visible_store(session, principal, store_id)
    if not competitor_id or len(competitor_id) > 64:
        raise BadRequest("competitor_id must be 1 to 64 characters")
    _check_dates(body.rows, store.timezone, 1)
    _check_whole_counts(body.rows)
    dims_keys = [canonical_dimensions(r.dimensions) for r in body.rows]
    keep = _dedupe(
        body.rows, [(r.date, r.metric, k) for r, k in zip(body.rows, dims_keys, strict=True)]
    )
    now = _now()
    records = [
        {
            "tenant_id": principal.tenant_id,
            "store_id": store_id,
            "competitor_id": competitor_id,
            "competitor_name": body.name,
            "date": body.rows[i].date,
            "metric": body.rows[i].metric,
            "dims_key": dims_keys[i],
            "dimensions": body.rows[i].dimensions,
            "value": float(body.rows[i].value),
            "updated_at": now,
        }
        for i in keep
    ]

    def make_event(*, result: IngestResult, **chunk: Any) -> CompetitorMetricsIngestedV1:
        return CompetitorMetricsIngestedV1(
            tenant_id=principal.tenant_id,
            store_id=store_id,
            competitor_id=competitor_id,
            competitor_name=body.name,
            **chunk,
        )

    return await _write_batch(
        session,
        _Batch(
            table=CompetitorRow.__table__,  # type: ignore[attr-defined]
            key_columns=("tenant_id", "store_id", "competitor_id", "date", "metric", "dims_key"),
            records=records,
            sent=len(body.rows),
            to_event_row=_metric_event_row,
            make_event=make_event,
        ),
    )


DELIVERIES = Counter(
    "storeops_ingest_deliveries_total",
    "Deliveries of store data by source (api, import, webhook:<platform>) and outcome",
    ["source", "outcome"],
)
ROWS_DELETED = Counter(
    "storeops_ingest_metric_rows_deleted_total",
    "Metric rows deleted by corrections (delete) and re-imports (replace)",
    ["reason"],
)
STALE_STORES = Gauge(
    "storeops_ingest_stale_stores", "Active stores with no delivery from any source in 36 h"
)


# ---- data health -----------------------------------------------------------------------------


async def record_delivery(
    session: AsyncSession,
    tenant_id: str,
    store_id: str,
    source: str,
    outcome: str,
    error: str | None = None,
) -> None:
    """Count one delivery of a source (api, import, webhook:<platform>) as delivered, failed
    (we could not process it) or rejected (it was invalid), in the caller's transaction."""
    if outcome not in ("delivered", "failed", "rejected"):
        raise ValueError(outcome)
    DELIVERIES.labels(source, outcome).inc()
    await repo.bump_source_health(session, tenant_id, store_id, source, outcome, error, _now())


# ---- reading series --------------------------------------------------------------------------

MAX_READ_DAYS = 731
MAX_FILTER_VALUES = 50
Filters = dict[str, list[str]]


def _check_read(
    metrics: Sequence[str],
    start: date,
    end: date,
    group_by: Sequence[str],
    filters: Filters | None = None,
    reg: grains.Registry | None = None,
) -> None:
    reg = reg or grains.registry()
    filters = filters or {}
    errors: list[dict[str, Any]] = []
    if not metrics:
        errors.append({"loc": ["query", "metric"], "msg": "name at least one metric"})
    for m in metrics:
        if m not in DERIVED and m not in BASE_READABLE and not m.startswith("custom."):
            errors.append({"loc": ["query", "metric"], "msg": f"unknown metric {m!r}"})
    if end < start:
        errors.append({"loc": ["query", "end"], "msg": "end is before start"})
    elif (end - start).days >= MAX_READ_DAYS:
        errors.append({"loc": ["query", "end"], "msg": f"at most {MAX_READ_DAYS} days at once"})
    for k in group_by:
        if not DIMENSION_KEY.match(k):
            errors.append({"loc": ["query", "group_by"], "msg": f"bad dimension name {k!r}"})
    if len(group_by) > 6:
        errors.append({"loc": ["query", "group_by"], "msg": "group by at most 6 dimensions"})
    for k, values in filters.items():
        if not values:
            errors.append({"loc": ["query", k], "msg": "name at least one value"})
        elif len(values) > MAX_FILTER_VALUES:
            errors.append({"loc": ["query", k], "msg": f"at most {MAX_FILTER_VALUES} values"})
    for param, msg in grains.read_problems(group_by, filters, reg):
        errors.append({"loc": ["query", param], "msg": msg})
    if errors:
        raise ValidationFailed(errors)


def _stored_filters(filters: Filters, reg: grains.Registry) -> Filters:
    """Filters on stored keys: traffic_type=paid reads as channel in the paid channels."""
    out = {k: list(v) for k, v in filters.items() if k != grains.TRAFFIC_TYPE}
    if grains.TRAFFIC_TYPE in filters:
        kinds = set(filters[grains.TRAFFIC_TYPE])
        chans = [c for c in CHANNELS if reg.traffic_type(c) in kinds]
        out["channel"] = [c for c in out.get("channel", chans) if c in chans]
    return out


async def _sums(
    session: AsyncSession,
    tenant_id: str,
    store_ids: Sequence[str],
    metrics: Sequence[str],
    start: date,
    end: date,
    group_by: Sequence[str],
    *,
    by_store: bool,
    filters: Filters | None = None,
    regs: dict[str, grains.Registry] | None = None,
) -> dict[tuple[Any, ...], dict[str, float]]:
    """(store?, date, *group values) -> label -> value (grains.plan's labels: a stored metric's
    name, a derived metric's parts), each store-day-metric read on the one grain shared/grains.py
    chooses for this read (the store-level row for a total when it was sent, else the coarsest
    partitioning grain; never a slice), so rows of two levels of detail are never added together
    and every service shows the same number."""
    base = grains.base_metrics(metrics)
    default = grains.registry()
    regs = regs or {}
    filters = filters or {}
    need = grains.needed_keys(group_by, filters)
    stored_group = ["channel" if k == grains.TRAFFIC_TYPE else k for k in group_by]
    # The grain of each store-day-metric is chosen from the grains present that day (before
    # any filter), exactly as grains.aggregate does.
    present: dict[tuple[Any, ...], set[grains.Grain]] = {}
    for sid, day, m, level in await repo.metric_levels_by_day(
        session, tenant_id, store_ids, base, start, end
    ):
        present.setdefault((sid, day, m), set()).add(grains.grain_from_text(level))
    planned = grains.plan(metrics, present, need, lambda head: regs.get(head[0], default))
    # (stored metric, grain) -> (store, date) -> labels summed from it
    work: dict[tuple[str, grains.Grain], dict[tuple[Any, ...], list[str]]] = {}
    for (sid, day, label), (m, g) in planned.items():
        work.setdefault((m, g), {}).setdefault((sid, day), []).append(label)
    out: dict[tuple[Any, ...], dict[str, float]] = {}
    counts: dict[tuple[Any, ...], dict[str, int]] = {}
    stored_filters = _stored_filters(filters, default)
    for (m, g), heads in sorted(work.items(), key=lambda kv: (kv[0][0], default.rank(kv[0][1]))):
        rows = await repo.aggregate_metric(
            session,
            tenant_id,
            store_ids,
            m,
            grains.grain_text(g),
            stored_group,
            start,
            end,
            average=m in SCORE_METRICS,
            by_store=True,
            filters=stored_filters,
        )
        for r in rows:
            sid, day = r[0], r[1]
            labels = heads.get((sid, day))
            if not labels:
                continue  # another grain gives this store-day
            reg = regs.get(sid, default)
            vals = list(r[2 : 2 + len(group_by)])
            for i, k in enumerate(group_by):
                if k == grains.TRAFFIC_TYPE and vals[i] is not None:
                    vals[i] = reg.traffic_type(vals[i])
            key = (sid, day, *vals) if by_store else (day, *vals)
            acc = out.setdefault(key, {})
            n = counts.setdefault(key, {})
            v, c = float(r.v), int(r.n)
            for label in labels:
                if m in SCORE_METRICS:  # averages: weighted by their row counts when merged
                    prev = n.get(label, 0)
                    acc[label] = (acc.get(label, 0.0) * prev + v * c) / (prev + c)
                    n[label] = prev + c
                else:
                    acc[label] = acc.get(label, 0.0) + v
    for acc in out.values():
        for label, v in acc.items():
            # Sums of binary floats: drop the noise below a millionth (52536.98, not ...001).
            acc[label] = round(v, 6)
    return out


def _with_derived(sums: dict[str, float], metrics: Sequence[str]) -> dict[str, float | None]:
    return grains.values(sums, metrics)


def store_registry(row: Any) -> grains.Registry:
    return grains.registry().for_store(getattr(row, "partition_dimensions", None) or ())


async def read_series(
    session: AsyncSession,
    principal: Principal,
    store_id: str,
    *,
    metrics: Sequence[str],
    start: date,
    end: date,
    group_by: Sequence[str],
    filters: Filters | None = None,
) -> list[dict[str, Any]]:
    store = await _visible_store(session, principal, store_id)
    reg = store_registry(store)
    _check_read(metrics, start, end, group_by, filters, reg)
    sums = await _sums(
        session,
        principal.tenant_id,
        [store_id],
        metrics,
        start,
        end,
        group_by,
        by_store=False,
        filters=filters,
        regs={store_id: reg},
    )
    return _points(sums, metrics, group_by)


def _points(
    sums: dict[tuple[Any, ...], dict[str, float]], metrics: Sequence[str], group_by: Sequence[str]
) -> list[dict[str, Any]]:
    out = []
    for key in sorted(sums, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        out.append(
            {
                "date": key[0],
                "dimensions": dict(zip(group_by, key[1:], strict=True)),
                "values": _with_derived(sums[key], metrics),
            }
        )
    return out


# ---- corrections ------------------------------------------------------------------------------

MAX_DELETE_DAYS = 3660


def parse_grain(text: str | None) -> grains.Grain | None:
    """`grain` of a deletion: None every level; "store" (or "") the store level; else the
    dimension names, comma-separated, in any order."""
    if text is None:
        return None
    text = text.strip()
    if text in ("", "store"):
        return ()
    keys = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in keys if not DIMENSION_KEY.match(k)]
    if bad:
        raise ValidationFailed(
            [{"loc": ["query", "grain"], "msg": f"bad dimension name {bad[0]!r}"}]
        )
    return tuple(sorted(set(keys)))


async def _stage_deletion(
    session: AsyncSession,
    principal: Principal,
    store_id: str,
    *,
    reason: str,
    start: date,
    end: date,
    metrics: Sequence[str] | None,
    grain: grains.Grain | None,
    deleted: Sequence[Any],
    import_job_id: str | None = None,
) -> dict[str, Any]:
    """Audit a deletion and stage its events (the deleted identities, chunked)."""
    cid = uuid.uuid4()
    now = _now()
    record = {
        "id": str(cid),
        "tenant_id": principal.tenant_id,
        "store_id": store_id,
        "user_id": principal.user_id,
        "key_id": principal.key_id,
        "reason": reason,
        "start": start,
        "end": end,
        "metrics": None if metrics is None else list(metrics),
        "grain": None if grain is None else list(grain),
        "import_job_id": import_job_id,
        "deleted": len(deleted),
        "created_at": now,
    }
    await repo.insert_correction(session, record)
    if deleted:
        keys = [{"date": d, "metric": m, "dimensions": dims or {}} for d, m, dims in deleted]
        chunks = chunk_rows(keys)
        batch = uuid.uuid4()
        for i, part in enumerate(chunks):
            await stage(
                session,
                MetricsDeletedV1(
                    tenant_id=principal.tenant_id,
                    store_id=store_id,
                    batch_id=batch,
                    chunk=i,
                    chunks=len(chunks),
                    correction_id=cid,
                    reason=reason,
                    deleted=len(deleted),
                    rows=part,
                ),
            )
    ROWS_DELETED.labels(reason=reason).inc(len(deleted))
    return {**record, "dates": sorted({r[0] for r in deleted})}


async def delete_metrics(
    session: AsyncSession,
    principal: Principal,
    store_id: str,
    *,
    start: date,
    end: date,
    metrics: Sequence[str],
    grain: str | None,
) -> CorrectionOut:
    """Delete a store's rows by date range, metric(s) and level of detail; audited, published
    (diagnosis deletes its copy and redoes those days) and idempotent: a repeat deletes 0."""
    await _visible_store(session, principal, store_id)
    principal.require("operator")
    errors: list[dict[str, Any]] = []
    if end < start:
        errors.append({"loc": ["query", "end"], "msg": "end is before start"})
    elif (end - start).days >= MAX_DELETE_DAYS:
        errors.append({"loc": ["query", "end"], "msg": f"at most {MAX_DELETE_DAYS} days at once"})
    for m in metrics:
        if m in DERIVED:
            errors.append(
                {
                    "loc": ["query", "metric"],
                    "msg": f"{m} is derived ({'/'.join(DERIVED[m])}): delete its parts",
                }
            )
        elif m not in BASE_READABLE and not m.startswith("custom."):
            errors.append({"loc": ["query", "metric"], "msg": f"unknown metric {m!r}"})
    if errors:
        raise ValidationFailed(errors)
    g = parse_grain(grain)
    deleted = await repo.delete_metric_rows(
        session,
        principal.tenant_id,
        store_id,
        start,
        end,
        list(metrics) or None,
        None if g is None else grains.grain_text(g),
    )
    out = await _stage_deletion(
        session,
        principal,
        store_id,
        reason="delete",
        start=start,
        end=end,
        metrics=list(metrics) or None,
        grain=g,
        deleted=deleted,
    )
    return CorrectionOut(**out)


async def list_corrections(
    session: AsyncSession, principal: Principal, store_id: str, limit: int = 100
) -> list[CorrectionOut]:
    await _visible_store(session, principal, store_id)
    rows = await repo.list_corrections(session, principal.tenant_id, store_id, limit)
    return [CorrectionOut(**r._mapping) for r in rows]


# ---- market and competitors, read back --------------------------------------------------------


def _market_points(
    rows: Sequence[Any],
    metrics: Sequence[str],
    group_by: Sequence[str],
    filters: Filters,
    reg: grains.Registry,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Rows (date, metric, dimensions, value, value_kind) by the grain rules; each point's
    ratios derived from its parts when not posted."""
    kinds = {r.metric: r.value_kind for r in rows}
    sums = grains.aggregate(
        (
            {"date": r.date, "metric": r.metric, "value": r.value, "dimensions": r.dimensions}
            for r in rows
        ),
        group_by=group_by,
        filters=filters,
        reg=reg,
    )
    by_point: dict[tuple[Any, ...], dict[str, float]] = {}
    for (d, m, *vals), v in sums.items():
        by_point.setdefault((d, *vals), {})[m] = v
    out = []
    for key in sorted(by_point, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        values = grains.market_values(by_point[key], kinds)
        out.append(
            {
                "date": key[0],
                "dimensions": dict(zip(group_by, key[1:], strict=True)),
                "values": {m: values.get(m) for m in metrics},
            }
        )
    return out, {m: k for m, k in kinds.items()}


async def read_benchmarks(
    session: AsyncSession,
    principal: Principal,
    *,
    market: str,
    category: str,
    metrics: Sequence[str],
    start: date,
    end: date,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    _check_read(metrics, start, end, [])
    rows = await repo.benchmark_rows(
        session,
        principal.tenant_id,
        market,
        category,
        grains.base_metrics(metrics) + list(metrics),
        start,
        end,
    )
    return _market_points(rows, metrics, [], {}, grains.registry())


async def read_competitor_metrics(
    session: AsyncSession,
    principal: Principal,
    store_id: str,
    competitor_id: str,
    *,
    metrics: Sequence[str],
    start: date,
    end: date,
    group_by: Sequence[str],
    filters: Filters,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    store = await _visible_store(session, principal, store_id)
    reg = store_registry(store)
    _check_read(metrics, start, end, group_by, filters, reg)
    rows = await repo.competitor_rows(
        session,
        principal.tenant_id,
        store_id,
        competitor_id,
        grains.base_metrics(metrics) + list(metrics),
        start,
        end,
    )
    if not rows and not await repo.competitor_exists(
        session, principal.tenant_id, store_id, competitor_id
    ):
        raise NotFound(f"Competitor {competitor_id!r} of store {store_id!r} not found")
    return _market_points(rows, metrics, group_by, _stored_filters(filters, reg), reg)


async def ingest_fx_rates(
    session: AsyncSession, principal: Principal, rows: Sequence[Any]
) -> IngestResult:
    """Upsert the tenant's rates and stage ingest.fx_rates_ingested (the new or changed rates,
    chunked) in the same transaction: services that convert money keep their own copy."""
    keep = _dedupe(rows, [(r.date, r.base, r.quote) for r in rows])
    now = _now()
    records = [
        {
            "tenant_id": principal.tenant_id,
            "date": rows[i].date,
            "base": rows[i].base,
            "quote": rows[i].quote,
            "value": float(rows[i].rate),
            "updated_at": now,
        }
        for i in keep
    ]

    def make_event(*, result: IngestResult, **chunk: Any) -> FxRatesIngestedV1:
        return FxRatesIngestedV1(
            tenant_id=principal.tenant_id,
            accepted=result.accepted,
            updated=result.updated,
            **chunk,
        )

    return await _write_batch(
        session,
        _Batch(
            table=FxRate.__table__,  # type: ignore[attr-defined]
            key_columns=("tenant_id", "date", "base", "quote"),
            records=records,
            sent=len(rows),
            to_event_row=lambda r: FxRateV1(
                date=r["date"], base=r["base"], quote=r["quote"], rate=r["value"]
            ),
            make_event=make_event,
        ),
    )


async def read_rollup(
    session: AsyncSession,
    principal: Principal,
    *,
    metrics: Sequence[str],
    start: date,
    end: date,
    currency: str | None,
    by_store: bool,
) -> dict[str, Any]:
    """Figures of all visible stores in one currency (the tenant's reporting currency by
    default), money converted at the tenant's own rate of each day (the latest on or before)."""
    _check_read(metrics, start, end, [])
    tenant = await repo.get_tenant(session, principal.tenant_id)
    target = currency or (tenant.reporting_currency if tenant else "USD")
    stores = {
        s.id: s for s in await repo.stores_of(session, principal.tenant_id, principal.store_ids)
    }
    sums = await _sums(
        session,
        principal.tenant_id,
        list(stores),
        metrics,
        start,
        end,
        [],
        by_store=True,
        regs={sid: store_registry(s) for sid, s in stores.items()},
    )
    rates: dict[str, list[tuple[date, float]]] = {}
    for d, base, value in await repo.fx_rates(session, principal.tenant_id, target, end):
        rates.setdefault(base, []).append((d, value))
    missing: set[tuple[str, str]] = set()
    totals: dict[tuple[Any, ...], dict[str, float]] = {}
    for (sid, day), values in sums.items():
        cur = stores[sid].currency
        rate = 1.0
        if cur != target:
            known = [v for d, v in rates.get(cur, []) if d <= day]
            if not known:
                missing.add((cur, day.isoformat()))
                continue
            rate = known[-1]
        key = (sid, day) if by_store else (day,)
        acc = totals.setdefault(key, {})
        for m, v in values.items():
            money = grains.stored_metric(m) in MONEY_METRICS
            acc[m] = acc.get(m, 0.0) + (v * rate if money else v)
    if missing:
        sample = ", ".join(f"{c}->{target} on {d}" for c, d in sorted(missing)[:5])
        raise ValidationFailed(
            [
                {
                    "loc": ["query", "currency"],
                    "msg": f"no exchange rate for {sample}" + (" ..." if len(missing) > 5 else ""),
                }
            ]
        )
    items = []
    for key in sorted(totals):
        item: dict[str, Any] = {"date": key[-1]}
        if by_store:
            item["store_id"] = key[0]
        item["values"] = _with_derived(totals[key], metrics)
        items.append(item)
    return {"currency": target, "items": items}


# ---- file imports ----------------------------------------------------------------------------


def _job_out(row: Any) -> ImportJobOut:
    span = max(1, row.file_size - int(row.options.get("header_end", 0)))
    done = max(0, row.bytes_done - int(row.options.get("header_end", 0)))
    return ImportJobOut(
        id=row.id,
        store_id=row.store_id,
        status=row.status,
        format=row.format,
        preset=row.preset,
        file_name=row.file_name,
        file_size=row.file_size,
        bytes_done=row.bytes_done,
        lines_done=row.lines_done,
        progress=1.0 if row.status == "succeeded" else round(min(1.0, done / span), 4),
        rows_accepted=row.rows_accepted,
        rows_updated=row.rows_updated,
        rows_duplicate=row.rows_duplicate,
        rows_rejected=row.rows_rejected,
        problems_kept=int(row.options.get("problems_kept", 0)),
        warnings=list(row.options.get("mapping", {}).get("warnings", [])),
        mode=row.options.get("mode", "upsert"),
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


async def create_import(
    session: AsyncSession,
    principal: Principal,
    store_id: str,
    *,
    path: Path,
    file_name: str,
    fmt: str,
    preset: str | None,
    encoding: str = "auto",
    owned: bool = True,
    mode: str = "upsert",
) -> ImportJobOut:
    """Register an uploaded file as a job: the header is checked now, the rows by the runner.
    `owned`: the file is the service's copy of an upload, deleted once the job has ended (the
    CLI imports a file of the operator's in place and leaves it alone)."""
    await _visible_store(session, principal, store_id)
    declared = encoding
    if preset in fileformats.presets():
        declared = fileformats.presets()[preset].encoding
    try:
        size, enc, header, header_end, header_lines, mapping = await asyncio.to_thread(
            fileformats.inspect_file, path, fmt, preset, declared
        )
    except fileformats.HeaderProblem as exc:
        raise ValidationFailed(
            [{"loc": ["body", "header", col], "msg": msg} for col, msg in exc.problems]
        ) from exc
    now = _now()
    job_id = str(uuid.uuid4())
    values = {
        "id": job_id,
        "tenant_id": principal.tenant_id,
        "store_id": store_id,
        "status": "queued",
        "format": fmt,
        "preset": preset,
        "file_path": str(path),
        "file_name": file_name[:255],
        "file_size": size,
        "bytes_done": header_end,
        "lines_done": header_lines,
        "rows_accepted": 0,
        "rows_updated": 0,
        "rows_duplicate": 0,
        "rows_rejected": 0,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
        "error": None,
        "options": {
            "owned": owned,
            "encoding": enc,
            "header": header,
            "header_end": header_end,
            "mapping": mapping.to_json(),
            "problems_kept": 0,
            "mode": mode,
        },
    }
    await repo.insert_job(session, values)
    return _job_out(await repo.get_job(session, job_id))


async def get_import(session: AsyncSession, principal: Principal, job_id: str) -> ImportJobOut:
    row = await repo.get_job(session, job_id, principal.tenant_id)
    if row is None or not principal.can_see_store(row.store_id):
        raise NotFound(f"Import {job_id!r} not found")
    return _job_out(row)


async def list_imports(
    session: AsyncSession, principal: Principal, store_id: str, limit: int
) -> list[ImportJobOut]:
    await _visible_store(session, principal, store_id)
    return [
        _job_out(r) for r in await repo.list_jobs(session, principal.tenant_id, store_id, limit)
    ]


async def import_problems(
    session: AsyncSession, principal: Principal, job_id: str, *, after: int, limit: int
) -> tuple[list[ImportProblemOut], int | None]:
    await get_import(session, principal, job_id)
    rows = await repo.job_problems(session, job_id, after, limit + 1)
    nxt = rows[limit - 1].id if len(rows) > limit else None
    return [
        ImportProblemOut(line=r.line, column=r.column, message=r.message) for r in rows[:limit]
    ], nxt


def list_presets() -> list[PresetOut]:
    out = []
    for p in fileformats.presets().values():
        columns = {c: s["metric"] for c, s in p.metrics.items()}
        columns.update({c: f"dimension {s['name']}" for c, s in p.dimensions.items()})
        columns[p.date_column] = "date"
        out.append(
            PresetOut(
                name=p.name,
                description=p.description,
                layout=p.layout,
                date_column=p.date_column,
                columns=columns,
                sample=p.sample,
            )
        )
    return out


async def run_import_batch(
    session: AsyncSession, job_id: str, *, batch_rows: int = 5000, max_problems: int = 1000
) -> bool:
    """Import the next batch of a job from its last committed byte offset; the rows, the
    problems and the new offset commit together (the caller commits), so a crash at any point
    resumes exactly where the last batch ended. Returns whether there is more to do."""
    job = await repo.get_job(session, job_id)
    if job is None or job.status not in ("queued", "running"):
        return False
    store = await repo.get_store(session, job.tenant_id, job.store_id)
    principal = Principal(
        tenant_id=job.tenant_id, user_id="import", key_id="import", role="admin", store_ids=None
    )
    opts = job.options
    latest = datetime.now(ZoneInfo(store.timezone)).date() + timedelta(days=1)
    # Days a sum_lines job already wrote: their sums are final, a stray later line is refused.
    summed = list(opts.get("summed_dates", []))
    try:
        batch = await asyncio.to_thread(
            fileformats.parse_batch,
            Path(job.file_path),
            job.format,
            opts["encoding"],
            opts["header"],
            fileformats.Mapping.from_json(opts["mapping"]),
            job.bytes_done,
            job.lines_done,
            batch_rows,
            latest,
            frozenset(summed),
        )
    except OSError as exc:
        await fail_import(session, job_id, f"the uploaded file is gone: {exc}")
        return False
    rows, problems, rejected, finished = batch.rows, batch.problems, batch.rejected, batch.done
    end_offset, end_line = batch.end_offset, batch.end_line
    counts = {"rows_rejected": rejected}
    if rows and opts.get("mode") == "replace":
        await _replace_before(session, principal, job, rows)
    if rows:
        res = await ingest_metrics(
            session,
            principal,
            job.store_id,
            rows,
            source="import",
            max_rows=max(batch_rows, len(rows)),
        )
        counts.update(
            rows_accepted=res.accepted, rows_updated=res.updated, rows_duplicate=res.duplicates
        )
    kept = int(opts.get("problems_kept", 0))
    room = max(0, max_problems - kept)
    await repo.insert_problems(session, [{"job_id": job_id, **p} for p in problems[:room]])
    now = _now()
    values: dict[str, Any] = {
        "status": "succeeded" if finished else "running",
        "bytes_done": end_offset,
        "lines_done": end_line,
        "updated_at": now,
        "options": {**opts, "problems_kept": kept + min(room, len(problems))},
    }
    if batch.dates:
        values["options"]["summed_dates"] = sorted(set(summed) | set(batch.dates))
    if finished:
        values["finished_at"] = now
    await repo.add_job_counts(session, job_id, values, counts)
    if finished:
        await record_delivery(session, job.tenant_id, job.store_id, "import", "delivered")
    return not finished


async def _replace_before(
    session: AsyncSession, principal: Principal, job: Any, rows: Sequence[Any]
) -> None:
    """mode=replace: before a batch is written, the store's rows of the same days, metrics and
    level of detail that were written before this job began are deleted (what an earlier
    import of the file wrote; a channel the corrected export no longer has goes too), rows of
    this job's earlier batches stay. Audited and published like a deletion."""
    groups: dict[tuple[str, grains.Grain], set[date]] = {}
    for r in rows:
        groups.setdefault((r.metric, grains.grain_of(r.dimensions)), set()).add(r.date)
    deleted: list[Any] = []
    for (metric, grain), days in groups.items():
        deleted += await repo.delete_metric_rows(
            session,
            job.tenant_id,
            job.store_id,
            min(days),
            max(days),
            [metric],
            grains.grain_text(grain),
            before=job.created_at,
            dates=sorted(days),
        )
    if deleted:
        all_days = [r.date for r in rows]
        await _stage_deletion(
            session,
            principal,
            job.store_id,
            reason="replace",
            start=min(all_days),
            end=max(all_days),
            metrics=sorted({m for m, _ in groups}),
            grain=None,
            deleted=deleted,
            import_job_id=job.id,
        )


async def cleanup_import_file(session: AsyncSession, job_id: str) -> None:
    """Once a job has ended, its upload is not kept (rows are in the database)."""
    job = await repo.get_job(session, job_id)
    if job is not None and job.status in ("succeeded", "failed") and job.options.get("owned", True):
        await asyncio.to_thread(Path(job.file_path).unlink, missing_ok=True)


async def fail_import(session: AsyncSession, job_id: str, error: str) -> None:
    job = await repo.get_job(session, job_id)
    await repo.update_job(
        session,
        job_id,
        {"status": "failed", "error": error[:2000], "finished_at": _now(), "updated_at": _now()},
    )
    if job is not None:
        await record_delivery(session, job.tenant_id, job.store_id, "import", "failed", error)


STALE_AFTER = timedelta(hours=36)


async def store_health(
    session: AsyncSession, principal: Principal, store_id: str, *, days: int = 30
) -> StoreHealth:
    """A feed that stopped is a data problem, never a sales drop: when each source last
    delivered, what failed or was rejected, and which of the last days have no rows at all."""
    store = await _visible_store(session, principal, store_id)
    now = _now()
    end = datetime.now(ZoneInfo(store.timezone)).date() - timedelta(days=1)
    start = end - timedelta(days=days - 1)
    present = await repo.days_with_rows(session, principal.tenant_id, store_id, start, end)
    created = store.created_at.astimezone(ZoneInfo(store.timezone)).date()
    missing = [
        start + timedelta(days=i) for i in range(days) if start + timedelta(days=i) not in present
    ]
    sources = [
        SourceHealthOut(
            source=r.source,
            last_delivery_at=r.last_delivery_at,
            last_failure_at=r.last_failure_at,
            delivered=r.delivered,
            failed=r.failed,
            rejected=r.rejected,
            last_error=r.last_error,
        )
        for r in await repo.source_health(session, principal.tenant_id, store_id)
    ]
    deliveries = [s.last_delivery_at for s in sources if s.last_delivery_at is not None]
    last = max(deliveries) if deliveries else None
    last_date = await repo.last_data_date(session, principal.tenant_id, store_id)
    if last_date is None:
        status = "no_data"
    elif last is None or now - last > STALE_AFTER or (end not in present and end >= created):
        status = "stale"
    else:
        status = "ok"
    return StoreHealth(
        store_id=store_id,
        status=status,
        checked_at=now,
        last_delivery_at=last,
        last_data_date=last_date,
        window_start=start,
        window_end=end,
        missing_days=missing,
        sources=sources,
    )


async def stale_stores(session: AsyncSession) -> int:
    return await repo.stale_store_count(session, _now() - STALE_AFTER)
