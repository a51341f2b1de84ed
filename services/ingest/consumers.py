"""Event handlers of ingest. Ingest is the first producer and listens to no other service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.bus import Handler

SUBSCRIPTIONS: Sequence[tuple[str, Sequence[str], Any]] = ()


def handlers(_state: Any) -> dict[str, Handler]:
    return {}
