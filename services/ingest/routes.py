"""HTTP of ingest: parse, call the service, shape the response."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

from services.ingest import service
from services.ingest.schemas import (
    ApiKeyCreate,
    ApiKeyOut,
    BenchmarksIn,
    CompetitorMetricsIn,
    CorrectionOut,
    FxRatesIn,
    ImportJobOut,
    IngestResult,
    MarketPoint,
    MarketSeries,
    MetricsIn,
    Page,
    PresetOut,
    Rollup,
    SeriesPoint,
    StoreCreate,
    StoreHealth,
    StoreOut,
    StoreUpdate,
    TenantCreate,
    TenantOut,
    UserCreate,
    UserOut,
)
from shared.app import ReadSession, UoW
from shared.auth import Admin, Operator, Viewer
from shared.errors import Forbidden, ValidationFailed, inline_schema, validate_json_body
from shared.jsonguard import SupportedDate

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


@router.get("/stores/{store_id}/health", response_model=StoreHealth, tags=["stores"])
async def get_store_health(
    store_id: str,
    principal: Viewer,
    session: ReadSession,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> StoreHealth:
    return await service.store_health(session, principal, store_id, days=days)


@router.post(
    "/stores/{store_id}/metrics",
    status_code=202,
    response_model=IngestResult,
    tags=["metrics"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(MetricsIn)}},
        }
    },
)
async def post_metrics(
    store_id: str, principal: Operator, uow: UoW, request: Request
) -> IngestResult:
    # Up to 50,000 rows: parsed and validated in one pass by pydantic-core.
    body: MetricsIn = validate_json_body(MetricsIn, await request.body())
    settings = request.app.state.settings
    try:
        out = await service.ingest_metrics(
            uow.session,
            principal,
            store_id,
            body.rows,
            max_rows=settings.max_rows_per_request,
            max_future_days=settings.max_future_days,
        )
    except ValidationFailed as exc:
        # Nothing of the batch is kept, but the store's data health remembers the rejection.
        await uow.session.rollback()
        await service.record_delivery(
            uow.session, principal.tenant_id, store_id, "api", "rejected", exc.detail
        )
        await uow.commit()
        raise
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


# Reads name their metrics (the schema says so, not only the service); a deletion may not.
MetricQuery = Annotated[list[str], Query(alias="metric", min_length=1, max_length=40)]
OptionalMetricQuery = Annotated[list[str] | None, Query(alias="metric", max_length=40)]
GroupQuery = Annotated[list[str] | None, Query(max_length=6)]
FilterQuery = Annotated[
    list[str] | None,
    Query(
        max_length=50,
        description="only rows with one of these values (repeat or comma-separate); any "
        "registered dimension may filter the same way (?product_id=p1)",
    ),
]
# Parameters of a series read that are not dimension filters.
READ_PARAMS = frozenset({"start", "end", "metric", "group_by", "format", "limit", "cursor"})


def _filters(request: Request, reserved: frozenset[str] = READ_PARAMS) -> dict[str, list[str]]:
    """Every other query parameter is a filter on a dimension: ?channel=search&device=mobile."""
    out: dict[str, list[str]] = {}
    for k in dict.fromkeys(request.query_params.keys()):
        if k in reserved:
            continue
        out[k] = _split(request.query_params.getlist(k))
    return out


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
    start: SupportedDate,
    end: SupportedDate,
    metric: MetricQuery,
    group_by: GroupQuery = None,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    channel: FilterQuery = None,
    device: FilterQuery = None,
    region: FilterQuery = None,
    traffic_type: FilterQuery = None,
) -> Any:
    metrics, groups = _split(metric), _split(group_by)
    points = await service.read_series(
        session,
        principal,
        store_id,
        metrics=metrics,
        start=start,
        end=end,
        group_by=groups,
        filters=_filters(request),
    )
    if format == "csv" or (format is None and "text/csv" in request.headers.get("accept", "")):
        return _csv_response(points, metrics, groups, f"{store_id}-metrics.csv")
    offset = service.decode_offset(cursor)
    page = points[offset : offset + limit]
    nxt = service.encode_cursor(str(offset + limit)) if offset + limit < len(points) else None
    return Page[SeriesPoint](items=[SeriesPoint(**p) for p in page], next_cursor=nxt)


@router.delete(
    "/stores/{store_id}/metrics",
    response_model=CorrectionOut,
    tags=["metrics"],
    summary="Delete metric rows (a correction): by date range, metric(s) and level of detail",
)
async def delete_metrics(
    store_id: str,
    principal: Operator,
    uow: UoW,
    start: SupportedDate,
    end: SupportedDate,
    metric: OptionalMetricQuery = None,
    grain: Annotated[
        str | None,
        Query(
            max_length=400,
            description="the level of detail to delete: its dimension names comma-separated "
            "(channel,device), 'store' for the store-level rows; absent: every level",
        ),
    ] = None,
) -> CorrectionOut:
    out = await service.delete_metrics(
        uow.session,
        principal,
        store_id,
        start=start,
        end=end,
        metrics=_split(metric),
        grain=grain,
    )
    await uow.commit()
    return out


@router.get("/stores/{store_id}/corrections", response_model=list[CorrectionOut], tags=["metrics"])
async def list_corrections(
    store_id: str,
    principal: Viewer,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CorrectionOut]:
    return await service.list_corrections(session, principal, store_id, limit)


@router.get("/benchmarks", response_model=MarketSeries, tags=["metrics"])
async def get_benchmarks(
    principal: Viewer,
    session: ReadSession,
    market: Annotated[str, Query(pattern=r"^[A-Z]{2}$")],
    category: Annotated[str, Query(min_length=1, max_length=100)],
    start: SupportedDate,
    end: SupportedDate,
    metric: MetricQuery,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> MarketSeries:
    points, kinds = await service.read_benchmarks(
        session,
        principal,
        market=market,
        category=category,
        metrics=_split(metric),
        start=start,
        end=end,
    )
    return _market_page(points, kinds, limit, cursor)


@router.get(
    "/stores/{store_id}/competitors/{competitor_id}/metrics",
    response_model=MarketSeries,
    tags=["metrics"],
)
async def get_competitor_metrics(
    store_id: str,
    competitor_id: str,
    principal: Viewer,
    session: ReadSession,
    request: Request,
    start: SupportedDate,
    end: SupportedDate,
    metric: MetricQuery,
    group_by: GroupQuery = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    channel: FilterQuery = None,
    device: FilterQuery = None,
) -> MarketSeries:
    points, kinds = await service.read_competitor_metrics(
        session,
        principal,
        store_id,
        competitor_id,
        metrics=_split(metric),
        start=start,
        end=end,
        group_by=_split(group_by),
        filters=_filters(request),
    )
    return _market_page(points, kinds, limit, cursor)


def _market_page(
    points: list[dict[str, Any]], kinds: dict[str, str], limit: int, cursor: str | None
) -> MarketSeries:
    offset = service.decode_offset(cursor)
    page = points[offset : offset + limit]
    nxt = service.encode_cursor(str(offset + limit)) if offset + limit < len(points) else None
    return MarketSeries(value_kinds=kinds, items=[MarketPoint(**p) for p in page], next_cursor=nxt)


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
    start: SupportedDate,
    end: SupportedDate,
    metric: MetricQuery,
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


ENCODINGS = r"^(auto|utf-8|utf-8-sig|gb18030|gbk|latin-1)$"


@router.get("/import-presets", response_model=list[PresetOut], tags=["imports"])
async def get_presets(principal: Viewer) -> list[PresetOut]:
    return service.list_presets()


@router.post(
    "/stores/{store_id}/metrics/import",
    status_code=202,
    response_model=ImportJobOut,
    tags=["imports"],
)
async def post_import(
    store_id: str,
    principal: Operator,
    uow: UoW,
    request: Request,
    response: Response,
    format: Annotated[Literal["csv", "ndjson"] | None, Query()] = None,
    preset: Annotated[str | None, Query(max_length=64)] = None,
    encoding: Annotated[
        str, Query(pattern=r"^(auto|utf-8|utf-8-sig|gb18030|gbk|latin-1)$")
    ] = "auto",
    mode: Annotated[
        Literal["upsert", "replace"],
        Query(
            description="upsert (default): rows add to or update what is stored; replace: the "
            "store's rows of the file's days, metrics and levels of detail written before "
            "this import are deleted first (a corrected re-export replaces the old one)"
        ),
    ] = "upsert",
) -> ImportJobOut:
    """Upload a CSV or NDJSON file as the raw body (or as the `file` field of a form); it is
    streamed to disk and imported by a background job."""
    settings = request.app.state.settings
    folder = Path(settings.var_dir) / "imports"
    path, name, ctype = await _receive_upload(request, folder)
    fmt = format or (
        "ndjson" if "ndjson" in ctype or name.endswith((".ndjson", ".jsonl")) else "csv"
    )
    try:
        job = await service.create_import(
            uow.session,
            principal,
            store_id,
            path=path,
            file_name=name,
            fmt=fmt,
            preset=preset,
            encoding=encoding,
            mode=mode,
        )
        await uow.commit()
    except BaseException:
        await anyio.Path(path).unlink(missing_ok=True)
        raise
    wake = getattr(request.app.state, "import_wake", None)
    if wake is not None:
        wake.set()
    response.headers["Location"] = f"/v1/imports/{job.id}"
    return job


async def _receive_upload(request: Request, folder: Path) -> tuple[Path, str, str]:
    """Stream the upload to disk (memory stays flat whatever the size)."""
    await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4()}.upload"
    ctype = request.headers.get("content-type", "")
    name = "upload"
    try:
        if ctype.startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=10)
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ValidationFailed(
                    [{"loc": ["body", "file"], "msg": "send the file in the `file` field"}]
                )
            name = upload.filename or name
            ctype = upload.content_type or ""
            async with await anyio.open_file(path, "wb") as out:
                while chunk := await upload.read(1 << 20):
                    await out.write(chunk)
        else:
            async with await anyio.open_file(path, "wb") as out:
                async for chunk in request.stream():
                    await out.write(chunk)
            disposition = request.headers.get("content-disposition", "")
            if "filename=" in disposition:
                name = disposition.split("filename=", 1)[1].strip('"; ')
    except BaseException:
        await anyio.Path(path).unlink(missing_ok=True)
        raise
    if (await anyio.Path(path).stat()).st_size == 0:
        await anyio.Path(path).unlink(missing_ok=True)
        raise ValidationFailed([{"loc": ["body"], "msg": "the file is empty"}])
    return path, name, ctype


@router.get("/stores/{store_id}/imports", response_model=list[ImportJobOut], tags=["imports"])
async def list_imports(
    store_id: str,
    principal: Viewer,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ImportJobOut]:
    return await service.list_imports(session, principal, store_id, limit)


@router.get("/imports/{job_id}", response_model=ImportJobOut, tags=["imports"])
async def get_import(job_id: str, principal: Viewer, session: ReadSession) -> ImportJobOut:
    return await service.get_import(session, principal, job_id)


@router.get(
    "/imports/{job_id}/problems", tags=["imports"], responses={200: {"content": {"text/csv": {}}}}
)
async def get_import_problems(
    job_id: str,
    principal: Viewer,
    session: ReadSession,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
    after = service.decode_offset(cursor)
    problems, nxt = await service.import_problems(
        session, principal, job_id, after=after, limit=limit
    )
    if format == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["line", "column", "message"])
        for p in problems:
            writer.writerow([p.line, p.column or "", p.message])
        return Response(
            buf.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="import-{job_id}-problems.csv"'},
        )
    return {
        "items": [p.model_dump() for p in problems],
        "next_cursor": service.encode_cursor(str(nxt)) if nxt else None,
    }
