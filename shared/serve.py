"""Run one service (or the all-in-one app) under uvicorn."""

from __future__ import annotations

import os

import uvicorn


def serve(factory: str, default_port: int) -> None:
    uvicorn.run(
        factory,
        factory=True,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", default_port)),
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
        access_log=False,
        proxy_headers=True,
    )
