"""`python -m services`: the embedded default, every service in one process (make run)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from services.allinone import AllInOne

cli = typer.Typer(add_completion=False)
console = Console()


def _tour(base: str, key: str, stores: list[str]) -> str:
    store = stores[0] if stores else "demo-shopify"
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    auth = f'-H "Authorization: Bearer {key}"'
    return "\n".join(
        [
            f"[bold]Admin key of the demo tenant:[/bold] {key}",
            "",
            "Try:",
            f"  curl -s {auth} {base}/v1/stores | python3 -m json.tool",
            f"  curl -s {auth} {base}/v1/stores/{store} | python3 -m json.tool",
            f"  curl -s -X POST {auth} -H 'Content-Type: application/json' \\",
            f"    {base}/v1/stores/{store}/metrics \\",
            """    -d '{"rows":[{"date":"2026-11-01","metric":"visitors","value":1234,"""
            """"dimensions":{"channel":"search","device":"mobile"}}]}'""",
            "  # diagnosis (the last 30 days are diagnosed in the background within seconds):",
            f"  curl -s {auth} '{base}/v1/findings?group=cause' | python3 -m json.tool",
            f"  curl -s -X POST {auth} -H 'Content-Type: application/json' \\",
            f'    {base}/v1/stores/{store}/diagnoses -d \'{{"date":"{yesterday}"}}\'',
            f"  curl -s {base}/readyz;  curl -s {base}/metrics | head",
            f"  API docs: {base}/ingest/docs",
        ]
    )


@cli.command()
def main(
    demo: Annotated[bool, typer.Option(help="Load the demo tenant, stores and 90 days")] = False,
    host: Annotated[str, typer.Option()] = os.environ.get("HOST", "127.0.0.1"),
    port: Annotated[int, typer.Option()] = int(os.environ.get("PORT", "8000")),
) -> None:
    app = AllInOne()
    base = f"http://{host}:{port}"
    if demo:
        from services.ingest.seed import seed_demo

        async def _seed(aio: AllInOne) -> None:
            state = aio.apps["ingest"].state
            with console.status("Loading the demo tenant and 90 days of data..."):
                result = await seed_demo(state)
            note = (
                f"loaded {result.rows} metric rows"
                if result.created
                else "demo data already loaded"
            )
            console.rule(f"storeops on {base} ({note})")
            console.print(
                _tour(base, result.api_key, result.stores), soft_wrap=True, highlight=False
            )
            console.rule()

        app.on_started.append(_seed)
    console.print(f"services: {', '.join(app.apps)}; database files and bus under var/")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    cli()
