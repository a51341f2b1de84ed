"""HTTP of ingest: parse, call the service, shape the response."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.ingest import service
from services.ingest.schemas import (
    ApiKeyCreate,
    ApiKeyOut,
    BenchmarksIn,
    CompetitorMetricsIn,
    IngestResult,
    MetricsIn,
    Page,
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

router = APIRouter(prefix="/v1")
PathId = Annotated[str, Query(max_length=64)]


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
