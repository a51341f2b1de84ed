"""HTTP of content: parse, call the service, shape the response."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.content import service
from services.content.lint import channel_names, pack_names
from services.content.schemas import (
    AuditOut,
    BriefOut,
    CopyCreate,
    CopyOut,
    CopyUpdate,
    DecideIn,
    DiffOut,
    ExperimentCreate,
    ExperimentOut,
    LintIn,
    Page,
    RenderIn,
    RenderOut,
    ReviewerIn,
    ReviewerOut,
    RevisionOut,
    Status,
    TransitionIn,
)
from shared.app import ReadSession, UoW
from shared.auth import Admin, Operator, Viewer

router = APIRouter(prefix="/v1")
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=100)]


@router.post("/copies", status_code=201, response_model=CopyOut, tags=["copies"])
async def create_copy(body: CopyCreate, principal: Operator, uow: UoW) -> CopyOut:
    out = await service.create_copy(uow.session, principal, body)
    await uow.commit()
    return out


@router.get("/copies", response_model=Page[CopyOut], tags=["copies"])
async def list_copies(
    principal: Viewer,
    session: ReadSession,
    store_id: Annotated[str | None, Query(max_length=128)] = None,
    status: Status | None = None,
    campaign_id: Annotated[str | None, Query(max_length=36)] = None,
    brief_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[CopyOut]:
    filters = {
        "store_id": store_id,
        "status": status,
        "campaign_id": campaign_id,
        "brief_id": brief_id,
    }
    return await service.list_copies(
        session, principal, filters=filters, limit=limit, cursor=cursor
    )


@router.get("/copies/{copy_id}", response_model=CopyOut, tags=["copies"])
async def get_copy(copy_id: str, principal: Viewer, session: ReadSession) -> CopyOut:
    return await service.get_copy(session, principal, copy_id)


@router.put("/copies/{copy_id}", response_model=CopyOut, tags=["copies"])
async def update_copy(copy_id: str, body: CopyUpdate, principal: Operator, uow: UoW) -> CopyOut:
    out = await service.update_copy(uow.session, principal, copy_id, body)
    await uow.commit()
    return out


@router.get("/copies/{copy_id}/revisions", response_model=list[RevisionOut], tags=["copies"])
async def list_revisions(copy_id: str, principal: Viewer, session: ReadSession) -> Any:
    return await service.list_revisions(session, principal, copy_id)


@router.get("/copies/{copy_id}/revisions/{revision}", response_model=RevisionOut, tags=["copies"])
async def get_revision(
    copy_id: str, revision: int, principal: Viewer, session: ReadSession
) -> RevisionOut:
    return await service.get_revision(session, principal, copy_id, revision)


@router.get("/copies/{copy_id}/diff", response_model=DiffOut, tags=["copies"])
async def diff_revisions(
    copy_id: str,
    principal: Viewer,
    session: ReadSession,
    from_revision: Annotated[int | None, Query(alias="from", ge=1)] = None,
    to_revision: Annotated[int | None, Query(alias="to", ge=1)] = None,
) -> DiffOut:
    return await service.diff_revisions(session, principal, copy_id, from_revision, to_revision)


@router.get("/copies/{copy_id}/audit", response_model=list[AuditOut], tags=["copies"])
async def list_audit(copy_id: str, principal: Viewer, session: ReadSession) -> Any:
    return await service.list_audit(session, principal, copy_id)


@router.post("/copies/{copy_id}/transitions", response_model=CopyOut, tags=["copies"])
async def transition(copy_id: str, body: TransitionIn, principal: Viewer, uow: UoW) -> CopyOut:
    # Roles are checked per action in the service: reviewers may hold any role.
    out = await service.transition(uow.session, principal, copy_id, body)
    await uow.commit()
    return out


@router.post("/copies/{copy_id}/render", response_model=RenderOut, tags=["templates"])
async def render_copy(
    copy_id: str, body: RenderIn, principal: Viewer, session: ReadSession
) -> RenderOut:
    return await service.render_copy(session, principal, copy_id, body)


@router.post("/lint", tags=["lint"])
async def lint(body: LintIn, principal: Viewer) -> dict[str, Any]:
    return service.lint_text(body)


@router.get("/lint/profiles", tags=["lint"])
async def lint_profiles(principal: Viewer) -> dict[str, list[str]]:
    return {"channels": channel_names(), "packs": pack_names()}


@router.get("/briefs", response_model=Page[BriefOut], tags=["briefs"])
async def list_briefs(
    principal: Viewer,
    session: ReadSession,
    owner: Annotated[str | None, Query(max_length=64)] = None,
    campaign_id: Annotated[str | None, Query(max_length=36)] = None,
    store_id: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    kind: Annotated[str | None, Query(max_length=16)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[BriefOut]:
    filters = {
        "owner": owner,
        "campaign_id": campaign_id,
        "store_id": store_id,
        "status": status,
        "kind": kind,
    }
    return await service.list_briefs(
        session, principal, filters=filters, limit=limit, cursor=cursor
    )


@router.get("/briefs/{brief_id}", response_model=BriefOut, tags=["briefs"])
async def get_brief(brief_id: str, principal: Viewer, session: ReadSession) -> BriefOut:
    return await service.get_brief(session, principal, brief_id)


@router.post("/experiments", status_code=201, response_model=ExperimentOut, tags=["experiments"])
async def create_experiment(body: ExperimentCreate, principal: Operator, uow: UoW) -> ExperimentOut:
    out = await service.create_experiment(uow.session, principal, body)
    await uow.commit()
    return out


@router.get("/experiments", response_model=Page[ExperimentOut], tags=["experiments"])
async def list_experiments(
    principal: Viewer,
    session: ReadSession,
    store_id: Annotated[str | None, Query(max_length=128)] = None,
    campaign_id: Annotated[str | None, Query(max_length=36)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[ExperimentOut]:
    filters = {"store_id": store_id, "campaign_id": campaign_id, "status": status}
    return await service.list_experiments(
        session, principal, filters=filters, limit=limit, cursor=cursor
    )


@router.get("/experiments/{experiment_id}", response_model=ExperimentOut, tags=["experiments"])
async def get_experiment(
    experiment_id: str, principal: Viewer, session: ReadSession
) -> ExperimentOut:
    return await service.get_experiment(session, principal, experiment_id)


@router.post(
    "/experiments/{experiment_id}/decide", response_model=ExperimentOut, tags=["experiments"]
)
async def decide_experiment(
    experiment_id: str, body: DecideIn, principal: Operator, uow: UoW
) -> ExperimentOut:
    out = await service.decide_experiment(uow.session, principal, experiment_id, body)
    await uow.commit()
    return out


@router.get("/reviewers", response_model=list[ReviewerOut], tags=["review"])
async def list_reviewers(principal: Viewer, session: ReadSession) -> list[ReviewerOut]:
    return await service.list_reviewers(session, principal)


@router.post("/reviewers", response_model=list[ReviewerOut], tags=["review"])
async def add_reviewer(body: ReviewerIn, principal: Admin, uow: UoW) -> list[ReviewerOut]:
    out = await service.add_reviewer(uow.session, principal, body)
    await uow.commit()
    return out


@router.delete("/reviewers/{user_id}", status_code=204, tags=["review"])
async def remove_reviewer(user_id: str, principal: Admin, uow: UoW) -> None:
    await service.remove_reviewer(uow.session, principal, user_id)
    await uow.commit()
