"""Event handlers of diagnosis: tenants (their reporting currency), FX rates, stores, metric
rows, benchmarks and competitors from ingest (its own copy of the series), campaign windows from
campaigns, keys through the shared key sync."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.diagnosis import service
from shared.auth import key_sync_subscription
from shared.bus import Handler
from shared.events import Event, topic_for
from shared.events.campaigns import CampaignCreatedV1, CampaignUpdatedV1
from shared.events.ingest import (
    BenchmarkIngestedV1,
    CompetitorMetricsIngestedV1,
    FxRatesIngestedV1,
    MetricsDeletedV1,
    MetricsIngestedV1,
    StoreRegisteredV1,
    StoreUpdatedV1,
    TenantCreatedV1,
    TenantUpdatedV1,
)
from shared.outbox import claim_event

GROUP = "diagnosis.events"

HANDLED = (
    TenantCreatedV1,
    TenantUpdatedV1,
    FxRatesIngestedV1,
    StoreRegisteredV1,
    StoreUpdatedV1,
    MetricsIngestedV1,
    MetricsDeletedV1,
    BenchmarkIngestedV1,
    CompetitorMetricsIngestedV1,
    CampaignCreatedV1,
    CampaignUpdatedV1,
)


async def apply(session: Any, event: Event) -> None:
    """One event's effect (tenant-scoped: every row written carries the event's tenant)."""
    if isinstance(event, TenantCreatedV1 | TenantUpdatedV1):
        await service.on_tenant_event(session, event)
    elif isinstance(event, FxRatesIngestedV1):
        await service.on_fx_rates_ingested(session, event)
    elif isinstance(event, StoreRegisteredV1 | StoreUpdatedV1):
        await service.on_store_event(session, event)
    elif isinstance(event, MetricsIngestedV1):
        await service.on_metrics_ingested(session, event)
    elif isinstance(event, MetricsDeletedV1):
        await service.on_metrics_deleted(session, event)
    elif isinstance(event, BenchmarkIngestedV1):
        await service.on_benchmark_ingested(session, event)
    elif isinstance(event, CompetitorMetricsIngestedV1):
        await service.on_competitor_metrics(session, event)
    elif isinstance(event, CampaignCreatedV1 | CampaignUpdatedV1):
        await service.on_campaign_event(session, event)


def handlers(state: Any) -> Handler:
    async def handle(event: Event) -> None:
        if not isinstance(event, HANDLED):
            return
        async with state.db.session() as session:
            if not await claim_event(session, GROUP, event):
                return
            await apply(session, event)
            await session.commit()

    return handle


SUBSCRIPTIONS: Sequence[tuple[str, Sequence[str], Any]] = (
    key_sync_subscription("diagnosis"),
    (GROUP, [topic_for("ingest"), topic_for("campaigns")], handlers),
)
