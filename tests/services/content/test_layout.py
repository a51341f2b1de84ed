"""content's models and migrations agree (the house rule of tests/shared/test_layout.py)."""

from __future__ import annotations

from pathlib import Path

from support import assert_models_match_migrations

from services.content.main import MIGRATIONS
from services.content.models import TABLES


async def test_content_models_and_migrations_agree_on_sqlite(tmp_path: Path) -> None:
    await assert_models_match_migrations(f"sqlite+aiosqlite:///{tmp_path}/c.db", TABLES, MIGRATIONS)


def test_content_owns_the_shared_tables_it_needs() -> None:
    names = {t.name for t in TABLES}
    assert {"auth_keys", "outbox", "processed_events", "copies", "copy_revisions"} <= names
