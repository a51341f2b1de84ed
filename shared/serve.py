"""Run one service (or the all-in-one app) under uvicorn; `... migrate` only migrates.

`python -m services.<name> migrate` upgrades the service's database to the head revision and
exits: the Kubernetes migration Job runs it before the Deployment's pods (which also migrate at
start-up, a no-op once the Job has run).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys

import uvicorn

# The largest request line + headers uvicorn's h11 parser reads before answering a plain-text
# 400 itself (its default is 16 KiB): larger than the app's own limits (8 KiB target, 16 KiB
# headers in shared.errors.RequestLimitsMiddleware), so those answer problem+json 414/431.
SERVER_MAX_REQUEST_BYTES = 256 * 1024


async def _migrate(factory: str) -> None:
    from shared.config import ServiceSettings
    from shared.db import Database, migrate

    module_name = factory.split(":", 1)[0]  # services.<name>.main
    module = importlib.import_module(module_name)
    settings = ServiceSettings(service_name=module_name.split(".")[-2])
    db = Database(settings)
    try:
        await migrate(db.engine, module.MIGRATIONS)
    finally:
        await db.dispose()


def serve(factory: str, default_port: int) -> None:
    if sys.argv[1:] == ["migrate"]:
        asyncio.run(_migrate(factory))
        return
    uvicorn.run(
        factory,
        factory=True,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", default_port)),
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
        access_log=False,
        proxy_headers=True,
        h11_max_incomplete_event_size=SERVER_MAX_REQUEST_BYTES,
    )
