"""The diagnosis service: `python -m services.diagnosis` runs it alone (PostgreSQL and Kafka from
DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS).

The spec's lists are plain so that other parts of the service (notifications) add their router,
subscription and background worker with one line each.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.diagnosis import notify
from services.diagnosis.consumers import SUBSCRIPTIONS
from services.diagnosis.routes import router
from services.diagnosis.scheduler import run_scheduler
from shared.app import ServiceSpec, create_service_app
from shared.bus import Bus
from shared.config import DiagnosisSettings
from shared.events import topic_for

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: DiagnosisSettings | None = None, bus: Bus | None = None) -> FastAPI:
    settings = settings or DiagnosisSettings()
    routers = [router, notify.router]
    subscriptions = [*SUBSCRIPTIONS, notify.SUBSCRIPTION]
    background = [run_scheduler, notify.run_notifier]
    spec = ServiceSpec(
        name="diagnosis",
        title="storeops diagnosis",
        routers=routers,
        migrations_dir=MIGRATIONS,
        subscriptions=subscriptions,
        publishes=[topic_for("diagnosis")],
        background=background,
    )
    return create_service_app(spec, settings, bus)
