"""Diagnosis' consumers: every example of the events it listens to is accepted and lands in its
own tables, tenant-scoped; a redelivered event is applied once."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from support import Harness, apply_events

from services.diagnosis.models import (
    BenchmarkRow,
    CampaignWindowRow,
    CompetitorRow,
    KnownStore,
    SeriesRow,
    StoreDayState,
)
from shared.auth import AuthKey
from shared.events import registry
from shared.events.campaigns import CampaignCreatedV1
from shared.events.ingest import ApiKeyCreatedV1, MetricsIngestedV1, StoreRegisteredV1
from shared.outbox import ProcessedEvent


async def test_every_example_of_its_producers_is_accepted(diagnosis: Harness) -> None:
    h = diagnosis
    examples = [
        cls.example()  # type: ignore[attr-defined]
        for (t, _), cls in registry().items()
        if t.split(".")[0] in ("ingest", "campaigns")
    ]
    await apply_events(h.app, *examples)
    metrics = MetricsIngestedV1.example()
    store = StoreRegisteredV1.example()
    assert await h.count(KnownStore, tenant_id=store.tenant_id, store_id=store.store_id) == 1
    assert await h.count(SeriesRow, tenant_id=metrics.tenant_id) == len(metrics.rows)
    assert await h.count(StoreDayState, store_id=metrics.store_id) == 1
    assert await h.count(BenchmarkRow) == 3
    assert await h.count(CompetitorRow) == 3
    assert (
        await h.count(CampaignWindowRow, campaign_id=str(CampaignCreatedV1.example().campaign_id))
        == 1
    )
    assert await h.count(AuthKey, key_id=str(ApiKeyCreatedV1.example().key_id)) == 1
    # metrics, then competitor rows and the market's benchmark of the same day: 3 changes
    assert await data_version(h, metrics.store_id) == 3
    # the same events again: claimed once, nothing written twice, no day marked changed
    before = await h.count(ProcessedEvent)
    await apply_events(h.app, *examples)
    assert await h.count(ProcessedEvent) == before
    assert await h.count(SeriesRow, tenant_id=metrics.tenant_id) == len(metrics.rows)
    assert await data_version(h, metrics.store_id) == 3
    # the same rows in a new event (a client re-sending): stored already, nothing changes
    await apply_events(h.app, metrics.model_copy(update={"event_id": uuid.uuid4()}))
    assert await h.count(ProcessedEvent) == before + 1
    assert await data_version(h, metrics.store_id) == 3


async def data_version(h: Harness, store_id: str) -> int:
    t = StoreDayState.__table__
    async with h.app.state.db.session(readonly=True) as s:
        return int(await s.scalar(select(t.c.data_version).where(t.c.store_id == store_id)))
