"""HTTP of the webhook endpoints (filled in by the webhooks work)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
