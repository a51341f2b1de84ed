"""The ingest service: `python -m services.ingest` runs it alone (PostgreSQL and Kafka from
DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services.ingest import service
from services.ingest.consumers import SUBSCRIPTIONS
from services.ingest.jobs import health_monitor, import_runner
from services.ingest.routes import router
from services.ingest.webhooks.routes import router as webhooks_router
from services.ingest.webhooks.service import run_processor
from shared.app import ServiceSpec, create_service_app
from shared.bus import Bus
from shared.config import IngestSettings
from shared.events import topic_for

MIGRATIONS = Path(__file__).parent / "migrations"


async def _bootstrap(state: Any) -> None:
    async with state.db.session() as session:
        await service.ensure_default_tenant(session)
        await session.commit()


def create_app(settings: IngestSettings | None = None, bus: Bus | None = None) -> FastAPI:
    settings = settings or IngestSettings()
    spec = ServiceSpec(
        name="ingest",
        title="storeops ingest",
        routers=[router, webhooks_router],
        migrations_dir=MIGRATIONS,
        subscriptions=SUBSCRIPTIONS,
        on_startup=[_bootstrap],
        publishes=[topic_for("ingest")],
        background=[import_runner, run_processor, health_monitor],
        upload_paths=[r"/v1/stores/[^/]+/metrics/import"],
    )
    return create_service_app(spec, settings, bus)
