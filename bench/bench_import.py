"""CSV import at two file sizes through the ingest CLI (the same job machinery as the HTTP
import), on the embedded SQLite default: rows per second and the process's peak memory (max RSS).
Target: peak memory does not grow with the file (the large file's peak within 25% of the small
one's, the file 10x larger). Sizes: BENCH_IMPORT_ROWS (default 2,000,000) and a tenth of it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from services.ingest.main import create_app
from shared.config import IngestSettings

REPO = Path(__file__).resolve().parent.parent
BIG = int(os.environ.get("BENCH_IMPORT_ROWS", "2000000"))
SMALL = BIG // 10
GROWTH = 1.25


def write_csv(path: Path, rows: int) -> None:
    channels = ["search", "recommendation", "paid_search", "social", "live", "direct"]
    with path.open("w") as f:
        f.write("date,metric,value,channel,product_id\n")
        for i in range(rows):
            f.write(
                f"2025-{1 + i % 12:02d}-{1 + (i // 12) % 28:02d},visitors,{i % 9973},"
                f"{channels[i % 6]},p{i // 336}\n"
            )


async def make_store(var: Path) -> None:
    app = create_app(
        IngestSettings(
            var_dir=var,
            database_url="",
            kafka_bootstrap_servers="",
            log_level="WARNING",
            ops_bootstrap_api_key="b" * 20,
        )
    )
    import httpx

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as c:
            r = await c.post(
                "/v1/stores",
                headers={"Authorization": "Bearer " + "b" * 20},
                json={
                    "id": "bench",
                    "name": "B",
                    "platform": "shopify",
                    "timezone": "UTC",
                    "currency": "USD",
                    "market": "US",
                },
            )
            assert r.status_code == 201, r.text


def run_import(var: Path, data: Path) -> tuple[float, int]:
    """(seconds, peak RSS in KiB) of one CLI import in its own process."""
    env = {
        **os.environ,
        "VAR_DIR": str(var),
        "DATABASE_URL": "",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "LOG_LEVEL": "WARNING",
    }
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.ingest.cli", "import", str(data), "--store", "bench"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    assert os.waitstatus_to_exitcode(status) == 0, "the import failed"
    return elapsed, usage.ru_maxrss


def main() -> int:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (SMALL, BIG):
            var = Path(tmp) / f"var{n}"
            var.mkdir()
            data = Path(tmp) / f"rows{n}.csv"
            write_csv(data, n)
            asyncio.run(make_store(var))
            results[n] = (*run_import(var, data), data.stat().st_size)
            data.unlink()
    m_small, m_big = results[SMALL][1], results[BIG][1]
    growth = m_big / m_small
    passed = growth <= GROWTH
    lines = [
        "## File imports (CLI, CSV, SQLite)",
        "",
        "| benchmark | target | measured | result | baseline / note |",
        "|---|---|---|---|---|",
    ]
    for n, (t, m, b) in results.items():
        print(
            f"import {n:,} rows ({b / 1e6:.0f} MB): {n / t:,.0f} rows/s, peak RSS {m / 1024:.0f} MiB"
        )
        lines.append(
            f"| import {n:,} rows ({b / 1e6:.0f} MB) | - | {n / t:,.0f} rows/s, peak "
            f"{m / 1024:.0f} MiB | - | {t:.0f} s |"
        )
    print(
        f"peak memory growth {SMALL:,} -> {BIG:,} rows: target <= {GROWTH:.2f}x, "
        f"measured {growth:.2f}x, {'pass' if passed else 'MISS'}"
    )
    lines.append(
        f"| peak memory, {BIG:,} vs {SMALL:,} rows | <= {GROWTH:.2f}x | {growth:.2f}x | "
        f"{'pass' if passed else 'MISS'} | streamed: memory independent of file size |"
    )
    out = Path(os.environ.get("BENCH_OUT", "var/bench/bench_import.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
