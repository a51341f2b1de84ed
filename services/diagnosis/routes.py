"""HTTP of diagnosis: parse, call the service, shape the response."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from services.diagnosis import anomaly as anomaly_cli
from services.diagnosis import rca as rca_cli
from services.diagnosis import service
from services.diagnosis.engine.errors import InputError
from services.diagnosis.schemas import (
    AnomaliesIn,
    AnomaliesOut,
    AnomalyScore,
    DiagnosisRequest,
    FindingOut,
    FindingPage,
    RcaCause,
    RcaIn,
    RcaOut,
    ReportPage,
    SummaryLocale,
    TransitionIn,
)
from shared.app import ReadSession, UoW
from shared.auth import Operator, Viewer
from shared.errors import ValidationFailed
from shared.events.common import Baseline
from shared.jsonguard import SupportedDate

router = APIRouter(prefix="/v1")

Severity = Literal["low", "medium", "high", "critical"]
Status = Literal["open", "acknowledged", "snoozed", "resolved"]
Owner = Literal[
    "promotion", "designer", "merchandising", "customer_service", "logistics", "operations"
]


@router.post("/stores/{store_id}/diagnoses", tags=["diagnoses"])
async def request_diagnosis(
    store_id: str,
    body: DiagnosisRequest,
    principal: Operator,
    session: ReadSession,
    uow: UoW,
    request: Request,
) -> dict[str, Any]:
    history = request.app.state.settings.history_days
    out = await service.request_diagnosis(session, uow.session, principal, store_id, body, history)
    await uow.commit()
    return out


@router.get("/stores/{store_id}/diagnoses/{day}", tags=["diagnoses"])
async def get_diagnosis(
    store_id: str,
    day: SupportedDate,
    principal: Viewer,
    session: ReadSession,
    version: Annotated[int | None, Query(ge=1)] = None,
    locale: SummaryLocale = "en",
) -> dict[str, Any]:
    return await service.get_report(session, principal, store_id, day, version, locale)


@router.get("/stores/{store_id}/board", tags=["diagnoses"])
async def get_board(
    store_id: str,
    principal: Viewer,
    session: ReadSession,
    request: Request,
    date: Annotated[
        SupportedDate | None, Query(description="the store's local date; yesterday by default")
    ] = None,
    baseline: Annotated[
        Baseline | None,
        Query(description="omitted: the report's default (comparable weekdays, festival-aware)"),
    ] = None,
) -> dict[str, Any]:
    """The day's KPIs by channel and free / paid, each against its baseline and the market, the
    market itself and the competitors beside the store, in the store's currency."""
    history = request.app.state.settings.history_days
    return await service.store_board(session, principal, store_id, date, baseline, history)


@router.get("/stores/{store_id}/diagnoses", response_model=ReportPage, tags=["diagnoses"])
async def list_diagnoses(
    store_id: str,
    principal: Viewer,
    session: ReadSession,
    start: SupportedDate | None = None,
    end: SupportedDate | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 30,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    locale: SummaryLocale = "en",
) -> ReportPage:
    return await service.list_reports(
        session, principal, store_id, start, end, limit, cursor, locale
    )


def _input_error(loc: list[Any], exc: InputError) -> ValidationFailed:
    return ValidationFailed([{"loc": loc, "msg": str(exc)}], detail=str(exc))


@router.post("/rca", response_model=RcaOut, tags=["tools"])
async def rca(body: RcaIn, principal: Viewer) -> RcaOut:
    """The root-cause set of a change over leaf rows: `python -m services.diagnosis.rca`."""
    cols = set().union(*(r.keys() for r in body.rows))
    ratio = rca_cli.is_ratio(list(cols))
    if ratio is None:
        raise ValidationFailed(
            [
                {
                    "loc": ["body", "rows"],
                    "msg": "rows need real and predict (or real_num, "
                    "real_den, predict_num, predict_den for a ratio KPI)",
                }
            ]
        )
    try:
        result = rca_cli.localize_rows(body.dimensions, body.rows, ratio=ratio, row_name="row")
    except InputError as exc:
        raise _input_error(["body", "rows"], exc) from None
    return RcaOut(
        verdict=result.verdict,
        root_causes=result.elements,
        causes=[
            RcaCause(
                element=c.element,
                real=c.real,
                predict=c.predict,
                change=c.change,
                share_of_change=c.share_of_change,
                leaves=c.leaves,
            )
            for c in result.causes
        ],
        ratio=ratio,
    )


@router.post("/anomalies", response_model=AnomaliesOut, tags=["tools"])
async def anomalies(body: AnomaliesIn, principal: Viewer) -> AnomaliesOut:
    """Per-point online anomaly scores: `python -m services.diagnosis.anomaly`."""
    raw = [(str(p.timestamp), "" if p.value is None else repr(float(p.value))) for p in body.points]
    try:
        scored, warnings = anomaly_cli.score_rows(raw, first_line=0, mode=body.mode)
    except InputError as exc:
        raise _input_error(["body", "points"], exc) from None
    return AnomaliesOut(
        points=[
            AnomalyScore(timestamp=p.timestamp, value=p.value, anomaly_score=round(s, 4), label=lb)
            for p, (_, _, s, lb) in zip(body.points, scored, strict=True)
        ],
        warnings=[w.removeprefix("warning: ") for w in warnings],
    )


@router.get("/findings", response_model=FindingPage, tags=["findings"])
async def list_findings(
    principal: Viewer,
    session: ReadSession,
    status: Annotated[list[Status] | None, Query()] = None,
    owner: Owner | None = None,
    store_id: Annotated[str | None, Query(max_length=128)] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    start: SupportedDate | None = None,
    end: SupportedDate | None = None,
    group: Literal["cause"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> FindingPage:
    """Open findings across the tenant's stores, ranked by |expected GMV impact| x confidence;
    `group=cause` folds the same cause seen in many stores into one item."""
    return await service.list_findings(
        session,
        principal,
        status=status,
        owner=owner,
        store_id=store_id,
        severity=severity,
        start=start,
        end=end,
        group=group,
        limit=limit,
        cursor=cursor,
    )


@router.get("/findings/{finding_id}", response_model=FindingOut, tags=["findings"])
async def get_finding(finding_id: str, principal: Viewer, session: ReadSession) -> FindingOut:
    return await service.get_finding(session, principal, finding_id)


@router.post("/findings/{finding_id}/transitions", response_model=FindingOut, tags=["findings"])
async def transition(
    finding_id: str, body: TransitionIn, principal: Operator, uow: UoW
) -> FindingOut:
    out = await service.transition_finding(uow.session, principal, finding_id, body)
    await uow.commit()
    return out
