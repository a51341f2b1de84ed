"""The app factory every service shares: middleware, error handlers, health and the lifespan
that builds the engine, migrates, starts the bus with the service's handlers and the outbox relay.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import ensure_bootstrap_key
from shared.bus import Bus, Handler, make_bus
from shared.config import ServiceSettings
from shared.db import Database, migrate
from shared.errors import BodyLimitMiddleware, RequestLimitsMiddleware, install_error_handlers
from shared.idempotency import IdempotencyMiddleware
from shared.jsonguard import JsonGuardMiddleware
from shared.observability import configure_logging, health_router, install_observability
from shared.openapi import install_openapi
from shared.outbox import OutboxRelay, take_staged
from shared.ratelimit import RateLimiter

log = structlog.get_logger("app")
GC_THRESHOLD = 50_000


@dataclass
class ServiceSpec:
    """What makes one service: its routers, migrations and event subscriptions."""

    name: str
    title: str
    routers: Sequence[APIRouter]
    migrations_dir: Path
    # (consumer group, topics, handler factory taking the app state)
    subscriptions: Sequence[tuple[str, Sequence[str], Callable[[Any], Handler]]] = ()
    on_startup: Sequence[Callable[[Any], Awaitable[None]]] = field(default_factory=list)
    publishes: Sequence[str] = ()
    # Long-running loops (a job runner, a scheduler) started after the bus, cancelled at stop.
    background: Sequence[Callable[[Any], Coroutine[Any, Any, None]]] = ()
    # Path regexes of file uploads, allowed up to settings.max_upload_bytes.
    upload_paths: Sequence[str] = ()


def create_service_app(
    spec: ServiceSpec, settings: ServiceSettings, bus: Bus | None = None
) -> FastAPI:
    owns_bus = bus is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_json)
        # Bulk requests allocate hundreds of thousands of short-lived objects: with the default
        # threshold (700) the cyclic collector runs thousands of times a request and rescans
        # everything alive. A larger first generation keeps it off the hot path.
        if gc.get_threshold()[0] < GC_THRESHOLD:
            gc.set_threshold(GC_THRESHOLD, 20, 20)
        db = Database(settings)
        the_bus = bus if bus is not None else make_bus(settings)
        app.state.db = db
        app.state.bus = the_bus
        app.state.settings = settings
        app.state.rate_limiter = RateLimiter(
            settings.rate_limit_per_second, settings.rate_limit_burst
        )
        await migrate(db.engine, spec.migrations_dir)
        if settings.ops_bootstrap_api_key is not None:
            async with db.session() as s:
                await ensure_bootstrap_key(s, settings.ops_bootstrap_api_key.get_secret_value())
                await s.commit()
        for group, topics, factory in spec.subscriptions:
            the_bus.subscribe(group, topics, factory(app.state))
        relay = OutboxRelay(
            db,
            the_bus,
            service=spec.name,
            batch_size=settings.outbox_batch_size,
            poll_seconds=settings.outbox_poll_seconds,
        )
        app.state.relay = relay
        for hook in spec.on_startup:
            await hook(app.state)
        if owns_bus:
            await the_bus.start()
        if spec.publishes:
            await the_bus.ensure_topics(list(spec.publishes))
        relay.start()
        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(
                job(app.state), name=f"{spec.name}:{getattr(job, '__name__', 'bg')}"
            )
            for job in spec.background
        ]
        log.info(
            "service_started",
            service=spec.name,
            embedded=settings.embedded,
            database=db.engine.url.get_backend_name(),
        )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await relay.stop()
            if owns_bus:
                await the_bus.stop()
            await db.dispose()
            log.info("service_stopped", service=spec.name)

    app = FastAPI(
        title=spec.title,
        version="1.0.0",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        # Routes carry /v1 themselves: a root_path (the embedded app's /ingest/docs) is where
        # the docs are mounted, not where the API lives.
        root_path_in_servers=False,
    )
    install_error_handlers(app)
    # Outermost last: request context -> body limit -> idempotency -> JSON guard -> routes.
    app.add_middleware(JsonGuardMiddleware)
    app.add_middleware(IdempotencyMiddleware, ttl_hours=settings.idempotency_ttl_hours)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        uploads=[(p, settings.max_upload_bytes) for p in spec.upload_paths],
    )
    app.add_middleware(RequestLimitsMiddleware)
    install_observability(app, spec.name)

    def checks(request: Request) -> dict[str, Callable[[], Awaitable[bool]]]:
        state = request.app.state
        return {"database": state.db.ping, "bus": state.bus.ping}

    app.include_router(health_router(checks))
    for router in spec.routers:
        app.include_router(router)
    install_openapi(app)
    return app


class UnitOfWork:
    """The request's transaction: routes call the service, then commit; the relay is woken so
    that staged events leave at once instead of at the next poll."""

    def __init__(self, session: AsyncSession, relay: OutboxRelay) -> None:
        self.session = session
        self._relay = relay

    async def commit(self) -> None:
        await self.session.commit()
        # The events staged in this transaction leave from memory (no read-back of payloads).
        self._relay.offer(take_staged(self.session))


async def _uow(request: Request) -> AsyncIterator[UnitOfWork]:
    async with request.app.state.db.session() as session:
        yield UnitOfWork(session, request.app.state.relay)


async def _read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.db.session(readonly=True) as session:
        yield session


UoW = Annotated[UnitOfWork, Depends(_uow)]
ReadSession = Annotated[AsyncSession, Depends(_read_session)]
