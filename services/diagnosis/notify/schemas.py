"""API models of notification targets and deliveries (separate from the tables)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

from shared.events.common import Owner, Severity
from shared.jsonguard import StrictBool, StrictInt
from shared.locales import fallback

NotifyFormat = Literal["standard", "slack", "feishu", "dingtalk"]
NotifyLocale = Annotated[Literal["en", "zh-CN", "ja"], fallback(("en", "zh-CN", "ja"))]
StoreId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=128)
]


def _zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA timezone (e.g. Asia/Shanghai)") from None
    return value


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetCreate(_In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    owner: Owner
    format: NotifyFormat
    url: str = Field(min_length=1, max_length=2000, description="https only")
    secret: SecretStr | None = Field(
        default=None,
        max_length=256,
        description=(
            "standard: a whsec_ secret, generated when absent and shown once; "
            "dingtalk: the robot's SEC... signing secret; feishu: the bot's signing secret; "
            "slack: none"
        ),
    )
    min_severity: Severity = Field(default="high", description="immediate alerts from here up")
    digest_hour: StrictInt = Field(
        default=9, ge=0, le=23, description="local hour of the daily digest"
    )
    timezone: str = Field(default="UTC", max_length=64)
    alert_budget: StrictInt = Field(
        default=10, ge=0, le=1000, description="immediate alerts per rolling 24 h; then held"
    )
    store_ids: list[StoreId] | None = Field(
        default=None, min_length=1, max_length=1000, description="only these stores; null = all"
    )
    locale: NotifyLocale = "en"
    enabled: StrictBool = True

    _tz = field_validator("timezone")(_zone)


class TargetUpdate(_In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    owner: Owner | None = None
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    secret: SecretStr | None = Field(default=None, max_length=256)
    rotate_secret: StrictBool = Field(
        default=False, description="standard: generate a new whsec_ secret, shown once"
    )
    min_severity: Severity | None = None
    digest_hour: StrictInt | None = Field(default=None, ge=0, le=23)
    timezone: str | None = Field(default=None, max_length=64)
    alert_budget: StrictInt | None = Field(default=None, ge=0, le=1000)
    store_ids: list[StoreId] | None = Field(default=None, min_length=1, max_length=1000)
    locale: NotifyLocale | None = None
    enabled: StrictBool | None = None

    _tz = field_validator("timezone")(_zone)


class TargetOut(BaseModel):
    id: str
    name: str | None
    owner: str
    format: str
    url: str = Field(description="masked: webhook URLs carry their own credentials")
    has_secret: bool
    secret: str | None = Field(
        default=None, description="only in the answer that created or rotated it"
    )
    min_severity: str
    digest_hour: int
    timezone: str
    alert_budget: int
    store_ids: list[str] | None
    locale: str
    enabled: bool
    alerts_last_24h: int = Field(description="immediate alerts sent in the last 24 h")
    held_alerts: int = Field(description="alerts held by the budget, waiting for the digest")
    created_at: dt.datetime
    updated_at: dt.datetime


class TargetPage(BaseModel):
    items: list[TargetOut]
    next_cursor: str | None


class AttemptOut(BaseModel):
    attempt: int
    at: dt.datetime
    outcome: str
    status_code: int | None
    error: str | None
    duration_ms: int
    retry_in_seconds: float | None


class DeliveryOut(BaseModel):
    id: int
    kind: str
    message_id: str
    finding_id: str | None
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    attempt_log: list[AttemptOut]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


class TestQueued(BaseModel):
    delivery_id: int
    message_id: str
    status: Literal["pending"] = "pending"
