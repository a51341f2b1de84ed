"""Event handlers of content: stores from ingest, counts of metric rows carrying copy_id,
campaign copy tasks and click-through findings. Each handler claims the event in the same
transaction as its change, so a redelivery is applied once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.content import service
from shared.auth import key_sync_subscription
from shared.bus import Handler
from shared.events import Event, topic_for
from shared.events.campaigns import CampaignCreatedV1, CampaignUpdatedV1, TaskDueV1
from shared.events.diagnosis import FindingClosedV1, FindingOpenedV1, FindingUpdatedV1
from shared.events.ingest import (
    ApiKeyCreatedV1,
    MetricsDeletedV1,
    MetricsIngestedV1,
    StoreRegisteredV1,
    StoreUpdatedV1,
)
from shared.outbox import claim_event

GROUP = "content.events"

# The handlers table: event class -> use case.
HANDLERS: dict[type[Event], Callable[[AsyncSession, Any], Awaitable[None]]] = {
    StoreRegisteredV1: service.on_store,
    StoreUpdatedV1: service.on_store,
    ApiKeyCreatedV1: service.on_api_key,
    MetricsIngestedV1: service.on_metrics,
    MetricsDeletedV1: service.on_metrics_deleted,
    CampaignCreatedV1: service.on_campaign,
    CampaignUpdatedV1: service.on_campaign,
    TaskDueV1: service.on_task_due,
    FindingOpenedV1: service.on_finding,
    FindingUpdatedV1: service.on_finding,
    FindingClosedV1: service.on_finding,
}


def events_handler(state: Any) -> Handler:
    async def handle(event: Event) -> None:
        use_case = HANDLERS.get(type(event))
        if use_case is None:
            return
        async with state.db.session() as session:
            if not await claim_event(session, GROUP, event):
                return
            await use_case(session, event)
            await session.commit()
        state.relay.wake()

    return handle


SUBSCRIPTIONS: Sequence[tuple[str, Sequence[str], Any]] = (
    key_sync_subscription("content"),
    (GROUP, [topic_for("ingest"), topic_for("campaigns"), topic_for("diagnosis")], events_handler),
)
