"""Tables of ingest: the registry (tenants, users, stores) and the metric rows."""

from __future__ import annotations

import datetime as dt
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
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


def _id_column() -> Column[int]:
    return Column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )


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
    )

    id: int | None = Field(default=None, sa_column=_id_column())
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(64), nullable=False))
    date: dt.date = Field(sa_column=Column(Date, nullable=False))
    metric: str = Field(sa_column=Column(String(80), nullable=False))
    # Canonical form of the dimensions (sorted keys, compact JSON): the unique key's part.
    dims_key: str = Field(sa_column=Column(Text, nullable=False))
    dimensions: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    value: float = Field(sa_column=Column(Float, nullable=False))
    source: str = Field(sa_column=Column(String(16), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


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

    id: int | None = Field(default=None, sa_column=_id_column())
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

    id: int | None = Field(default=None, sa_column=_id_column())
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


# The tables this service's migrations own, shared ones included.
TABLES: list[Table] = [
    m.__table__  # type: ignore[union-attr]
    for m in (
        Tenant,
        User,
        Store,
        MetricRow,
        BenchmarkRow,
        CompetitorRow,
        AuthKey,
        OutboxMessage,
        ProcessedEvent,
        IdempotencyRecord,
    )
]
TABLE_NAMES = {t.name for t in TABLES}
