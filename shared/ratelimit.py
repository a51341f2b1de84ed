"""Per-tenant rate limits: a token bucket per tenant, per process (see docs/architecture.md)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from shared.errors import RateLimited


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate_per_second: float, burst: int) -> None:
        self.rate = rate_per_second
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def check(self, tenant_id: str, cost: float = 1.0) -> None:
        """Take a token or raise RateLimited with the seconds until one is available."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        b = self._buckets.get(tenant_id)
        if b is None:
            b = self._buckets[tenant_id] = _Bucket(float(self.burst), now)
        b.tokens = min(float(self.burst), b.tokens + (now - b.updated) * self.rate)
        b.updated = now
        if b.tokens >= cost:
            b.tokens -= cost
            return
        raise RateLimited(max(1, math.ceil((cost - b.tokens) / self.rate)))
