"""A file import survives a crash: the ingest process is killed (SIGKILL) once half the file is
committed; after a restart the job resumes from its last committed line, and the final counts
equal those of the same file imported without interruption."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from support import REPO, Harness, store_body, wait_until

from services.ingest.models import MetricRow

KEY = "crash-test-admin-key-123456"
AUTH = {"Authorization": f"Bearer {KEY}"}


def make_file(path: Path, lines: int) -> None:
    with path.open("w") as f:
        f.write("date,metric,value,channel,product_id\n")
        for i in range(lines):
            day = 1 + i % 28
            if i % 997 == 0:
                f.write(f"2026-10-{day:02d},visitors,not-a-number,search,p{i}\n")
            elif i % 1000 == 500:
                # the identity of line i-3 again with another value: an update
                j = i - 3
                f.write(f"2026-10-{1 + j % 28:02d},visitors,{j + 7},search,p{j}\n")
            else:
                f.write(f"2026-10-{day:02d},visitors,{i},search,p{i}\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(var: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VAR_DIR": str(var),
        "DATABASE_URL": "",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "OPS_BOOTSTRAP_API_KEY": KEY,
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "IMPORT_BATCH_ROWS": "1000",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "services.ingest"],
        cwd=REPO,
        env=env,
        stdout=(var / "ingest.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


async def until_ready(c: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    async def ready() -> bool:
        assert proc.poll() is None, "ingest exited"
        try:
            return (await c.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_until(ready, 60, 0.1)


async def test_killed_import_resumes_and_counts_match(tmp_path: Path, ingest: Harness) -> None:
    data = tmp_path / "big.csv"
    make_file(data, 30_000)
    var = tmp_path / "var"
    var.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(var, port)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            await until_ready(c, proc)
            r = await c.post("/v1/stores", json=store_body("crash"), headers=AUTH)
            assert r.status_code == 201
            r = await c.post(
                "/v1/stores/crash/metrics/import",
                content=data.read_bytes(),
                headers={**AUTH, "content-type": "text/csv"},
            )
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            progress = 0.0
            while progress < 0.5:
                progress = (await c.get(f"/v1/imports/{job_id}", headers=AUTH)).json()["progress"]
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            assert progress < 1.0, "the import finished before it could be killed"

        proc = start(var, port)
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            await until_ready(c, proc)
            job: dict[str, Any] = {}

            async def done() -> bool:
                nonlocal job
                job = (await c.get(f"/v1/imports/{job_id}", headers=AUTH)).json()
                return job["status"] == "succeeded"

            await wait_until(done, 120, 0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    # The same file, uninterrupted, in an in-process service.
    keys = await ingest.tenant_with_keys("ref", ["ref-shop"])
    r = await ingest.client.post(
        "/v1/stores/ref-shop/metrics/import",
        content=data.read_bytes(),
        headers={**keys["operator"], "content-type": "text/csv"},
    )
    ref_id = r.json()["id"]
    ref: dict[str, Any] = {}

    async def ref_done() -> bool:
        nonlocal ref
        ref = (await ingest.client.get(f"/v1/imports/{ref_id}", headers=keys["viewer"])).json()
        return ref["status"] == "succeeded"

    await wait_until(ref_done, 120, 0.2)
    fields = (
        "rows_accepted",
        "rows_updated",
        "rows_duplicate",
        "rows_rejected",
        "lines_done",
        "bytes_done",
    )
    assert {f: job[f] for f in fields} == {f: ref[f] for f in fields}
    assert job["rows_rejected"] == 31 and job["rows_updated"] >= 25
    # And the killed service's database holds exactly the reference's rows.
    from shared.config import IngestSettings
    from shared.db import Database

    db = Database(IngestSettings(var_dir=var, database_url=""))
    try:
        async with db.session(readonly=True) as s:
            n = await s.scalar(select(func.count()).select_from(MetricRow.__table__))
    finally:
        await db.dispose()
    assert n == ref["rows_accepted"]
