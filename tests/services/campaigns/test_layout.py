"""Campaigns' models and migrations agree; campaigns imports no other service."""

from __future__ import annotations

import ast
from pathlib import Path

from support import assert_models_match_migrations

from services.campaigns.main import MIGRATIONS
from services.campaigns.models import TABLES

ROOT = Path(__file__).resolve().parents[3]


async def test_campaigns_models_and_migrations_agree_on_sqlite(tmp_path: Path) -> None:
    await assert_models_match_migrations(f"sqlite+aiosqlite:///{tmp_path}/c.db", TABLES, MIGRATIONS)


def test_campaigns_and_the_calendar_import_no_other_service() -> None:
    offenders = []
    for base, allowed in (
        (ROOT / "services" / "campaigns", "services.campaigns"),
        (ROOT / "shared" / "calendar", None),
    ):
        for path in base.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                for name in names:
                    if name.startswith("services") and (
                        allowed is None or not name.startswith(allowed)
                    ):
                        offenders.append((str(path), name))
    assert offenders == []
