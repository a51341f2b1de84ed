"""The outbox relay publishing committed events from memory (shared/outbox.py: stage_many keeps
the encoded events on the session, a committing unit of work offers them to the relay): the
bytes published are the table's bytes, in id order with rows that were not offered, and an
offer never publishes anything the table does not hold unpublished under the same event id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from support import ingest_settings

from services.ingest.main import MIGRATIONS
from shared.bus import LocalBus, Message
from shared.db import Database, migrate
from shared.events.ingest import TenantCreatedV1
from shared.outbox import OutboxMessage, OutboxRelay, stage, take_staged

TOPIC = "ingest.v1"


def tenant_event(name: str) -> TenantCreatedV1:
    return TenantCreatedV1(tenant_id=name, name=name.title(), reporting_currency="USD")


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.settings = ingest_settings(tmp_path)
        self.db = Database(self.settings)
        self.bus = LocalBus(self.settings, tmp_path / "relay-bus.db")
        self.relay = OutboxRelay(self.db, self.bus, service="ingest", batch_size=100)

    async def __aenter__(self) -> Setup:
        await migrate(self.db.engine, MIGRATIONS)
        await self.bus.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.bus.stop()
        await self.db.dispose()

    async def table(self) -> list[tuple[int, str, str]]:
        t = OutboxMessage.__table__  # type: ignore[attr-defined]
        async with self.db.session(readonly=True) as s:
            rows = await s.execute(select(t.c.id, t.c.event_id, t.c.payload).order_by(t.c.id))
            return [(r.id, r.event_id, r.payload) for r in rows]

    async def unpublished(self) -> int:
        t = OutboxMessage.__table__  # type: ignore[attr-defined]
        async with self.db.session(readonly=True) as s:
            q = select(func.count()).select_from(t).where(t.c.published_at.is_(None))
            return int(await s.scalar(q) or 0)

    async def published(self) -> list[tuple[str, bytes]]:
        return [(m["headers"]["event_id"], m["value"]) for m in await self.bus.read(TOPIC)]


async def test_committed_events_leave_from_memory_byte_identical_and_in_order(
    tmp_path: Path,
) -> None:
    async with Setup(tmp_path) as x:
        # A row committed without an offer (e.g. by a background job), then an offered one.
        async with x.db.session() as s:
            await stage(s, tenant_event("a"))
            await s.commit()
        async with x.db.session() as s:
            await stage(s, tenant_event("b"), tenant_event("c"))
            await s.commit()
            staged = take_staged(s)
        assert [m.headers["event_id"] for _, m in staged] == [r[1] for r in (await x.table())[1:]]
        assert take_staged(s) == []  # handed over once
        x.relay.offer(staged)
        assert await x.relay.publish_once() == 3
        rows = await x.table()
        # Published in id order, the unoffered row read back, the offered ones from memory,
        # and every byte as the table holds it.
        assert await x.published() == [(e, p.encode()) for _, e, p in rows]
        assert await x.unpublished() == 0
        # Nothing left cached once published.
        assert x.relay._offered == {} and x.relay._offered_bytes == 0


async def test_an_offer_is_used_only_for_its_own_unpublished_row(tmp_path: Path) -> None:
    async with Setup(tmp_path) as x:
        async with x.db.session() as s:
            await stage(s, tenant_event("rolled-back"))
            ghost = take_staged(s)
            await s.rollback()
        async with x.db.session() as s:
            await stage(s, tenant_event("kept"))
            await s.commit()
        (row_id, event_id, payload) = (await x.table())[0]
        # SQLite may give the committed row the id the rolled-back one had: an offer carrying
        # that id but another event must not be published in its place.
        impostor = [
            (row_id, Message(TOPIC, "k", b'{"not":"this"}', {"event_id": "other"})),
            *((i + 1000, m) for i, m in ghost),
        ]
        x.relay.offer(impostor)
        assert await x.relay.publish_once() == 1
        assert await x.published() == [(event_id, payload.encode())]
        # Offers for rows that are not (or no longer) unpublished are dropped, not kept.
        assert await x.relay.publish_once() == 0
        assert x.relay._offered == {}
        # Re-offering a published row publishes nothing again.
        x.relay.offer([(row_id, Message(TOPIC, "k", payload.encode(), {"event_id": event_id}))])
        assert await x.relay.publish_once() == 0
        assert len(await x.published()) == 1


async def test_api_batches_are_published_once_through_the_running_relay(ingest: Any) -> None:
    """End to end through the app: POST /metrics commits through the unit of work, which offers
    the batch's events; the running relay publishes each exactly once."""
    h = ingest
    from support import ADMIN, store_body, wait_until

    r = await h.client.post("/v1/stores", json=store_body("s1"), headers=ADMIN)
    assert r.status_code == 201, r.text
    rows = [
        {"date": f"2026-01-{d:02d}", "metric": "orders", "value": d, "dimensions": {}}
        for d in range(1, 29)
    ]
    for _ in range(3):
        r = await h.client.post("/v1/stores/s1/metrics", json={"rows": rows}, headers=ADMIN)
        assert r.status_code == 202, r.text

    t = OutboxMessage.__table__  # type: ignore[attr-defined]

    async def published() -> bool:
        async with h.app.state.db.session(readonly=True) as s:
            q = select(func.count()).select_from(t).where(t.c.published_at.is_(None))
            return int(await s.scalar(q) or 0) == 0

    await wait_until(published, timeout=10, interval=0.02)
    async with h.app.state.db.session(readonly=True) as s:
        table = {r.event_id: r.payload for r in await s.execute(select(t))}
    sent = await h.app.state.bus.read(TOPIC)
    assert sorted(m["headers"]["event_id"] for m in sent) == sorted(table)
    assert all(m["value"] == table[m["headers"]["event_id"]].encode() for m in sent)


def test_metrics_event_json_with_spliced_rows_is_the_models_own() -> None:
    """services/ingest/service.py serializes a batch's event rows in one call and splices them
    into the envelope: the bytes must be exactly what the model itself would write, whatever
    the rows hold (non-ASCII, quotes, the marker text inside a value)."""
    import uuid
    from datetime import date

    from services.ingest.service import _event_json
    from shared.events.ingest import MetricsIngestedV1

    rows = [
        {
            "date": date(2026, 1, 1),
            "metric": "gmv",
            "value": 12.5,
            "dimensions": {"channel": "search", "product_id": 'p"rows":[] \\ x'},
        },
        {
            "date": date(2026, 1, 2),
            "metric": "orders",
            "value": 3.0,
            "dimensions": {"region": "华东"},
        },
        {"date": date(2026, 1, 3), "metric": "visitors", "value": 1e-7, "dimensions": {}},
    ]
    event = MetricsIngestedV1.model_construct(
        tenant_id="t",
        store_id="s1",
        source="api",
        accepted=3,
        duplicates=0,
        updated=0,
        batch_id=uuid.uuid4(),
        chunk=0,
        chunks=1,
        rows=rows,
    )
    payload = _event_json(event, rows)
    assert payload == event.model_dump_json(warnings=False)
    decoded = MetricsIngestedV1.model_validate_json(payload)
    assert [r.dimensions for r in decoded.rows] == [r["dimensions"] for r in rows]
