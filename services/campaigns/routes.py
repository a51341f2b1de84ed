"""HTTP of campaigns: parse, call the service, shape the response."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.campaigns import service
from services.campaigns.schemas import (
    AllocationIn,
    AllocationOut,
    BookingCreate,
    BookingOut,
    CalendarOut,
    CalendarSettingsIn,
    CalendarSettingsOut,
    CampaignCreate,
    CampaignOut,
    CampaignPage,
    CampaignUpdate,
    ExplainOut,
    FeedTokenOut,
    GanttOut,
    MoveResult,
    SlotCreate,
    SlotOut,
    TaskBookingCreate,
    TaskMove,
    TeamFeedTokenOut,
)
from shared.app import ReadSession, UoW
from shared.auth import Operator, Viewer
from shared.jsonguard import SupportedDate

router = APIRouter(prefix="/v1")


@router.get("/calendar", response_model=CalendarOut, tags=["calendar"])
async def get_calendar(
    principal: Viewer,
    session: ReadSession,
    market: Annotated[str, Query(min_length=2, max_length=2)],
    start: SupportedDate,
    end: SupportedDate,
) -> CalendarOut:
    return await service.get_calendar(session, principal, market, start, end)


@router.get("/calendar/settings", response_model=CalendarSettingsOut, tags=["calendar"])
async def get_calendar_settings(principal: Viewer, session: ReadSession) -> CalendarSettingsOut:
    return await service.get_calendar_settings(session, principal)


@router.put("/calendar/settings", response_model=CalendarSettingsOut, tags=["calendar"])
async def put_calendar_settings(
    body: CalendarSettingsIn, principal: Operator, uow: UoW
) -> CalendarSettingsOut:
    out = await service.put_calendar_settings(uow.session, principal, body)
    await uow.commit()
    return out


@router.post(
    "/stores/{store_id}/campaigns", status_code=201, response_model=CampaignOut, tags=["campaigns"]
)
async def create_campaign(
    store_id: str, body: CampaignCreate, principal: Operator, uow: UoW, response: Response
) -> CampaignOut:
    out = await service.create_campaign(uow.session, principal, store_id, body)
    await uow.commit()
    response.headers["Location"] = f"/v1/campaigns/{out.id}"
    return out


@router.get("/stores/{store_id}/campaigns", response_model=CampaignPage, tags=["campaigns"])
async def list_campaigns(
    store_id: str,
    principal: Viewer,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> CampaignPage:
    return await service.list_campaigns(session, principal, store_id, limit, cursor)


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut, tags=["campaigns"])
async def get_campaign(campaign_id: str, principal: Viewer, session: ReadSession) -> CampaignOut:
    return await service.get_campaign(session, principal, campaign_id)


@router.patch("/campaigns/{campaign_id}", response_model=CampaignOut, tags=["campaigns"])
async def update_campaign(
    campaign_id: str, body: CampaignUpdate, principal: Operator, uow: UoW
) -> CampaignOut:
    out = await service.update_campaign(uow.session, principal, campaign_id, body)
    await uow.commit()
    return out


@router.patch(
    "/campaigns/{campaign_id}/tasks/{task_id}", response_model=MoveResult, tags=["campaigns"]
)
async def move_task(
    campaign_id: str, task_id: str, body: TaskMove, principal: Operator, uow: UoW
) -> MoveResult:
    out = await service.move_task(uow.session, principal, campaign_id, task_id, body)
    await uow.commit()
    return out


@router.get("/campaigns/{campaign_id}/gantt", response_model=GanttOut, tags=["campaigns"])
async def gantt(campaign_id: str, principal: Viewer, session: ReadSession) -> GanttOut:
    return await service.gantt_data(session, principal, campaign_id)


@router.get("/campaigns/{campaign_id}/gantt.svg", tags=["campaigns"])
async def gantt_svg(campaign_id: str, principal: Viewer, session: ReadSession) -> Response:
    data = await service.gantt_data(session, principal, campaign_id)
    return Response(service.gantt_svg(data), media_type="image/svg+xml")


@router.post("/slots", status_code=201, response_model=SlotOut, tags=["slots"])
async def create_slot(body: SlotCreate, principal: Operator, uow: UoW) -> SlotOut:
    out = await service.create_slot(uow.session, principal, body)
    await uow.commit()
    return out


@router.get("/slots", response_model=list[SlotOut], tags=["slots"])
async def list_slots(principal: Viewer, session: ReadSession) -> list[SlotOut]:
    return await service.list_slots(session, principal)


@router.post(
    "/slots/{slot_id}/bookings", status_code=201, response_model=BookingOut, tags=["slots"]
)
async def book(slot_id: str, body: BookingCreate, principal: Operator, uow: UoW) -> BookingOut:
    out = await service.book(uow.session, principal, slot_id, body)
    # A booking stages no event: commit without waking the outbox relay (a wasted round of
    # queries per booking under load).
    await uow.session.commit()
    return out


@router.post(
    "/campaigns/{campaign_id}/tasks/{task_id}/bookings",
    status_code=201,
    response_model=BookingOut,
    tags=["slots"],
)
async def book_from_task(
    campaign_id: str, task_id: str, body: TaskBookingCreate, principal: Operator, uow: UoW
) -> BookingOut:
    out = await service.book_from_task(uow.session, principal, campaign_id, task_id, body)
    await uow.session.commit()  # stages no event
    return out


@router.get(
    "/campaigns/{campaign_id}/tasks/{task_id}/bookings",
    response_model=list[BookingOut],
    tags=["slots"],
)
async def task_bookings(
    campaign_id: str, task_id: str, principal: Viewer, session: ReadSession
) -> list[BookingOut]:
    return await service.task_bookings(session, principal, campaign_id, task_id)


@router.get("/slots/{slot_id}/bookings", response_model=list[BookingOut], tags=["slots"])
async def list_bookings(
    slot_id: str, principal: Viewer, session: ReadSession, start: SupportedDate, end: SupportedDate
) -> list[BookingOut]:
    return await service.list_bookings(session, principal, slot_id, start, end)


@router.delete("/slots/{slot_id}/bookings/{booking_id}", status_code=204, tags=["slots"])
async def cancel_booking(slot_id: str, booking_id: str, principal: Operator, uow: UoW) -> Response:
    await service.cancel_booking(uow.session, principal, slot_id, booking_id)
    await uow.session.commit()  # stages no event
    return Response(status_code=204)


@router.post(
    "/slots/{slot_id}/allocations", status_code=201, response_model=AllocationOut, tags=["slots"]
)
async def allocate(
    slot_id: str, body: AllocationIn, principal: Operator, uow: UoW
) -> AllocationOut:
    out = await service.allocate_period(uow.session, principal, slot_id, body)
    await uow.commit()
    return out


@router.get(
    "/slots/{slot_id}/allocations/{run_id}/explain", response_model=ExplainOut, tags=["slots"]
)
async def explain(
    slot_id: str,
    run_id: str,
    principal: Viewer,
    session: ReadSession,
    store_id: Annotated[str, Query(min_length=1, max_length=128)],
) -> ExplainOut:
    return await service.explain(session, principal, slot_id, run_id, store_id)


@router.post(
    "/stores/{store_id}/calendar-token",
    status_code=201,
    response_model=FeedTokenOut,
    tags=["feeds"],
)
async def rotate_feed_token(store_id: str, principal: Operator, uow: UoW) -> FeedTokenOut:
    out = await service.rotate_feed_token(uow.session, principal, store_id)
    await uow.commit()
    return out


@router.delete("/stores/{store_id}/calendar-token", status_code=204, tags=["feeds"])
async def revoke_feed_token(store_id: str, principal: Operator, uow: UoW) -> Response:
    await service.revoke_feed_token(uow.session, principal, store_id)
    await uow.commit()
    return Response(status_code=204)


OwnerRoleQuery = Annotated[
    str | None, Query(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=64, description="one role")
]


@router.post("/calendar-token", status_code=201, response_model=TeamFeedTokenOut, tags=["feeds"])
async def rotate_team_feed_token(
    principal: Operator, uow: UoW, owner_role: OwnerRoleQuery = None
) -> TeamFeedTokenOut:
    out = await service.rotate_team_feed_token(uow.session, principal, owner_role)
    await uow.commit()
    return out


@router.delete("/calendar-token", status_code=204, tags=["feeds"])
async def revoke_team_feed_token(
    principal: Operator, uow: UoW, owner_role: OwnerRoleQuery = None
) -> Response:
    await service.revoke_team_feed_token(uow.session, principal, owner_role)
    await uow.commit()
    return Response(status_code=204)


@router.get("/calendar.ics", tags=["feeds"])
async def team_calendar_feed(
    session: ReadSession, token: Annotated[str | None, Query(max_length=200)] = None
) -> Response:
    # The tenant's feed across stores (or one owner role's); the token is the credential.
    body = await service.team_feed(session, token)
    return Response(body, media_type="text/calendar; charset=utf-8")


@router.get("/stores/{store_id}/calendar.ics", tags=["feeds"])
async def calendar_feed(
    store_id: str,
    session: ReadSession,
    token: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    # Calendar apps cannot send headers: the secret token in the query is the authentication.
    body = await service.feed(session, store_id, token)
    return Response(body, media_type="text/calendar; charset=utf-8")
