"""Tables of content: copies and their immutable revisions, the audit trail, briefs, experiments,
the counts attributed to copies, and content's own copy of the stores it hears about."""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
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
from shared.db import UTCDateTime, id_column
from shared.idempotency import IdempotencyRecord
from shared.outbox import OutboxMessage, ProcessedEvent


class ContentStore(SQLModel, table=True):
    """What content knows of a store, from ingest.store_registered/updated."""

    __tablename__ = "content_stores"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    store_id: str = Field(sa_column=Column(String(128), primary_key=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    market: str = Field(sa_column=Column(String(2), nullable=False))
    timezone: str = Field(sa_column=Column(String(64), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ContentCampaign(SQLModel, table=True):
    """What content knows of a campaign, from campaigns.campaign_created/updated: enough to
    check that a copy's campaign_id is a campaign of the caller's tenant and of the copy's store."""

    __tablename__ = "content_campaigns"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    campaign_id: str = Field(sa_column=Column(String(36), primary_key=True))
    store_id: str = Field(sa_column=Column(String(128), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))


class Copy(SQLModel, table=True):
    __tablename__ = "copies"
    __table_args__ = (
        Index("ix_copies_tenant_store", "tenant_id", "store_id"),
        Index("ix_copies_tenant_campaign", "tenant_id", "campaign_id"),
        Index("ix_copies_tenant_brief", "tenant_id", "brief_id"),
    )

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(128), nullable=False))
    campaign_id: str | None = Field(default=None, sa_column=Column(String(36), nullable=True))
    brief_id: str | None = Field(default=None, sa_column=Column(String(36), nullable=True))
    type: str = Field(sa_column=Column(String(16), nullable=False))
    locale: str = Field(sa_column=Column(String(8), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    revision: int = Field(sa_column=Column(Integer, nullable=False))
    published_revision: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    channels: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # What the copy sells (lint PRODUCT_CATEGORIES): the claim rules weigh by it.
    product_category: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    created_by: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class CopyRevision(SQLModel, table=True):
    """Immutable: a revision is written once and never updated."""

    __tablename__ = "copy_revisions"
    __table_args__ = (
        UniqueConstraint("copy_id", "revision", name="uq_copy_revisions_copy_revision"),
    )

    id: int | None = Field(default=None, sa_column=id_column())
    copy_id: str = Field(sa_column=Column(String(36), nullable=False))
    revision: int = Field(sa_column=Column(Integer, nullable=False))
    title: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    variables: list[dict[str, Any]] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    lint: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    lint_errors: int = Field(sa_column=Column(Integer, nullable=False))
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_by: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class CopyAudit(SQLModel, table=True):
    """Who did what to a copy, when: append-only."""

    __tablename__ = "copy_audit"
    __table_args__ = (Index("ix_copy_audit_copy", "copy_id", "id"),)

    id: int | None = Field(default=None, sa_column=id_column())
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    copy_id: str = Field(sa_column=Column(String(36), nullable=False))
    action: str = Field(sa_column=Column(String(16), nullable=False))
    from_status: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    to_status: str = Field(sa_column=Column(String(16), nullable=False))
    revision: int = Field(sa_column=Column(Integer, nullable=False))
    actor: str = Field(sa_column=Column(String(64), nullable=False))
    key_id: str = Field(sa_column=Column(String(64), nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Brief(SQLModel, table=True):
    __tablename__ = "briefs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source_key", name="uq_briefs_source"),
        Index("ix_briefs_tenant_owner", "tenant_id", "owner"),
        Index("ix_briefs_tenant_campaign", "tenant_id", "campaign_id"),
    )

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(128), nullable=False))
    # "campaign:<campaign_id>:<task_id>" or "finding:<finding_id>": one brief per source.
    source_key: str = Field(sa_column=Column(String(200), nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    campaign_id: str | None = Field(default=None, sa_column=Column(String(36), nullable=True))
    task_id: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    finding_id: str | None = Field(default=None, sa_column=Column(String(36), nullable=True))
    copy_type: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    owner: str = Field(sa_column=Column(String(64), nullable=False))
    title: str = Field(sa_column=Column(Text, nullable=False))
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    due: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    # The status a finding's closing cancelled the brief from: reopening the finding restores
    # it (the same brief, never a second one). Null for a brief no finding cancelled.
    cancelled_from: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    copy_ids: list[str] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Experiment(SQLModel, table=True):
    __tablename__ = "experiments"
    __table_args__ = (Index("ix_experiments_tenant_store", "tenant_id", "store_id"),)

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(128), nullable=False))
    campaign_id: str | None = Field(default=None, sa_column=Column(String(36), nullable=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    copy_ids: list[str] = Field(sa_column=Column(JSON, nullable=False))
    weights: list[float] = Field(sa_column=Column(JSON, nullable=False))
    start: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    end: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    rule: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    # The last planned look analysed: a look is used once, whatever arrives in between.
    looks_done: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    decision: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    winner_copy_id: str | None = Field(default=None, sa_column=Column(String(36), nullable=True))
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_by: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    decided_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class Reviewer(SQLModel, table=True):
    """Users of a tenant who may approve or reject copy, assigned by the tenant's admins.

    Content-side on purpose: a "reviewer" value in the shared Role literal would be a new
    version of ingest.api_key_created (an enum value old consumers refuse) and would not fit
    the viewer < operator < admin rank; review rights are content's business."""

    __tablename__ = "content_reviewers"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    user_id: str = Field(sa_column=Column(String(64), primary_key=True))
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    added_by: str = Field(sa_column=Column(String(64), nullable=False))
    added_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ContentUser(SQLModel, table=True):
    """Display names of users, from ingest.api_key_created (user_name): the audit names people."""

    __tablename__ = "content_users"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    user_id: str = Field(sa_column=Column(String(64), primary_key=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class CopyMetric(SQLModel, table=True):
    """Metric rows of ingest that carry the dimension copy_id (impressions, clicks, orders)."""

    __tablename__ = "copy_metrics"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id",
            "store_id",
            "copy_id",
            "date",
            "metric",
            "dims_key",
            name="uq_copy_metrics_identity",
        ),
        Index("ix_copy_metrics_copy", "tenant_id", "copy_id"),
    )

    id: int | None = Field(default=None, sa_column=id_column())
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(128), nullable=False))
    copy_id: str = Field(sa_column=Column(String(64), nullable=False))
    date: dt.date = Field(sa_column=Column(Date, nullable=False))
    metric: str = Field(sa_column=Column(String(80), nullable=False))
    dims_key: str = Field(sa_column=Column(Text, nullable=False))
    n_dims: int = Field(sa_column=Column(Integer, nullable=False))
    value: float = Field(sa_column=Column(Float, nullable=False))


TABLES: list[Table] = [
    m.__table__  # type: ignore[union-attr]
    for m in (
        ContentStore,
        ContentCampaign,
        Copy,
        CopyRevision,
        CopyAudit,
        Brief,
        Experiment,
        CopyMetric,
        Reviewer,
        ContentUser,
        AuthKey,
        OutboxMessage,
        ProcessedEvent,
        IdempotencyRecord,
    )
]
TABLE_NAMES = {t.name for t in TABLES}
