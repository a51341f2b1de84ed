"""Tables of ingest: the registry (tenants, users, stores) and the metric rows."""

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

from shared.auth import AuthKey
from shared.db import UTCDateTime, id_column
from shared.idempotency import IdempotencyRecord
from shared.outbox import OutboxMessage, ProcessedEvent


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: str = Field(sa_column=Column(String(64), primary_key=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    reporting_currency: str = Field(sa_column=Column(String(3), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),)

    id: str = Field(sa_column=Column(String(64), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    email: str = Field(sa_column=Column(String(254), nullable=False))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Store(SQLModel, table=True):
    __tablename__ = "stores"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    id: str = Field(sa_column=Column(String(64), primary_key=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    platform: str = Field(sa_column=Column(String(32), nullable=False))
    timezone: str = Field(sa_column=Column(String(64), nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    market: str = Field(sa_column=Column(String(2), nullable=False))
    category: str = Field(sa_column=Column(String(100), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    # The store's own partitioning dimensions (shared/grains.py), beside the registry's.
    partition_dimensions: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    # Needed in clear to verify platform signatures; never logged, never returned after creation.
    webhook_secret: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class MetricRow(SQLModel, table=True):
    """One value of a store's daily series; identity (store, date, metric, dimensions)."""

    __tablename__ = "metric_rows"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "store_id", "date", "metric", "dims_key", name="uq_metric_rows_identity"
        ),
        Index("ix_metric_rows_store_metric_date", "tenant_id", "store_id", "metric", "date"),
        Index("ix_metric_rows_level", "tenant_id", "store_id", "metric", "dims_level", "date"),
    )

    id: int | None = Field(default=None, sa_column=id_column())
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(64), nullable=False))
    date: dt.date = Field(sa_column=Column(Date, nullable=False))
    metric: str = Field(sa_column=Column(String(80), nullable=False))
    # Canonical form of the dimensions (sorted keys, compact JSON): the unique key's part.
    dims_key: str = Field(sa_column=Column(Text, nullable=False))
    # The dimension names alone ("channel,device"): the row's level of detail, so that a read
    # never adds a store total to its own breakdown.
    dims_level: str = Field(sa_column=Column(String(400), nullable=False, server_default=""))
    dimensions: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    value: float = Field(sa_column=Column(Float, nullable=False))
    source: str = Field(sa_column=Column(String(16), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class MetricCorrection(SQLModel, table=True):
    """The audit of a deletion of metric rows: who, when, what was asked and how many rows went
    (a file re-imported with mode=replace records one too)."""

    __tablename__ = "metric_corrections"
    __table_args__ = (Index("ix_metric_corrections_store", "tenant_id", "store_id", "created_at"),)

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(64), nullable=False))
    user_id: str = Field(sa_column=Column(String(64), nullable=False))
    key_id: str = Field(sa_column=Column(String(64), nullable=False))
    reason: str = Field(sa_column=Column(String(16), nullable=False))
    start: dt.date = Field(sa_column=Column(Date, nullable=False))
    end: dt.date = Field(sa_column=Column(Date, nullable=False))
    # None: every metric / every grain; a grain is its sorted keys ([] the store level).
    metrics: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    grain: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    import_job_id: str | None = Field(default=None, sa_column=Column(String(36), nullable=True))
    deleted: int = Field(sa_column=Column(Integer, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class BenchmarkRow(SQLModel, table=True):
    __tablename__ = "benchmark_rows"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id",
            "market",
            "category",
            "date",
            "metric",
            "dims_key",
            name="uq_benchmark_rows_identity",
        ),
    )

    id: int | None = Field(default=None, sa_column=id_column())
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    market: str = Field(sa_column=Column(String(2), nullable=False))
    category: str = Field(sa_column=Column(String(100), nullable=False))
    date: dt.date = Field(sa_column=Column(Date, nullable=False))
    metric: str = Field(sa_column=Column(String(80), nullable=False))
    dims_key: str = Field(sa_column=Column(Text, nullable=False))
    dimensions: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    value: float = Field(sa_column=Column(Float, nullable=False))
    value_kind: str = Field(sa_column=Column(String(16), nullable=False))
    source: str = Field(sa_column=Column(String(100), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class CompetitorRow(SQLModel, table=True):
    __tablename__ = "competitor_rows"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id",
            "store_id",
            "competitor_id",
            "date",
            "metric",
            "dims_key",
            name="uq_competitor_rows_identity",
        ),
    )

    id: int | None = Field(default=None, sa_column=id_column())
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(64), nullable=False))
    competitor_id: str = Field(sa_column=Column(String(64), nullable=False))
    competitor_name: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    date: dt.date = Field(sa_column=Column(Date, nullable=False))
    metric: str = Field(sa_column=Column(String(80), nullable=False))
    dims_key: str = Field(sa_column=Column(Text, nullable=False))
    dimensions: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    value: float = Field(sa_column=Column(Float, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class FxRate(SQLModel, table=True):
    """A tenant's own exchange rates (no outside calls): 1 unit of `base` = `rate` `quote`."""

    __tablename__ = "fx_rates"
    __table_args__ = (
        UniqueConstraint("tenant_id", "date", "base", "quote", name="uq_fx_rates_identity"),
    )

    id: int | None = Field(default=None, sa_column=id_column())
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    date: dt.date = Field(sa_column=Column(Date, nullable=False))
    base: str = Field(sa_column=Column(String(3), nullable=False))
    quote: str = Field(sa_column=Column(String(3), nullable=False))
    value: float = Field(sa_column=Column(Float, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ImportJob(SQLModel, table=True):
    """A file import; `lines_done` is the last line whose rows are committed (the resume point)."""

    __tablename__ = "import_jobs"

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    store_id: str = Field(sa_column=Column(String(64), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    format: str = Field(sa_column=Column(String(16), nullable=False))
    preset: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    file_path: str = Field(sa_column=Column(Text, nullable=False))
    file_name: str = Field(sa_column=Column(String(255), nullable=False))
    file_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    bytes_done: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    lines_done: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    rows_accepted: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    rows_updated: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    rows_duplicate: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    rows_rejected: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    options: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class ImportProblem(SQLModel, table=True):
    __tablename__ = "import_errors"
    __table_args__ = (Index("ix_import_errors_job_line", "job_id", "line"),)

    id: int | None = Field(default=None, sa_column=id_column())
    job_id: str = Field(sa_column=Column(String(36), nullable=False))
    line: int = Field(sa_column=Column(BigInteger, nullable=False))
    column: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    message: str = Field(sa_column=Column(Text, nullable=False))


class WebhookDelivery(SQLModel, table=True):
    """A platform's delivery, stored before it is processed; deduplicated on its delivery id.
    `payload` keeps only what aggregation needs (no names, addresses, e-mails)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id",
            "store_id",
            "platform",
            "delivery_id",
            name="uq_webhook_deliveries_identity",
        ),
        Index("ix_webhook_deliveries_pending", "status", "id"),
    )

    id: int | None = Field(default=None, sa_column=id_column())
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(64), nullable=False))
    platform: str = Field(sa_column=Column(String(32), nullable=False))
    delivery_id: str = Field(sa_column=Column(String(255), nullable=False))
    topic: str = Field(sa_column=Column(String(100), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    processed_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class OrderFact(SQLModel, table=True):
    """The latest state of one order, so that an order updated many times counts once."""

    __tablename__ = "order_facts"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "store_id", "platform", "order_id", name="uq_order_facts_identity"
        ),
        Index("ix_order_facts_day", "tenant_id", "store_id", "local_date"),
    )

    id: int | None = Field(default=None, sa_column=id_column())
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(64), nullable=False))
    platform: str = Field(sa_column=Column(String(32), nullable=False))
    order_id: str = Field(sa_column=Column(String(128), nullable=False))
    local_date: dt.date = Field(sa_column=Column(Date, nullable=False))
    channel: str = Field(sa_column=Column(String(32), nullable=False))
    gmv: float = Field(sa_column=Column(Float, nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    # A keyed hash of the customer: counts distinct buyers without keeping who they are.
    buyer_key: str = Field(sa_column=Column(String(64), nullable=False))
    cancelled: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    # The platform's timestamp of the state kept (null when the payload had none).
    source_updated_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class RefundFact(SQLModel, table=True):
    __tablename__ = "refund_facts"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "store_id", "platform", "refund_id", name="uq_refund_facts_identity"
        ),
        Index("ix_refund_facts_day", "tenant_id", "store_id", "local_date"),
    )

    id: int | None = Field(default=None, sa_column=id_column())
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(64), nullable=False))
    platform: str = Field(sa_column=Column(String(32), nullable=False))
    refund_id: str = Field(sa_column=Column(String(128), nullable=False))
    order_id: str = Field(sa_column=Column(String(128), nullable=False))
    local_date: dt.date = Field(sa_column=Column(Date, nullable=False))
    channel: str = Field(sa_column=Column(String(32), nullable=False))
    amount: float = Field(sa_column=Column(Float, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class SourceHealth(SQLModel, table=True):
    """Per store and source (api, import, webhook:<platform>): when it last delivered and how
    many deliveries failed or were rejected, so a feed that stopped is not read as sales that
    stopped."""

    __tablename__ = "source_health"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    store_id: str = Field(sa_column=Column(String(64), primary_key=True))
    source: str = Field(sa_column=Column(String(64), primary_key=True))
    last_delivery_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    last_failure_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    delivered: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    failed: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    rejected: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


# The tables this service's migrations own, shared ones included.
TABLES: list[Table] = [
    m.__table__  # type: ignore[union-attr]
    for m in (
        FxRate,
        ImportJob,
        ImportProblem,
        WebhookDelivery,
        OrderFact,
        RefundFact,
        SourceHealth,
        Tenant,
        User,
        Store,
        MetricRow,
        MetricCorrection,
        BenchmarkRow,
        CompetitorRow,
        AuthKey,
        OutboxMessage,
        ProcessedEvent,
        IdempotencyRecord,
    )
]
TABLE_NAMES = {t.name for t in TABLES}
