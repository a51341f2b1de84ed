"""The diagnosis service's models and migrations agree, on SQLite."""

from __future__ import annotations

from pathlib import Path

from support import assert_models_match_migrations

from services.diagnosis.main import MIGRATIONS
from services.diagnosis.models import TABLES


async def test_models_match_migrations(tmp_path: Path) -> None:
    await assert_models_match_migrations(f"sqlite+aiosqlite:///{tmp_path}/d.db", TABLES, MIGRATIONS)


async def test_series_is_its_primary_key_on_sqlite_and_keeps_its_rows(tmp_path: Path) -> None:
    """Migration 0003 rebuilds diag_series WITHOUT ROWID (the one-query load reads a store's
    range in place); the rows survive the upgrade and the downgrade."""
    from alembic import command
    from sqlalchemy import text

    from shared.config import ServiceSettings
    from shared.db import Database, alembic_config, migrate

    db = Database(
        ServiceSettings(service_name="layout", database_url=f"sqlite+aiosqlite:///{tmp_path}/s.db")
    )
    rows = [("t", "s", f"2026-03-0{d}", "gmv", '{"channel":"a"}', 1.5 * d) for d in range(1, 4)]
    select_all = (
        "SELECT tenant_id, store_id, date, metric, dims, value FROM diag_series ORDER BY date"
    )

    async def table_sql() -> str:
        async with db.engine.connect() as conn:
            sql = await conn.scalar(
                text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'diag_series'")
            )
            return str(sql)

    async def stored() -> list[tuple[object, ...]]:
        async with db.engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(text(select_all))]

    try:
        await migrate(db.engine, MIGRATIONS, "0002")
        assert "WITHOUT ROWID" not in await table_sql()
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("INSERT INTO diag_series VALUES (?, ?, ?, ?, ?, ?)", rows)
        await migrate(db.engine, MIGRATIONS)
        assert "WITHOUT ROWID" in await table_sql()
        assert await stored() == rows

        def down(connection: object) -> None:
            cfg = alembic_config(MIGRATIONS, str(db.engine.url))
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "0002")

        async with db.engine.begin() as conn:
            await conn.run_sync(down)
        assert "WITHOUT ROWID" not in await table_sql()
        assert await stored() == rows
    finally:
        await db.dispose()
