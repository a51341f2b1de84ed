"""The import runner: a background loop (a boundary, like routes and consumers: it commits).

One batch = one transaction: its rows, its problems and the job's new byte offset commit
together, so a process killed at any point resumes at the last committed line. On PostgreSQL
each batch holds an advisory lock on its job, so several pods never import the same lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from typing import Any

import structlog
from prometheus_client import Gauge
from sqlalchemy import func, select

from services.ingest import repository as repo
from services.ingest import service
from shared.bus import is_transient

log = structlog.get_logger("imports")

# The stuck-import alert (deploy/k8s/monitoring) fires when this is old: the runner moves it
# whenever it is not behind, that is when a batch commits or when no job waits.
IMPORT_PROGRESS = Gauge(
    "storeops_import_job_last_progress_timestamp_seconds",
    "Unix time the import runner last committed a batch or found no job waiting",
)


async def import_runner(state: Any) -> None:
    state.import_wake = getattr(state, "import_wake", None) or asyncio.Event()
    settings = state.settings
    IMPORT_PROGRESS.set_to_current_time()
    while True:
        job_id = None
        try:
            async with state.db.session(readonly=True) as s:
                job_id = await repo.next_job(s)
            if job_id is None:
                IMPORT_PROGRESS.set_to_current_time()
                state.import_wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state.import_wake.wait(), timeout=1.0)
                continue
            more = True
            while more:
                async with state.db.session() as s:
                    if not state.db.sqlite:
                        lock = zlib.crc32(job_id.encode())
                        if not await s.scalar(select(func.pg_try_advisory_xact_lock(lock))):
                            await asyncio.sleep(0.5)
                            break
                    more = await service.run_import_batch(
                        s,
                        job_id,
                        batch_rows=settings.import_batch_rows,
                        max_problems=settings.import_max_problems,
                    )
                    await s.commit()
                IMPORT_PROGRESS.set_to_current_time()
                state.relay.wake()
            async with state.db.session(readonly=True) as s:
                await service.cleanup_import_file(s, job_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_transient(exc):
                log.warning("import_retry", job_id=job_id, error=repr(exc)[:300])
                await asyncio.sleep(1.0)
                continue
            log.exception("import_failed", job_id=job_id)
            if job_id is not None:
                async with state.db.session() as s:
                    await service.fail_import(s, job_id, f"{type(exc).__name__}: {exc}")
                    await s.commit()
                async with state.db.session(readonly=True) as s:
                    await service.cleanup_import_file(s, job_id)


async def health_monitor(state: Any) -> None:
    """Refresh the stale-stores gauge: stores whose feeds stopped, whatever their sales."""
    while True:
        try:
            async with state.db.session(readonly=True) as s:
                service.STALE_STORES.set(await service.stale_stores(s))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("health_monitor_failed", error=repr(exc)[:200])
        await asyncio.sleep(60)
