"""The campaigns service: `python -m services.campaigns` runs it alone (PostgreSQL and Kafka from
DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI

from services.campaigns import service
from services.campaigns.consumers import SUBSCRIPTIONS
from services.campaigns.routes import router
from shared.app import ServiceSpec, create_service_app
from shared.bus import Bus, is_transient
from shared.config import CampaignsSettings
from shared.events import topic_for

MIGRATIONS = Path(__file__).parent / "migrations"
log = structlog.get_logger("campaigns")


class TaskDueScheduler:
    """Publishes campaigns.task_due on the morning a task is due, in the store's timezone.
    Every pod may run one: the claim in the database makes each notification happen once."""

    def __init__(self, state: Any, settings: CampaignsSettings) -> None:
        self.state = state
        self.settings = settings
        self._task: asyncio.Task[None] | None = None

    async def run_once(self, now: datetime | None = None) -> int:
        async with self.state.db.session() as session:
            count = await service.publish_due_tasks(
                session, now or datetime.now(UTC), self.settings.task_due_hour
            )
            await session.commit()
        if count:
            self.state.relay.wake()
        return count

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # a failed round is retried at the next tick
                log.warning("task_due_round_failed", error=str(exc), transient=is_transient(exc))
            await asyncio.sleep(self.settings.task_due_interval_seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="campaigns:task_due")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def create_app(settings: CampaignsSettings | None = None, bus: Bus | None = None) -> FastAPI:
    settings = settings or CampaignsSettings()
    spec = ServiceSpec(
        name="campaigns",
        title="storeops campaigns",
        routers=[router],
        migrations_dir=MIGRATIONS,
        subscriptions=SUBSCRIPTIONS,
        publishes=[topic_for("campaigns")],
    )
    app = create_service_app(spec, settings, bus)
    platform_lifespan = app.router.lifespan_context

    # The platform's lifespan has no stop hook for a service's own workers: wrap it, so the
    # scheduler starts after the database and relay exist and stops before they go away.
    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        async with platform_lifespan(a):
            scheduler = TaskDueScheduler(a.state, settings)
            a.state.task_due = scheduler
            scheduler.start()
            try:
                yield
            finally:
                await scheduler.stop()

    app.router.lifespan_context = lifespan
    return app
