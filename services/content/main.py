"""The content service: `python -m services.content` runs it alone (PostgreSQL and Kafka from
DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.content.consumers import SUBSCRIPTIONS
from services.content.routes import router
from shared.app import ServiceSpec, create_service_app
from shared.bus import Bus
from shared.config import ContentSettings
from shared.events import topic_for

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ContentSettings | None = None, bus: Bus | None = None) -> FastAPI:
    settings = settings or ContentSettings()
    spec = ServiceSpec(
        name="content",
        title="storeops content",
        routers=[router],
        migrations_dir=MIGRATIONS,
        subscriptions=SUBSCRIPTIONS,
        publishes=[topic_for("content")],
    )
    return create_service_app(spec, settings, bus)
