"""The delivery worker: sends queued notifications over HTTP and composes the daily digests.

A round leases due deliveries in a short transaction, sends them outside any transaction (an
HTTP call must not hold the database), then records each attempt in its own transaction. 2xx is
delivered; 408, 429, 5xx, timeouts and connection errors are retried on the schedule below with
jitter, honouring Retry-After; any other 4xx (and a vendor's error code in a 200 answer) fails
the delivery for good. After max_attempts the delivery is failed. Every attempt is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from prometheus_client import Counter, Gauge

from services.diagnosis.notify import repository as repo
from services.diagnosis.notify import service
from services.diagnosis.notify.formats import Outcome, build_request, classify
from services.diagnosis.notify.settings import NotifySettings, notify_settings
from shared.bus import is_transient

log = structlog.get_logger("notifications")

NOTIFICATIONS_SENT = Counter(
    "storeops_notifications_sent_total",
    "Notification delivery attempts by target format and outcome (delivered, retry, failed)",
    ["format", "outcome"],
)
NOTIFICATIONS_PENDING = Gauge(
    "storeops_notifications_pending", "Notifications queued and not yet delivered or failed"
)
ERROR_MAX = 500
BODY_READ_MAX = 64 * 1024


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as delta-seconds or an HTTP-date (RFC 9110 10.2.3); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def retry_delay(
    attempts_done: int,
    settings: NotifySettings,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds before the next attempt after `attempts_done` attempts: the schedule's step with
    +-jitter, scaled; never sooner than a Retry-After the receiver sent (capped)."""
    steps = settings.retry_delays
    base = steps[min(attempts_done - 1, len(steps) - 1)]
    delay = base * (1 + settings.jitter * (2 * rand() - 1)) * settings.delay_scale
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.retry_after_max_seconds))
    return delay


def _scrub(text: str, *secrets_: str | None) -> str:
    """Errors may quote the URL, which carries credentials for most vendors."""
    for s in secrets_:
        if s:
            text = text.replace(s, "<redacted>")
    return text[:ERROR_MAX]


class Notifier:
    """One process's sender: an HTTP client built when the worker starts, closed when it stops."""

    def __init__(self, state: Any, client: httpx.AsyncClient, settings: NotifySettings) -> None:
        self.state = state
        self.client = client
        self.settings = settings

    async def deliver_due(self, now: datetime | None = None) -> int:
        """One round: lease up to batch_size due deliveries, send them, record the attempts."""
        now = now or datetime.now(UTC)
        lease = now + timedelta(seconds=self.settings.lease_seconds)
        async with self.state.db.session() as session:
            rows = await repo.claim_due(session, now, self.settings.batch_size, lease)
            await session.commit()
        if rows:
            await asyncio.gather(*(self._send(row) for row in rows))
        await self.refresh_gauge()
        return len(rows)

    async def refresh_gauge(self) -> None:
        async with self.state.db.session(readonly=True) as session:
            NOTIFICATIONS_PENDING.set(await repo.count_pending(session))

    async def _send(self, row: Any) -> None:
        attempt = row.attempts + 1
        started = time.monotonic()
        now = datetime.now(UTC)
        status: int | None = None
        retry_after: float | None = None
        outcome: Outcome
        error: str | None
        fmt = row.format or "unknown"
        if row.live_target is None:
            outcome, error = "failed", "the target was deleted"
        else:
            request = build_request(
                row.format, row.url, row.secret, row.document, message_id=row.message_id, now=now
            )
            try:
                response = await self.client.post(
                    request.url,
                    content=request.body,
                    headers=request.headers,
                    timeout=self.settings.timeout_seconds,
                )
                status = response.status_code
                outcome, error = classify(row.format, status, response.content[:BODY_READ_MAX])
                retry_after = parse_retry_after(response.headers.get("retry-after"), now)
            except httpx.TimeoutException:
                outcome, error = "retry", "timeout"
            except httpx.HTTPError as exc:
                outcome = "retry"
                error = _scrub(f"{type(exc).__name__}: {exc}", request.url, row.url, row.secret)
        delay: float | None = None
        if outcome == "retry":
            if attempt >= self.settings.max_attempts:
                outcome = "failed"
                error = f"{error} (gave up after {attempt} attempts)"
            else:
                delay = retry_delay(attempt, self.settings, retry_after)
        duration_ms = int((time.monotonic() - started) * 1000)
        NOTIFICATIONS_SENT.labels(fmt, outcome).inc()
        done = datetime.now(UTC)
        values: dict[str, Any] = {
            "attempts": attempt,
            "last_status_code": status,
            "last_error": error,
            "updated_at": done,
        }
        if outcome == "delivered":
            values.update(status="delivered", delivered_at=done, next_attempt_at=None)
        elif outcome == "failed":
            values.update(status="failed", next_attempt_at=None)
        else:
            assert delay is not None
            values.update(next_attempt_at=done + timedelta(seconds=delay))
        async with self.state.db.session() as session:
            await repo.insert_attempt(
                session,
                {
                    "delivery_id": row.id,
                    "attempt": attempt,
                    "at": now,
                    "outcome": outcome,
                    "status_code": status,
                    "error": error,
                    "duration_ms": duration_ms,
                    "retry_in_seconds": delay,
                },
            )
            await repo.update_delivery(session, row.id, values)
            await session.commit()
        log.info(
            "notification_attempt",
            delivery_id=row.id,
            kind=row.kind,
            format=fmt,
            attempt=attempt,
            outcome=outcome,
            status_code=status,
            retry_in_seconds=delay,
        )

    async def run_digests(self, now: datetime | None = None) -> int:
        """Queue every target's digest that is due and not yet claimed; returns how many."""
        now = now or datetime.now(UTC)
        async with self.state.db.session(readonly=True) as session:
            targets = await repo.enabled_targets(session)
        sent = 0
        for target in targets:
            local_date = service.digest_due(target, now)
            if local_date is None:
                continue
            # One transaction per target: the claim and the queued digest commit together.
            async with self.state.db.session() as session:
                if await service.send_digest(session, target, local_date, now, self.settings):
                    sent += 1
                await session.commit()
        return sent


def notify_wake(state: Any) -> asyncio.Event:
    """Set by whoever queues a delivery in this process, so the worker sends it at once."""
    wake = getattr(state, "notify_wake", None)
    if wake is None:
        wake = asyncio.Event()
        state.notify_wake = wake
    return wake


async def run_notifier(state: Any) -> None:
    """The background worker (ServiceSpec.background): deliveries and digests, forever."""
    settings = notify_settings(state)
    wake = notify_wake(state)
    if not settings.worker_enabled:
        return
    async with httpx.AsyncClient(follow_redirects=False) as client:
        notifier = Notifier(state, client, settings)
        state.notifier = notifier
        loop = asyncio.get_running_loop()
        next_digest = 0.0
        while True:
            busy = False
            try:
                if loop.time() >= next_digest:
                    next_digest = loop.time() + settings.digest_check_seconds
                    await notifier.run_digests()
                busy = await notifier.deliver_due() >= settings.batch_size
            except Exception as exc:  # a failed round is retried at the next one
                log.warning(
                    "notification_round_failed",
                    error_type=type(exc).__name__,
                    error=str(exc)[:ERROR_MAX],
                    transient=is_transient(exc),
                )
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=settings.poll_seconds)
            wake.clear()
