"""Fixtures shared by the whole suite.

Unit and route tests run each service on SQLite files in a temporary folder with the LocalBus, with
the app's lifespan really running. Integration tests (tests/integration) use the real PostgreSQL
and Kafka started by scripts/services.sh (see tests/integration/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Harness, content_settings, ingest_settings

from services.content.main import create_app as create_content
from services.ingest.main import create_app as create_ingest


@pytest.fixture
async def ingest(tmp_path: Path) -> AsyncIterator[Harness]:
    settings = ingest_settings(tmp_path)
    app = create_ingest(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Harness(app, client, settings)


@pytest.fixture
async def content(tmp_path: Path) -> AsyncIterator[Harness]:
    """The content service alone, on SQLite and its LocalBus, lifespan running."""
    settings = content_settings(tmp_path)
    app = create_content(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Harness(app, client, settings)


@pytest.fixture
def make_harness(tmp_path: Path) -> Any:
    """Build an ingest harness with custom settings: `async with make_harness(**s) as h`."""

    @asynccontextmanager
    async def _make(**over: Any) -> AsyncIterator[Harness]:
        settings = ingest_settings(tmp_path, **over)
        app = create_ingest(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                yield Harness(app, c, settings)

    return _make


@pytest.fixture(scope="session")
def infra() -> Any:
    """The real broker and database: started by `make test` (scripts/services.sh); started here
    if the run did not, and then stopped at the end. If they cannot start, this fails loudly."""
    import os

    from support import Infra, services_script

    started_here = False
    if not (os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("TEST_PG_DSN")):
        services_script("start")
        started_here = True
        repo = Path(__file__).resolve().parent.parent
        env_file = Path(os.environ.get("SERVICES_DIR", repo / "var" / "services")) / "env"
        for line in env_file.read_text().splitlines():
            if line.startswith("export "):
                k, _, v = line[len("export ") :].partition("=")
                os.environ[k] = v.strip().strip('"').strip("'")
    yield Infra(os.environ["TEST_PG_DSN"], os.environ["KAFKA_BOOTSTRAP_SERVERS"])
    if started_here:
        services_script("stop")


@pytest.fixture
async def campaigns(tmp_path: Path) -> AsyncIterator[Harness]:
    """The campaigns service on SQLite and the LocalBus, lifespan running; stores and keys reach
    it as events (tests publish them with support.publish)."""
    from support import campaigns_settings

    from services.campaigns.main import create_app as create_campaigns

    settings = campaigns_settings(tmp_path)
    app = create_campaigns(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Harness(app, client, settings)
