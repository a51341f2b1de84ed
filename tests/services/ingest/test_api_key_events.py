"""ingest.api_key_created carries the key's user's display name (optional user_name), so other
services name people without reading ingest's users."""

from __future__ import annotations

from typing import Any

from support import ADMIN, Harness

from shared.events import decode
from shared.events.ingest import ApiKeyCreatedV1
from shared.outbox import OutboxMessage


async def test_the_key_event_carries_the_user_name(ingest: Harness) -> None:
    c = ingest.client
    r = await c.post(
        "/v1/users", json={"email": "mei@acme.test", "name": "Chen Mei"}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    r = await c.post(
        "/v1/api-keys", json={"user_id": uid, "name": "legal", "role": "viewer"}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    async with ingest.app.state.db.session(readonly=True) as s:
        t: Any = OutboxMessage.__table__  # type: ignore[attr-defined]
        events = [decode(row.payload) for row in await s.execute(t.select())]
    created = [e for e in events if isinstance(e, ApiKeyCreatedV1) and str(e.user_id) == uid]
    assert len(created) == 1 and created[0].user_name == "Chen Mei"
