"""HTTP of the webhook endpoints. Called by the shop platforms, not with our API keys: the
signature over the raw body is the only authentication. Answer fast: store, commit, 2xx; the
background processor does the rest."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from services.ingest.webhooks import service

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


async def clock() -> Callable[[], float]:
    """The time Standard Webhooks timestamps are checked against (tests override it). Async on
    purpose: FastAPI runs a sync dependency in its thread pool, a thread hop per delivery."""
    return time.time


Clock = Annotated[Callable[[], float], Depends(clock)]
StoreId = Annotated[str, Path(min_length=1, max_length=64)]
Endpoint = Literal["shopify", "woocommerce", "generic"]


@router.post("/{platform}/{store_id}", status_code=202)
async def receive_webhook(
    platform: Endpoint, store_id: StoreId, request: Request, now: Clock
) -> JSONResponse:
    # No UoW here: the delivery is committed by the webhooks' group-commit writer (the
    # transaction boundary of this path) before the answer leaves.
    got = await service.receive(
        service.runtime(request.app.state),
        platform,
        store_id,
        request.headers,
        await request.body(),
        now=now(),
        tolerance_seconds=request.app.state.settings.webhook_timestamp_tolerance_seconds,
    )
    code = 202 if got.status == "accepted" else 200
    return JSONResponse({"status": got.status, "delivery_id": got.delivery_id}, status_code=code)
