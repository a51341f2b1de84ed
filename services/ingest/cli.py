"""`python -m services.ingest.cli import FILE --store ID`: import a file straight into this
ingest database (DATABASE_URL, or var/ingest.db by default), with the same job machinery as the
HTTP import (validation, problems, resumable batches, events through the outbox), and a progress
bar. The file is read in place and left alone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table as RichTable
from sqlalchemy import select

from services.ingest import repository as repo
from services.ingest import service
from services.ingest.main import MIGRATIONS
from shared.auth import Principal
from shared.bus import make_bus
from shared.config import IngestSettings
from shared.db import Database, migrate
from shared.errors import DomainError
from shared.outbox import OutboxRelay

cli = typer.Typer(add_completion=False, help="storeops ingest tools")
console = Console(stderr=True)


@cli.callback()
def _root() -> None:
    """storeops ingest tools."""


@cli.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    store: Annotated[str, typer.Option("--store", help="the store's id")],
    tenant: Annotated[str | None, typer.Option(help="needed if two tenants use the id")] = None,
    preset: Annotated[str | None, typer.Option(help="shopify_sales, sycm_daily, ads_spend")] = None,
    format: Annotated[str | None, typer.Option(help="csv or ndjson (default: by suffix)")] = None,
    encoding: Annotated[str, typer.Option(help="auto, utf-8, gb18030 ...")] = "auto",
) -> None:
    fmt = format or ("ndjson" if file.suffix in (".ndjson", ".jsonl") else "csv")
    code = asyncio.run(_import(file.resolve(), store, tenant, preset, fmt, encoding))
    raise typer.Exit(code)


async def _import(
    file: Path, store_id: str, tenant: str | None, preset: str | None, fmt: str, encoding: str
) -> int:
    settings = IngestSettings()
    db = Database(settings)
    try:
        await migrate(db.engine, MIGRATIONS)
        async with db.session(readonly=True) as s:
            q = select(repo.STORES.c.tenant_id).where(repo.STORES.c.id == store_id)
            if tenant:
                q = q.where(repo.STORES.c.tenant_id == tenant)
            tenants = list((await s.execute(q)).scalars())
        if len(tenants) != 1:
            console.print(
                f"[red]store {store_id!r} "
                + ("not found" if not tenants else "exists in several tenants: pass --tenant")
            )
            return 2
        principal = Principal(
            tenant_id=tenants[0], user_id="cli", key_id="cli", role="admin", store_ids=None
        )
        try:
            async with db.session() as s:
                job = await service.create_import(
                    s,
                    principal,
                    store_id,
                    path=file,
                    file_name=file.name,
                    fmt=fmt,
                    preset=preset,
                    encoding=encoding,
                    owned=False,
                )
                await s.commit()
        except DomainError as exc:
            console.print(f"[red]{exc.detail}")
            for err in exc.errors or []:
                console.print(f"  {'.'.join(map(str, err['loc']))}: {err['msg']}")
            return 2
        bus = make_bus(settings)
        await bus.start()
        relay = OutboxRelay(db, bus, service="ingest-cli", batch_size=settings.outbox_batch_size)
        for warning in job.warnings:
            console.print(f"[yellow]{warning}")
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[rows]}"),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(file.name, total=job.file_size, rows="")
            more = True
            while more:
                async with db.session() as s:
                    more = await service.run_import_batch(
                        s,
                        job.id,
                        batch_rows=settings.import_batch_rows,
                        max_problems=settings.import_max_problems,
                    )
                    await s.commit()
                # Hand each batch's events to the bus at once: the backlog stays small.
                while await relay.publish_once():
                    pass
                async with db.session(readonly=True) as s:
                    job = await service.get_import(s, principal, job.id)
                bar.update(
                    task,
                    completed=job.bytes_done,
                    rows=f"{job.rows_accepted + job.rows_updated:,} rows, "
                    f"{job.rows_rejected:,} rejected",
                )
        await bus.stop()
        _summary(job)
        if job.rows_rejected:
            async with db.session(readonly=True) as s:
                problems, _ = await service.import_problems(s, principal, job.id, after=0, limit=10)
            for p in problems:
                console.print(
                    f"  line {p.line}" + (f", {p.column}" if p.column else "") + f": {p.message}"
                )
        return 0 if job.status == "succeeded" else 1
    finally:
        await db.dispose()


def _summary(job: service.ImportJobOut) -> None:
    table = RichTable(title=f"import {job.id}: {job.status}")
    for col in ("accepted", "updated", "duplicates", "rejected", "lines"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{job.rows_accepted:,}",
        f"{job.rows_updated:,}",
        f"{job.rows_duplicate:,}",
        f"{job.rows_rejected:,}",
        f"{job.lines_done:,}",
    )
    console.print(table)


if __name__ == "__main__":
    cli()
