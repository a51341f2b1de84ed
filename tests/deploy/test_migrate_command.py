"""`python -m services.<name> migrate`: what each service's Kubernetes migration Job runs
(deploy/k8s/base/<name>/migrate-job.yaml). It upgrades the database to the head revision and
exits, and runs safely beside another migrating process (the pods migrate at start-up too)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.script import ScriptDirectory

from shared.db import alembic_config

REPO = Path(__file__).resolve().parents[2]
SERVICES = ["ingest", "diagnosis", "campaigns", "content"]


def head(service: str) -> str:
    cfg = alembic_config(REPO / "services" / service / "migrations", "sqlite://")
    revision = ScriptDirectory.from_config(cfg).get_current_head()
    assert revision
    return revision


async def run_migrate(service: str, url: str) -> tuple[int, str]:
    env = {**os.environ, "DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"services.{service}",
        "migrate",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.fixture
async def databases(infra: Any) -> Any:
    names = {s: f"mig_{s}_{uuid.uuid4().hex[:8]}" for s in SERVICES}
    conn = await asyncpg.connect(infra.dsn("postgres"))
    try:
        for name in names.values():
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield names
    conn = await asyncpg.connect(infra.dsn("postgres"))
    try:
        for name in names.values():
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def version(infra: Any, database: str) -> list[str]:
    conn = await asyncpg.connect(infra.dsn(database))
    try:
        return [r[0] for r in await conn.fetch("SELECT version_num FROM alembic_version")]
    finally:
        await conn.close()


async def test_migrate_upgrades_each_service_to_head_and_exits(
    infra: Any, databases: dict[str, str]
) -> None:
    # Every service migrated at once, and content twice concurrently: the advisory lock makes
    # the second wait and then find the head there (no "relation already exists").
    jobs = [run_migrate(s, infra.async_url(databases[s])) for s in SERVICES]
    jobs.append(run_migrate("content", infra.async_url(databases["content"])))
    results = await asyncio.gather(*jobs)
    for (rc, out), service in zip(results, [*SERVICES, "content"], strict=True):
        assert rc == 0, f"{service} migrate failed:\n{out[-3000:]}"
    for service in SERVICES:
        assert await version(infra, databases[service]) == [head(service)]
