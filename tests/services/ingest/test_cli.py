"""`python -m services.ingest.cli import FILE --store ...`: the same job machinery from a shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from support import REPO

from services.ingest.models import ImportJob, MetricRow
from shared.outbox import OutboxMessage


def run_cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "VAR_DIR": str(tmp),
        "DATABASE_URL": "",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "LOG_LEVEL": "WARNING",
        "COLUMNS": "120",
    }
    return subprocess.run(
        [sys.executable, "-m", "services.ingest.cli", "import", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_cli_imports_a_file_in_place(make_harness: Any, tmp_path: Path) -> None:
    data = tmp_path / "orders.csv"
    data.write_text(
        "date,channel,orders,gmv\n2026-10-01,search,3,120.5\n"
        "2026-10-02,search,x,1\n2026-10-02,social,4,99\n"
    )
    async with make_harness() as h:
        keys = await h.tenant_with_keys("acme", ["acme-a"])
        assert keys
    done = run_cli(tmp_path, str(data), "--store", "acme-a")
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stderr and "line 3" in done.stderr
    assert data.exists()  # the operator's file is left alone
    async with make_harness() as h:
        async with h.app.state.db.session(readonly=True) as s:
            n = await s.scalar(select(func.count()).select_from(MetricRow.__table__))
            job = (await s.execute(select(ImportJob.__table__))).one()
            unpublished = await s.scalar(
                select(func.count())
                .select_from(OutboxMessage.__table__)
                .where(OutboxMessage.__table__.c.published_at.is_(None))
            )
        assert n == 4 and job.rows_rejected == 1 and job.status == "succeeded"
        assert unpublished == 0

    missing = run_cli(tmp_path, str(data), "--store", "nope")
    assert missing.returncode == 2 and "not found" in missing.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("date,colour\n2026-10-01,red\n")
    refused = run_cli(tmp_path, str(bad), "--store", "acme-a")
    assert refused.returncode == 2 and "colour" in refused.stderr
