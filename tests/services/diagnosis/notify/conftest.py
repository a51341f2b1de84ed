"""Fixtures of the notification tests: the real diagnosis app (SQLite, LocalBus, lifespan and
the notification worker running) and a real HTTP receiver on a loopback port.

The receiver stands for Slack, Feishu, DingTalk or a customer's endpoint: it is outside our
system, so a tiny http.server that records what it gets and answers scripted statuses is the
honest stand-in. Nothing of ours (database, bus, worker) is mocked.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from support import ADMIN_KEY, Harness, apply_events, content_key, wait_until

from services.diagnosis.notify.settings import NotifySettings
from shared.config import DiagnosisSettings
from shared.events.diagnosis import FindingClosedV1, FindingOpenedV1, FindingUpdatedV1


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: datetime

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every POST; answers from `script` (status, headers, body) in turn, then 200."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            parts = urllib.parse.urlsplit(self.path)
            with receiver.lock:
                receiver.requests.append(
                    Received(
                        parts.path,
                        urllib.parse.parse_qs(parts.query),
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        datetime.now(UTC),
                    )
                )
                status, headers, answer = (
                    receiver.script.pop(0) if receiver.script else (200, {}, b"ok")
                )
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def notify_test_settings(**over: Any) -> NotifySettings:
    values: dict[str, Any] = {
        "allow_insecure_loopback": True,
        # The schedule scaled down 1000x: 10 s -> 10 ms, 30 s -> 30 ms ...
        "delay_scale": 0.001,
        "jitter": 0.0,
        "poll_seconds": 0.02,
        "timeout_seconds": 5.0,
        # Tests run digests themselves, at the times they choose.
        "digest_check_seconds": 3600.0,
    }
    values.update(over)
    return NotifySettings(**values)


def diagnosis_settings(tmp_path: Path, **over: Any) -> DiagnosisSettings:
    values: dict[str, Any] = {
        "database_url": "",
        "kafka_bootstrap_servers": "",
        "var_dir": tmp_path,
        "ops_bootstrap_api_key": ADMIN_KEY,
        "outbox_poll_seconds": 0.05,
        "log_level": "WARNING",
        "consumer_retry_base_seconds": 0.01,
        "consumer_retry_max_seconds": 0.05,
        # Notifications' tests publish the finding events themselves.
        "auto_diagnose": False,
    }
    values.update(over)
    return DiagnosisSettings(**values)


@dataclass
class NotifyHarness(Harness):
    receiver: Receiver = field(default_factory=Receiver)
    keys: dict[str, dict[str, str]] = field(default_factory=dict)

    async def key(self, tenant: str, role: str, store_ids: list[str] | None = None) -> Any:
        return await content_key(self.app, tenant=tenant, role=role, store_ids=store_ids)

    async def target(self, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        values = {"owner": "designer", "format": "standard", "url": self.receiver.url()}
        values.update(body)
        r = await self.client.post("/v1/notification-targets", json=values, headers=headers)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def publish(self, *events: Any) -> None:
        await apply_events(self.app, *events)

    @property
    def notifier(self) -> Any:
        return self.app.state.notifier

    async def delivered(self, n: int, path: str = "/hook") -> None:
        """Wait until the receiver has had n requests on path."""
        await wait_until(lambda: len(self.receiver.on(path)) >= n, timeout=20, interval=0.02)

    async def settle(self) -> None:
        """Wait until no delivery is pending (the worker has had its say)."""
        from services.diagnosis.notify.models import NotificationDelivery

        async def idle() -> bool:
            return await self.count(NotificationDelivery, status="pending") == 0

        await wait_until(idle, timeout=20, interval=0.02)


def make_app(tmp_path: Path, settings: NotifySettings, **over: Any) -> Any:
    from services.diagnosis.main import create_app

    app = create_app(diagnosis_settings(tmp_path, **over))
    app.state.notify_settings = settings
    return app


@pytest.fixture
def make_notify(tmp_path: Path, receiver: Receiver) -> Any:
    """`async with make_notify(settings, **diagnosis_settings) as h`: the diagnosis app with
    notifications, on SQLite by default, with the receiver."""

    @asynccontextmanager
    async def _make(
        settings: NotifySettings | None = None, **over: Any
    ) -> AsyncIterator[NotifyHarness]:
        app = make_app(tmp_path, settings or notify_test_settings(), **over)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield NotifyHarness(app, client, app.state.settings, receiver)

    return _make


@pytest.fixture
async def notify(make_notify: Any) -> AsyncIterator[NotifyHarness]:
    async with make_notify() as h:
        for tenant in ("acme", "globex"):
            for role in ("admin", "operator", "viewer"):
                h.keys[f"{tenant}:{role}"] = await h.key(tenant, role)
        # A target may only name stores diagnosis knows for the tenant (ingest's events).
        await h.publish(*(known_store("acme", s) for s in ("shop-1", "shop-2", "shop-3")))
        await h.publish(known_store("globex", "globex-1"))
        yield h


def known_store(tenant: str, store_id: str) -> Any:
    from shared.events.ingest import StoreRegisteredV1

    return StoreRegisteredV1(
        tenant_id=tenant,
        store_id=store_id,
        name=store_id,
        platform="shopify",
        timezone="UTC",
        currency="USD",
        market="US",
        category="apparel",
    )


@pytest.fixture
def finding() -> Any:
    """Build a diagnosis.finding_* event: finding(kind="opened", severity=..., ...)."""
    return finding_event


def finding_event(
    kind: str = "opened",
    *,
    tenant: str = "acme",
    store: str = "shop-1",
    finding_id: uuid.UUID | None = None,
    severity: str = "high",
    owner: str = "designer",
    status: str = "open",
    impact: float | None = -1850.0,
    confidence: float | None = 0.8,
    occurred_at: datetime | None = None,
    title: str = "Paid-search click-through down 20.9%",
) -> Any:
    cls = {"opened": FindingOpenedV1, "updated": FindingUpdatedV1, "closed": FindingClosedV1}[kind]
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "store_id": store,
        "finding_id": finding_id or uuid.uuid4(),
        "date": "2026-11-22",
        "code": "ctr_drop",
        "severity": severity,
        "metric": "ctr",
        "dimensions": {"channel": "paid_search"},
        "owner": owner,
        "title": title,
        "action": "Refresh the main image and the ad creative.",
        "status": "resolved" if kind == "closed" else status,
        "expected_gmv_impact": impact,
        "confidence": confidence,
    }
    if kind == "closed":
        values["resolution"] = "resolved"
    if occurred_at is not None:
        values["occurred_at"] = occurred_at
    return cls.model_validate(values)


# --- PostgreSQL (tests marked integration) -------------------------------------------------


@pytest.fixture
async def pg_url(infra: Any) -> AsyncIterator[str]:
    name = f"n_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(infra.dsn("postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield infra.async_url(name)
    conn = await asyncpg.connect(infra.dsn("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def pg_notify(make_notify: Any, pg_url: str) -> AsyncIterator[NotifyHarness]:
    # The worker is off: the test runs two Notifiers by hand, as two pods would.
    async with make_notify(notify_test_settings(worker_enabled=False), database_url=pg_url) as h:
        h.keys["acme:admin"] = await h.key("acme", "admin")
        yield h
