"""Building the diagnosis service's inputs as the events ingest would publish."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from shared.events.chunking import chunk_rows
from shared.events.ingest import (
    BenchmarkIngestedV1,
    BenchmarkRowV1,
    CompetitorMetricsIngestedV1,
    MetricRowV1,
    MetricsIngestedV1,
    StoreRegisteredV1,
)


def store_registered(store: dict[str, Any], tenant: str, store_id: str | None = None) -> Any:
    return StoreRegisteredV1(
        tenant_id=tenant,
        store_id=store_id or store["id"],
        name=store["name"],
        platform=store["platform"],
        timezone=store["timezone"],
        currency=store["currency"],
        market=store["market"],
        category=store["category"],
    )


def metrics_events(tenant: str, store_id: str, rows: list[dict[str, Any]]) -> list[Any]:
    parts = chunk_rows([MetricRowV1(**r) for r in rows])
    batch = uuid.uuid4()
    return [
        MetricsIngestedV1(
            tenant_id=tenant,
            store_id=store_id,
            batch_id=batch,
            chunk=i,
            chunks=len(parts),
            source="api",
            accepted=len(part),
            duplicates=0,
            updated=0,
            rows=part,
        )
        for i, part in enumerate(parts)
    ]


def benchmark_events(tenant: str, bench: dict[str, Any]) -> list[Any]:
    rows = [BenchmarkRowV1(**r) for r in bench["rows"]]
    parts = chunk_rows(rows)
    batch = uuid.uuid4()
    return [
        BenchmarkIngestedV1(
            tenant_id=tenant,
            batch_id=batch,
            chunk=i,
            chunks=len(parts),
            market=bench["market"],
            category=bench["category"],
            value_kind="absolute",
            source="import",
            rows=part,
        )
        for i, part in enumerate(parts)
    ]


def competitor_events(tenant: str, store_id: str, comp: dict[str, Any]) -> list[Any]:
    rows = [MetricRowV1(**r) for r in comp["rows"]]
    parts = chunk_rows(rows)
    batch = uuid.uuid4()
    return [
        CompetitorMetricsIngestedV1(
            tenant_id=tenant,
            store_id=store_id,
            batch_id=batch,
            chunk=i,
            chunks=len(parts),
            competitor_id=comp["competitor_id"],
            competitor_name=comp["name"],
            rows=part,
        )
        for i, part in enumerate(parts)
    ]


def window(rows: list[dict[str, Any]], start: date, end: date) -> list[dict[str, Any]]:
    return [r for r in rows if start <= r["date"] <= end]
