"""HTTP of ingest: parse, call the service, shape the response."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from services.ingest import service
from services.ingest.schemas import (
    ApiKeyCreate,
    ApiKeyOut,
    BenchmarksIn,
    CompetitorMetricsIn,
    FxRatesIn,
    IngestResult,
    MetricsIn,
    Page,
    Rollup,
    SeriesPoint,
    StoreCreate,
    StoreOut,
    StoreUpdate,
    TenantCreate,
    TenantOut,
    UserCreate,
    UserOut,
)
from shared.app import ReadSession, UoW
from shared.auth import Admin, Operator, Viewer
from shared.errors import Forbidden

router = APIRouter(prefix="/v1")


@router.post("/tenants", status_code=201, response_model=TenantOut, tags=["admin"])
async def create_tenant(body: TenantCreate, principal: Admin, uow: UoW) -> TenantOut:
    out = await service.create_tenant(uow.session, principal, body)
    await uow.commit()
    return out


@router.post("/users", status_code=201, response_model=UserOut, tags=["admin"])
async def create_user(body: UserCreate, principal: Admin, uow: UoW) -> UserOut:
    out = await service.create_user(uow.session, principal, body)
    await uow.commit()
    return out


@router.post("/api-keys", status_code=201, response_model=ApiKeyOut, tags=["admin"])
async def create_api_key(
    body: ApiKeyCreate,
    principal: Admin,
    uow: UoW,
    tenant_id: Annotated[str | None, Query(max_length=64)] = None,
) -> ApiKeyOut:
    out = await service.create_api_key(uow.session, principal, body, tenant_id)
    await uow.commit()
    return out


@router.get("/api-keys", response_model=list[ApiKeyOut], tags=["admin"])
async def list_api_keys(principal: Admin, session: ReadSession) -> list[ApiKeyOut]:
    return await service.list_api_keys(session, principal)


@router.post("/api-keys/{key_id}/revoke", response_model=ApiKeyOut, tags=["admin"])
async def revoke_api_key(key_id: str, principal: Admin, uow: UoW) -> ApiKeyOut:
    out = await service.revoke_api_key(uow.session, principal, key_id)
    await uow.commit()
    return out


@router.post(
    "/stores",
    status_code=201,
    response_model=StoreOut,
    tags=["stores"],
    response_model_exclude_none=True,
)
async def create_store(
    body: StoreCreate, principal: Operator, uow: UoW, request: Request, response: Response
) -> StoreOut:
    out = await service.create_store(uow.session, principal, body)
    await uow.commit()
    response.headers["Location"] = str(request.url_for("get_store", store_id=out.id).path)
    return out


@router.get(
    "/stores", response_model=Page[StoreOut], tags=["stores"], response_model_exclude_none=True
)
async def list_stores(
    principal: Viewer,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[StoreOut]:
    return await service.list_stores(session, principal, limit=limit, cursor=cursor)


@router.get(
    "/stores/{store_id}", response_model=StoreOut, tags=["stores"], response_model_exclude_none=True
)
async def get_store(store_id: str, principal: Viewer, session: ReadSession) -> StoreOut:
    return await service.get_store(session, principal, store_id)


@router.patch(
    "/stores/{store_id}", response_model=StoreOut, tags=["stores"], response_model_exclude_none=True
)
async def update_store(store_id: str, body: StoreUpdate, principal: Operator, uow: UoW) -> StoreOut:
    out = await service.update_store(uow.session, principal, store_id, body)
    await uow.commit()
    return out


@router.post(
    "/stores/{store_id}/metrics", status_code=202, response_model=IngestResult, tags=["metrics"]
)
async def post_metrics(
    store_id: str, body: MetricsIn, principal: Operator, uow: UoW, request: Request
) -> IngestResult:
    settings = request.app.state.settings
    out = await service.ingest_metrics(
        uow.session,
        principal,
        store_id,
        body.rows,
        max_rows=settings.max_rows_per_request,
        max_future_days=settings.max_future_days,
    )
    await uow.commit()
    return out


@router.post("/benchmarks", status_code=202, response_model=IngestResult, tags=["metrics"])
async def post_benchmarks(body: BenchmarksIn, principal: Operator, uow: UoW) -> IngestResult:
    out = await service.ingest_benchmarks(uow.session, principal, body)
    await uow.commit()
    return out


@router.post(
    "/stores/{store_id}/competitors/{competitor_id}/metrics",
    status_code=202,
    response_model=IngestResult,
    tags=["metrics"],
)
async def post_competitor_metrics(
    store_id: str, competitor_id: str, body: CompetitorMetricsIn, principal: Operator, uow: UoW
) -> IngestResult:
    out = await service.ingest_competitor_metrics(
        uow.session, principal, store_id, competitor_id, body
    )
    await uow.commit()
    return out


def _split(values: list[str] | None) -> list[str]:
    """Accept repeated parameters and comma-separated lists alike."""
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


MetricQuery = Annotated[list[str] | None, Query(alias="metric", max_length=40)]
GroupQuery = Annotated[list[str] | None, Query(max_length=6)]


@router.get(
    "/stores/{store_id}/metrics",
    response_model=Page[SeriesPoint],
    tags=["metrics"],
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_metrics(
    store_id: str,
    principal: Viewer,
    session: ReadSession,
    request: Request,
    start: date,
    end: date,
    metric: MetricQuery = None,
    group_by: GroupQuery = None,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
    metrics, groups = _split(metric), _split(group_by)
    points = await service.read_series(
        session, principal, store_id, metrics=metrics, start=start, end=end, group_by=groups
    )
    if format == "csv" or (format is None and "text/csv" in request.headers.get("accept", "")):
        return _csv_response(points, metrics, groups, f"{store_id}-metrics.csv")
    offset = service.decode_offset(cursor)
    page = points[offset : offset + limit]
    nxt = service.encode_cursor(str(offset + limit)) if offset + limit < len(points) else None
    return Page[SeriesPoint](items=[SeriesPoint(**p) for p in page], next_cursor=nxt)


def _csv_response(
    points: list[dict[str, Any]], metrics: list[str], groups: list[str], filename: str
) -> StreamingResponse:
    def lines() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["date", *groups, *metrics])
        for p in points:
            writer.writerow(
                [
                    p["date"].isoformat(),
                    *[p["dimensions"].get(g) or "" for g in groups],
                    *["" if p["values"].get(m) is None else repr(p["values"][m]) for m in metrics],
                ]
            )
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/metrics/rollup", response_model=Rollup, tags=["metrics"])
async def get_rollup(
    principal: Viewer,
    session: ReadSession,
    start: date,
    end: date,
    metric: MetricQuery = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    by: Annotated[Literal["date", "store"], Query()] = "date",
) -> Rollup:
    out = await service.read_rollup(
        session,
        principal,
        metrics=_split(metric),
        start=start,
        end=end,
        currency=currency,
        by_store=by == "store",
    )
    return Rollup(**out)


@router.post("/fx-rates", status_code=202, response_model=IngestResult, tags=["metrics"])
async def post_fx_rates(body: FxRatesIn, principal: Operator, uow: UoW) -> IngestResult:
    if principal.store_ids is not None:
        raise Forbidden("A key scoped to some stores cannot set the tenant's exchange rates")
    out = await service.ingest_fx_rates(uow.session, principal, body.rows)
    await uow.commit()
    return out
