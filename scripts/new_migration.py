"""Autogenerate the next Alembic revision of one service from its models.

    uv run python scripts/new_migration.py <service> "<message>"

It upgrades a scratch SQLite database to the service's head, then compares it with the service's
models (`services/<service>/models.py: TABLES`) and writes the difference as a new revision in
`services/<service>/migrations/versions/`. Review the file: autogenerate is a draft.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from importlib import import_module
from pathlib import Path

from alembic import command

from shared.db import alembic_config, create_engine


async def main(service: str, message: str) -> None:
    migrations = Path(import_module(f"services.{service}.main").MIGRATIONS)
    (migrations / "versions").mkdir(parents=True, exist_ok=True)
    existing = sorted(p.name for p in (migrations / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    rev_id = f"{len(existing) + 1:04d}"
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/scratch.db"
        engine = create_engine(url)

        def run(conn: object) -> None:
            cfg = alembic_config(migrations, url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)

        async with engine.begin() as conn:
            await conn.run_sync(run)
        await engine.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
