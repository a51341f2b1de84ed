"""Tables of notifications (revision 0002 of diagnosis' migrations).

notification_targets   where an owner's alerts and digests go, per tenant
notification_findings  a projection of the findings' latest state, from diagnosis.finding_* events
notification_alerts    one row per (target, finding, severity) alerted or held: the dedupe key
notification_deliveries the outgoing messages (an outbox of HTTP requests) and their state
notification_attempts  every attempt of a delivery: status, error, duration
notification_digests   one row per (target, local date): the claim that makes a digest daily
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from shared.db import UTCDateTime, id_column


class NotificationTarget(SQLModel, table=True):
    __tablename__ = "notification_targets"
    __table_args__ = (Index("ix_notification_targets_owner", "tenant_id", "owner"),)

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    name: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    owner: str = Field(sa_column=Column(String(32), nullable=False))
    format: str = Field(sa_column=Column(String(16), nullable=False))
    url: str = Field(sa_column=Column(Text, nullable=False))
    # Needed in clear to sign; never returned by the API after creation, never logged.
    secret: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    min_severity: str = Field(sa_column=Column(String(16), nullable=False))
    digest_hour: int = Field(sa_column=Column(Integer, nullable=False))
    timezone: str = Field(sa_column=Column(String(64), nullable=False))
    alert_budget: int = Field(sa_column=Column(Integer, nullable=False))
    store_ids: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    locale: str = Field(sa_column=Column(String(8), nullable=False))
    enabled: bool = Field(sa_column=Column(Boolean, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class NotificationFinding(SQLModel, table=True):
    """A finding's latest state as its events carried it; an older event never overwrites."""

    __tablename__ = "notification_findings"
    __table_args__ = (Index("ix_notification_findings_owner", "tenant_id", "owner", "status"),)

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    finding_id: str = Field(sa_column=Column(String(36), primary_key=True))
    store_id: str = Field(sa_column=Column(String(128), nullable=False))
    date: dt.date = Field(sa_column=Column(Date, nullable=False))
    code: str = Field(sa_column=Column(String(64), nullable=False))
    severity: str = Field(sa_column=Column(String(16), nullable=False))
    metric: str = Field(sa_column=Column(String(128), nullable=False))
    dimensions: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    owner: str = Field(sa_column=Column(String(32), nullable=False))
    title: str = Field(sa_column=Column(Text, nullable=False))
    action: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    expected_gmv_impact: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    confidence: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    as_of: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class NotificationAlert(SQLModel, table=True):
    """An immediate alert decided for a target: sent (a delivery exists), held by the budget,
    or digested (a held alert folded into a digest). Unique per (target, finding, severity), so a
    replayed or duplicated event never alerts twice."""

    __tablename__ = "notification_alerts"
    __table_args__ = (
        UniqueConstraint("target_id", "finding_id", "severity", name="uq_notification_alerts_key"),
        Index("ix_notification_alerts_recent", "target_id", "state", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=id_column())
    target_id: str = Field(sa_column=Column(String(36), nullable=False))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    finding_id: str = Field(sa_column=Column(String(36), nullable=False))
    severity: str = Field(sa_column=Column(String(16), nullable=False))
    state: str = Field(sa_column=Column(String(16), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    delivery_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    digest_date: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))


class NotificationDelivery(SQLModel, table=True):
    """An outgoing message. The document is format-neutral; the request is built (and signed)
    at each attempt. message_id is the webhook-id, the same on every retry of the message."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
        Index("ix_notification_deliveries_target", "target_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=id_column())
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    target_id: str = Field(sa_column=Column(String(36), nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    message_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    finding_id: str | None = Field(default=None, sa_column=Column(String(36), nullable=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    attempts: int = Field(sa_column=Column(Integer, nullable=False))
    next_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    last_status_code: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    delivered_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class NotificationAttempt(SQLModel, table=True):
    __tablename__ = "notification_attempts"
    __table_args__ = (Index("ix_notification_attempts_delivery", "delivery_id", "attempt"),)

    id: int | None = Field(default=None, sa_column=id_column())
    delivery_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    attempt: int = Field(sa_column=Column(Integer, nullable=False))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    outcome: str = Field(sa_column=Column(String(16), nullable=False))
    status_code: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    duration_ms: int = Field(sa_column=Column(Integer, nullable=False))
    retry_in_seconds: float | None = Field(default=None, sa_column=Column(Float, nullable=True))


class NotificationDigest(SQLModel, table=True):
    """The claim of one target's digest for one local date: inserted once, so a digest is sent
    once per local day even with several workers."""

    __tablename__ = "notification_digests"

    target_id: str = Field(sa_column=Column(String(36), primary_key=True))
    local_date: dt.date = Field(sa_column=Column(Date, primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    delivery_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    open_count: int = Field(sa_column=Column(Integer, nullable=False))
    held_count: int = Field(sa_column=Column(Integer, nullable=False))


NOTIFY_TABLES: list[Table] = [
    t.__table__  # type: ignore[union-attr]
    for t in (
        NotificationTarget,
        NotificationFinding,
        NotificationAlert,
        NotificationDelivery,
        NotificationAttempt,
        NotificationDigest,
    )
]
