"""Event handlers of campaigns: stores from ingest (campaigns keeps its own copy), findings and
reports from diagnosis (a finding adds a remedial task to the store's active campaign)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.campaigns import service
from shared.auth import key_sync_subscription
from shared.bus import Handler
from shared.events import Event, topic_for
from shared.events.diagnosis import (
    DiagnosisCompletedV1,
    FindingClosedV1,
    FindingOpenedV1,
    FindingUpdatedV1,
)
from shared.events.ingest import StoreRegisteredV1, StoreUpdatedV1
from shared.outbox import claim_event

GROUP = "campaigns.events"


def handlers(state: Any) -> Handler:
    async def handle(event: Event) -> None:
        if not isinstance(
            event,
            StoreRegisteredV1
            | StoreUpdatedV1
            | FindingOpenedV1
            | FindingUpdatedV1
            | FindingClosedV1
            | DiagnosisCompletedV1,
        ):
            return
        async with state.db.session() as session:
            if not await claim_event(session, GROUP, event):
                return
            if isinstance(event, StoreRegisteredV1 | StoreUpdatedV1):
                await service.on_store_event(session, event)
            elif isinstance(event, DiagnosisCompletedV1):
                await service.on_diagnosis_completed(session, event)
            else:
                await service.on_finding(session, event)
            await session.commit()
        state.relay.wake()

    return handle


SUBSCRIPTIONS: Sequence[tuple[str, Sequence[str], Any]] = (
    key_sync_subscription("campaigns"),
    (GROUP, [topic_for("ingest"), topic_for("diagnosis")], handlers),
)
