"""The notifications' own consumer group on diagnosis.v1: finding events carry the finding's
full state (event-carried state transfer), so notifications need nothing else from diagnosis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.diagnosis.notify import service
from services.diagnosis.notify.delivery import notify_wake
from shared.bus import Handler
from shared.events import Event, topic_for
from shared.events.diagnosis import FindingClosedV1, FindingOpenedV1, FindingUpdatedV1
from shared.outbox import claim_event

GROUP = "diagnosis.notifications"


def handlers(state: Any) -> Handler:
    async def handle(event: Event) -> None:
        if not isinstance(event, FindingOpenedV1 | FindingUpdatedV1 | FindingClosedV1):
            return
        async with state.db.session() as session:
            # The claim commits with the alerts it causes: a redelivered event alerts nobody.
            if not await claim_event(session, GROUP, event):
                return
            decided = await service.on_finding(session, event)
            await session.commit()
        if decided:
            notify_wake(state).set()

    return handle


SUBSCRIPTION: tuple[str, Sequence[str], Any] = (GROUP, [topic_for("diagnosis")], handlers)
