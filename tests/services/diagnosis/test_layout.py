"""The diagnosis service's models and migrations agree, on SQLite."""

from __future__ import annotations

from pathlib import Path

from support import assert_models_match_migrations

from services.diagnosis.main import MIGRATIONS
from services.diagnosis.models import TABLES


async def test_models_match_migrations(tmp_path: Path) -> None:
    await assert_models_match_migrations(f"sqlite+aiosqlite:///{tmp_path}/d.db", TABLES, MIGRATIONS)
