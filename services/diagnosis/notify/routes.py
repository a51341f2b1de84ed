"""HTTP of notification targets: parse, call the service, shape the response.

Targets send tenant data outside the platform: creating, changing and deleting them is for
admins; operators list them, read their deliveries and send a test message; viewers do not see
them (their URLs, even masked, and their delivery logs are operational data)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.diagnosis.notify import service
from services.diagnosis.notify.delivery import notify_wake
from services.diagnosis.notify.schemas import (
    DeliveryPage,
    TargetCreate,
    TargetOut,
    TargetPage,
    TargetUpdate,
    TestQueued,
)
from services.diagnosis.notify.settings import notify_settings
from shared.app import ReadSession, UoW
from shared.auth import Admin, Operator
from shared.events.common import Owner

router = APIRouter(prefix="/v1/notification-targets", tags=["notifications"])


@router.post("", status_code=201, response_model=TargetOut)
async def create_target(
    body: TargetCreate, principal: Admin, uow: UoW, request: Request, response: Response
) -> TargetOut:
    settings = notify_settings(request.app.state)
    out = await service.create_target(uow.session, principal, body, settings)
    await uow.commit()
    response.headers["Location"] = f"/v1/notification-targets/{out.id}"
    return out


@router.get("", response_model=TargetPage)
async def list_targets(
    principal: Operator,
    session: ReadSession,
    owner: Owner | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> TargetPage:
    return await service.list_targets(session, principal, owner, limit, cursor)


@router.get("/{target_id}", response_model=TargetOut)
async def get_target(target_id: str, principal: Operator, session: ReadSession) -> TargetOut:
    return await service.get_target(session, principal, target_id)


@router.patch("/{target_id}", response_model=TargetOut)
async def update_target(
    target_id: str, body: TargetUpdate, principal: Admin, uow: UoW, request: Request
) -> TargetOut:
    settings = notify_settings(request.app.state)
    out = await service.update_target(uow.session, principal, target_id, body, settings)
    await uow.commit()
    return out


@router.delete("/{target_id}", status_code=204)
async def delete_target(target_id: str, principal: Admin, uow: UoW) -> Response:
    await service.delete_target(uow.session, principal, target_id)
    await uow.commit()
    return Response(status_code=204)


@router.get("/{target_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    target_id: str,
    principal: Operator,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> DeliveryPage:
    return await service.list_deliveries(session, principal, target_id, limit, cursor)


@router.post("/{target_id}/test", status_code=202, response_model=TestQueued)
async def send_test(target_id: str, principal: Operator, uow: UoW, request: Request) -> TestQueued:
    out = await service.queue_test(uow.session, principal, target_id)
    await uow.commit()
    notify_wake(request.app.state).set()
    return out
