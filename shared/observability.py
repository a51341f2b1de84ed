"""Metrics, health, and structured logs.

Prometheus metrics carry a `service` label, so the all-in-one process and four separate processes
export the same series. Logs are JSON lines with a request id; secrets are redacted by key name
before anything is rendered.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "storeops_http_requests_total",
    "HTTP requests by route template and status",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "storeops_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENTS_PUBLISHED = Counter(
    "storeops_events_published_total", "Events published to the bus", ["service", "topic"]
)
EVENTS_CONSUMED = Counter(
    "storeops_events_consumed_total", "Events handled successfully", ["service", "topic", "group"]
)
EVENTS_FAILED = Counter(
    "storeops_events_failed_total",
    "Handler attempts that failed (retried or dead-lettered)",
    ["service", "topic", "group", "kind"],
)
EVENTS_DEAD_LETTERED = Counter(
    "storeops_events_dead_lettered_total", "Events sent to the DLQ", ["service", "topic", "group"]
)
EVENTS_DUPLICATE = Counter(
    "storeops_events_duplicate_total", "Events skipped as already processed", ["service", "group"]
)
CONSUMER_LAG = Gauge(
    "storeops_consumer_lag",
    "Messages behind the partition's end, per consumer group and partition this process owns",
    ["service", "group", "topic", "partition"],
)
OUTBOX_BACKLOG = Gauge(
    "storeops_outbox_backlog", "Outbox rows staged but not yet published", ["service"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "storeops_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row", ["service"]
)
OUTBOX_PUBLISH_ERRORS = Counter(
    "storeops_outbox_publish_errors_total", "Relay rounds that failed to publish", ["service"]
)

SECRET_KEYS = {
    "authorization",
    "api_key",
    "key",
    "secret",
    "webhook_secret",
    "password",
    "token",
    "secret_hash",
    "ops_bootstrap_api_key",
    "x-shopify-hmac-sha256",
    "x-wc-webhook-signature",
    "webhook-signature",
}


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k in list(event_dict):
        if k.lower() in SECRET_KEYS:
            event_dict[k] = "[redacted]"
    return event_dict


class _StderrLogger:
    """Writes each line to whatever sys.stderr is at that moment (test capture swaps it)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


class _StderrLoggerFactory:
    def __call__(self, *args: Any) -> _StderrLogger:
        return _StderrLogger()


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=_StderrLoggerFactory(),
        cache_logger_on_first_use=False,
    )


def _route_template(app: ASGIApp, scope: Scope) -> str:
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return str(route.path)
    router = getattr(app, "router", None)
    for r in getattr(router, "routes", []):
        match, _ = r.matches(scope)
        if match == Match.FULL:
            return str(getattr(r, "path", "unmatched"))
    return "unmatched"


class RequestContextMiddleware:
    """Request id, access log, and the HTTP metrics by route template (never the raw path)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self.log = structlog.get_logger("http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        if len(request_id) > 128 or not request_id.isprintable():
            request_id = uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id, service=self.service)
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = _route_template(self.app, scope)
            if route not in ("/metrics", "/healthz", "/readyz"):
                HTTP_REQUESTS.labels(self.service, scope["method"], route, str(status)).inc()
                HTTP_LATENCY.labels(self.service, scope["method"], route).observe(elapsed)
                self.log.info(
                    "request",
                    method=scope["method"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            structlog.contextvars.unbind_contextvars("request_id")


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return str(v.decode("latin-1"))
    return None


Check = Callable[[], Awaitable[bool]]


def health_router(checks: Callable[[Request], dict[str, Check]]) -> APIRouter:
    """/healthz says the process is alive; /readyz that its database and bus are reachable."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        results = {}
        for name, check in checks(request).items():
            try:
                results[name] = await check()
            except Exception:
                results[name] = False
        ok = all(results.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": results},
            status_code=200 if ok else 503,
        )

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def install_observability(app: FastAPI, service: str) -> None:
    app.add_middleware(RequestContextMiddleware, service=service)
