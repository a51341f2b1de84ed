"""The embedded default: every built service in one process on one port, on one LocalBus.

Each service keeps its own app (own database file, lifespan, middleware); this dispatcher sends a
request to the first service whose routes match its path, so /v1/stores/{id}/metrics goes to
ingest and /v1/stores/{id}/campaigns to campaigns. Services not built yet are simply not mounted.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from shared.bus import LocalBus, make_bus
from shared.config import ServiceSettings
from shared.errors import allowed_methods, problem
from shared.openapi import merge

log = structlog.get_logger("allinone")

SERVICE_NAMES = ("ingest", "diagnosis", "campaigns", "content")


def available_services() -> list[str]:
    found = []
    for name in SERVICE_NAMES:
        try:
            importlib.import_module(f"services.{name}.main")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(f"services.{name}"):
                continue
            raise
        found.append(name)
    return found


def _settings_for(name: str, overrides: dict[str, Any]) -> ServiceSettings:
    cls_name = {
        "ingest": "IngestSettings",
        "diagnosis": "DiagnosisSettings",
        "campaigns": "CampaignsSettings",
        "content": "ContentSettings",
    }[name]
    cls = getattr(importlib.import_module("shared.config"), cls_name)
    settings: ServiceSettings = cls(**overrides)
    return settings


class AllInOne:
    def __init__(self, overrides: dict[str, Any] | None = None) -> None:
        self.overrides = overrides or {}
        # Run once every service is up, e.g. the demo seed of `make run`.
        self.on_started: list[Callable[[AllInOne], Awaitable[None]]] = []
        base = ServiceSettings(service_name="allinone", **self.overrides)
        # One bus for every service in the process: published messages wake consumers at once.
        self.bus = make_bus(base)
        self.apps: dict[str, FastAPI] = {}
        self._openapi: dict[str, Any] | None = None
        for name in available_services():
            main = importlib.import_module(f"services.{name}.main")
            self.apps[name] = main.create_app(_settings_for(name, self.overrides), bus=self.bus)

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for app in self.apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            await self.bus.start()
            stack.push_async_callback(self.bus.stop)
            for hook in self.on_started:
                await hook(self)
            log.info("allinone_started", services=list(self.apps), bus=type(self.bus).__name__)
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path in ("/healthz", "/readyz", "/metrics", "/", "/openapi.json", "/docs"):
            await self._platform(scope, receive, send)
            return
        for name, app in self.apps.items():
            if path.startswith(f"/{name}/"):
                # Each service's own docs: /ingest/docs, /ingest/openapi.json
                sub = path[len(name) + 1 :]
                if sub in ("/docs", "/openapi.json"):
                    await app({**scope, "path": sub, "root_path": f"/{name}"}, receive, send)
                    return
        for app in self.apps.values():
            for route in app.router.routes:
                match, _ = route.matches(scope)
                if match == Match.FULL and getattr(route, "path", "") not in (
                    "/healthz",
                    "/readyz",
                    "/metrics",
                    "/openapi.json",
                    "/docs",
                    "/docs/oauth2-redirect",
                ):
                    await app(scope, receive, send)
                    return
        # A known path with another method: the service serving the path answers 405 with
        # every method of the path in Allow (all services', merged).
        for app in self.apps.values():
            for route in app.router.routes:
                match, _ = route.matches(scope)
                if match == Match.PARTIAL:
                    await self._not_allowed(scope, receive, send)
                    return
        # A path no service serves: let the first service render its problem+json 404.
        first = next(iter(self.apps.values()))
        await first(scope, receive, send)

    async def _not_allowed(self, scope: Scope, receive: Receive, send: Send) -> None:
        methods: set[str] = set()
        for app in self.apps.values():
            methods |= set(allowed_methods(app, scope))
        response = problem(
            405,
            "Method not allowed",
            f"{scope['method']} is not served at this path",
            instance=scope["path"],
            headers={"Allow": ", ".join(sorted(methods))},
        )
        await response(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """One document for the whole embedded app (each service also has /<name>/openapi.json)."""
        if self._openapi is None:
            self._openapi = merge(
                "storeops (embedded)", {n: app.openapi() for n, app in self.apps.items()}
            )
        return self._openapi

    async def _platform(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        response: Response
        if path == "/healthz":
            response = JSONResponse({"status": "ok", "services": list(self.apps)})
        elif path == "/readyz":
            checks: dict[str, bool] = {"bus": await self.bus.ping()}
            for name, app in self.apps.items():
                checks[f"{name}.database"] = bool(await app.state.db.ping())
            ok = all(checks.values())
            response = JSONResponse(
                {"status": "ok" if ok else "unavailable", "checks": checks},
                status_code=200 if ok else 503,
            )
        elif path == "/metrics":
            response = Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
        elif path == "/":
            response = JSONResponse(
                {
                    "name": "storeops",
                    "services": {
                        n: {"docs": f"/{n}/docs", "openapi": f"/{n}/openapi.json"}
                        for n in self.apps
                    },
                }
            )
        elif path == "/openapi.json":
            response = JSONResponse(self.openapi())
        else:
            response = get_swagger_ui_html(openapi_url="/openapi.json", title="storeops")
        await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        cm = self.lifespan()
        try:
            await cm.__aenter__()
        except BaseException as exc:
            log.exception("startup_failed")
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        try:
            await cm.__aexit__(None, None, None)
        finally:
            await send({"type": "lifespan.shutdown.complete"})


def create_app(**overrides: Any) -> AllInOne:
    return AllInOne(overrides)


__all__ = ["AllInOne", "LocalBus", "create_app"]
