"""End-to-end fixtures: the four services as processes on PostgreSQL and Kafka (tests/processes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from processes import Platform
from support import Infra


@pytest.fixture
async def platform(infra: Infra, tmp_path: Path) -> AsyncIterator[Platform]:
    p = Platform(infra.pg_dsn, infra.kafka, tmp_path / "platform")
    try:
        await p.start()
        yield p
    finally:
        await p.close()
