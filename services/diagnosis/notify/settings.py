"""Settings of notifications, read from the environment with the NOTIFY_ prefix.

They live beside the package (not in shared/config.py) so that notifications stay a self-contained
part of diagnosis; `state.notify_settings`, when a test or the app sets it, wins over the
environment.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Seconds before the 2nd, 3rd, ... attempt (the Standard Webhooks reference schedule, shortened).
DEFAULT_RETRY_DELAYS = (10.0, 30.0, 120.0, 600.0, 3600.0, 3 * 3600.0, 6 * 3600.0)


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFY_", extra="ignore", frozen=True)

    # Plain http:// (and loopback addresses) for targets: only for tests and local receivers.
    allow_insecure_loopback: bool = False
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    # Attempts in all (the first plus the retries); then the delivery is failed.
    max_attempts: int = Field(default=8, ge=1, le=50)
    # Multiplies every delay (tests scale the schedule down); Retry-After is honoured as sent,
    # capped at retry_after_max_seconds.
    delay_scale: float = Field(default=1.0, gt=0)
    jitter: float = Field(default=0.2, ge=0, le=1)
    retry_after_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    timeout_seconds: float = Field(default=10.0, gt=0)
    # The worker: a round at least this often (woken at once by new deliveries of this process).
    poll_seconds: float = Field(default=2.0, gt=0)
    batch_size: int = Field(default=50, ge=1)
    # How long a claimed delivery is leased to one worker before another may take it.
    lease_seconds: float = Field(default=60.0, gt=0)
    digest_check_seconds: float = Field(default=60.0, gt=0)
    # Findings listed in a digest document (the formats cut further to the vendors' limits).
    digest_max_findings: int = Field(default=50, ge=1, le=500)
    send_empty_digest: bool = False
    # False: the worker only runs when called (tests drive rounds themselves).
    worker_enabled: bool = True


def notify_settings(state: Any) -> NotifySettings:
    """The settings of this app: set on the state by the app or a test, else from the env."""
    settings = getattr(state, "notify_settings", None)
    if settings is None:
        settings = NotifySettings()
        state.notify_settings = settings
    return settings
