"""Tables of campaigns: the stores it learns from ingest, campaigns with their tasks and
dependencies, promotion slots and bookings, allocation runs, feed tokens, tenant calendar
settings and the diagnosis findings it turns into remedial tasks."""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
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

from shared.auth import AuthKey
from shared.db import UTCDateTime
from shared.idempotency import IdempotencyRecord
from shared.outbox import OutboxMessage, ProcessedEvent


class KnownStore(SQLModel, table=True):
    """Campaigns' own copy of a store, from ingest.store_registered/updated events."""

    __tablename__ = "known_stores"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    store_id: str = Field(sa_column=Column(String(128), primary_key=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    timezone: str = Field(sa_column=Column(String(64), nullable=False))
    market: str = Field(sa_column=Column(String(2), nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    # The platform decides the business model a plan follows (marketplace or DTC); null for
    # stores learnt before it was kept, until their next event.
    platform: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    # The event time of the state we hold: an older event never overwrites a newer one.
    as_of: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Campaign(SQLModel, table=True):
    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_store", "tenant_id", "store_id", "start"),)

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(128), nullable=False))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    event: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    event_date: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    template: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    market: str = Field(sa_column=Column(String(2), nullable=False))
    start: dt.date = Field(sa_column=Column(Date, nullable=False))
    end: dt.date = Field(sa_column=Column(Date, nullable=False))
    # Tasks without a successor must finish before this date (the main day, or the end + 1).
    deadline: dt.date = Field(sa_column=Column(Date, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    budget: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    currency: str | None = Field(default=None, sa_column=Column(String(3), nullable=True))
    phases: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    capacities: dict[str, int] = Field(sa_column=Column(JSON, nullable=False))
    sequence: int = Field(sa_column=Column(Integer, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class CampaignTask(SQLModel, table=True):
    __tablename__ = "campaign_tasks"
    __table_args__ = (Index("ix_campaign_tasks_due", "due", "status"),)

    campaign_id: str = Field(sa_column=Column(String(36), primary_key=True))
    task_id: str = Field(sa_column=Column(String(128), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(128), nullable=False))
    position: int = Field(sa_column=Column(Integer, nullable=False))
    name: str = Field(sa_column=Column(String(300), nullable=False))
    owner_role: str = Field(sa_column=Column(String(64), nullable=False))
    duration: int = Field(sa_column=Column(Integer, nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    copy_type: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    pin: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    not_before: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    start: dt.date = Field(sa_column=Column(Date, nullable=False))
    due: dt.date = Field(sa_column=Column(Date, nullable=False))
    # The dates the task was first planned with: the Gantt's baseline-vs-current view.
    baseline_start: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    baseline_due: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    late_start: dt.date = Field(sa_column=Column(Date, nullable=False))
    late_finish: dt.date = Field(sa_column=Column(Date, nullable=False))
    slack: int = Field(sa_column=Column(Integer, nullable=False))
    critical: bool = Field(sa_column=Column(Boolean, nullable=False))
    source: str = Field(sa_column=Column(String(16), nullable=False))
    finding_id: str | None = Field(default=None, sa_column=Column(String(36), nullable=True))
    # The due date a task_due event was published for: once per task and due date.
    due_notified: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    sequence: int = Field(sa_column=Column(Integer, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class TaskDependency(SQLModel, table=True):
    __tablename__ = "task_dependencies"

    campaign_id: str = Field(sa_column=Column(String(36), primary_key=True))
    task_id: str = Field(sa_column=Column(String(128), primary_key=True))
    depends_on: str = Field(sa_column=Column(String(128), primary_key=True))
    type: str = Field(sa_column=Column(String(2), nullable=False))
    lag: int = Field(sa_column=Column(Integer, nullable=False))


class PromotionSlot(SQLModel, table=True):
    __tablename__ = "promotion_slots"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_promotion_slots_name"),)

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    capacity: int = Field(sa_column=Column(Integer, nullable=False))
    rules: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class SlotDay(SQLModel, table=True):
    """Units booked of a slot on a day: the row a booking increments under a condition."""

    __tablename__ = "slot_days"

    slot_id: str = Field(sa_column=Column(String(36), primary_key=True))
    day: dt.date = Field(sa_column=Column(Date, primary_key=True))
    booked: int = Field(sa_column=Column(Integer, nullable=False))


class SlotDayStore(SQLModel, table=True):
    """Units booked by one store of a slot on a day: the maximum share is enforced on it."""

    __tablename__ = "slot_day_stores"

    slot_id: str = Field(sa_column=Column(String(36), primary_key=True))
    day: dt.date = Field(sa_column=Column(Date, primary_key=True))
    store_id: str = Field(sa_column=Column(String(128), primary_key=True))
    booked: int = Field(sa_column=Column(Integer, nullable=False))


class Booking(SQLModel, table=True):
    __tablename__ = "slot_bookings"
    __table_args__ = (
        Index("ix_slot_bookings_slot_day", "slot_id", "day"),
        Index("ix_slot_bookings_task", "campaign_id", "task_id"),
    )

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    slot_id: str = Field(sa_column=Column(String(36), nullable=False))
    store_id: str = Field(sa_column=Column(String(128), nullable=False))
    day: dt.date = Field(sa_column=Column(Date, nullable=False))
    tier: str = Field(sa_column=Column(String(32), nullable=False))
    priority: int = Field(sa_column=Column(Integer, nullable=False))
    allocation_id: str | None = Field(default=None, sa_column=Column(String(36), nullable=True))
    # The plan's task the booking was made from ("Book promotion slots"), when it was.
    campaign_id: str | None = Field(default=None, sa_column=Column(String(36), nullable=True))
    task_id: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class AllocationRun(SQLModel, table=True):
    __tablename__ = "allocation_runs"

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    slot_id: str = Field(sa_column=Column(String(36), nullable=False))
    request: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    result: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class FeedToken(SQLModel, table=True):
    """The secret of a store's iCalendar feed, stored as SHA-256; one per store."""

    __tablename__ = "feed_tokens"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    store_id: str = Field(sa_column=Column(String(128), primary_key=True))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class TeamFeedToken(SQLModel, table=True):
    """The secret of a tenant-wide iCalendar feed across stores, for every role (owner_role
    "") or one owner role; stored as SHA-256. `store_ids` is the scope of the key that issued
    it (null: all stores), so a scoped key never issues a feed wider than itself."""

    __tablename__ = "team_feed_tokens"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    owner_role: str = Field(sa_column=Column(String(64), primary_key=True))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    store_ids: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class CalendarSettings(SQLModel, table=True):
    """A tenant's festival additions/overrides and working-calendar overrides per market."""

    __tablename__ = "calendar_settings"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    festivals: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    markets: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class KnownFinding(SQLModel, table=True):
    """A diagnosis finding, from diagnosis.finding_* events; `referenced` once a
    diagnosis_completed listed it. A remedial task is added once both are known."""

    __tablename__ = "known_findings"

    finding_id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(128), nullable=False))
    date: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    owner: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    severity: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    code: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    title: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    action: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    referenced: bool = Field(sa_column=Column(Boolean, nullable=False))
    campaign_id: str | None = Field(default=None, sa_column=Column(String(36), nullable=True))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


# The tables this service's migrations own, shared ones included.
TABLES: list[Table] = [
    m.__table__  # type: ignore[union-attr]
    for m in (
        KnownStore,
        Campaign,
        CampaignTask,
        TaskDependency,
        PromotionSlot,
        SlotDay,
        SlotDayStore,
        Booking,
        AllocationRun,
        FeedToken,
        TeamFeedToken,
        CalendarSettings,
        KnownFinding,
        AuthKey,
        OutboxMessage,
        ProcessedEvent,
        IdempotencyRecord,
    )
]
TABLE_NAMES = {t.name for t in TABLES}
