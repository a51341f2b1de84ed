"""Fixtures of the diagnosis service tests: the service alone on SQLite with its LocalBus (events
published by the tests), and the all-in-one app for the demo's real path."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import ADMIN_KEY, Harness

from services.diagnosis.main import create_app
from shared.config import DiagnosisSettings

# diagnosis_helpers.py (events as ingest publishes them) beside the tests (importlib mode).
sys.path.insert(0, str(Path(__file__).parent))


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
        # Tests drive the scheduler themselves (run_once with a chosen time).
        "auto_diagnose": False,
        "debounce_seconds": 0.0,
    }
    values.update(over)
    return DiagnosisSettings(**values)


@pytest.fixture
async def diagnosis(tmp_path: Path) -> AsyncIterator[Harness]:
    settings = diagnosis_settings(tmp_path)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Harness(app, client, settings)
