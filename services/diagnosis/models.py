"""Tables of diagnosis: its own copy of the stores and series (from ingest events), campaign
windows (from campaigns events), the store-days to diagnose, reports with their versions,
findings with their lifecycle and the history of their transitions."""

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

from services.diagnosis.notify.models import NOTIFY_TABLES
from shared.auth import AuthKey
from shared.db import UTCDateTime, id_column
from shared.idempotency import IdempotencyRecord
from shared.outbox import OutboxMessage, ProcessedEvent


class KnownStore(SQLModel, table=True):
    """Diagnosis' own copy of a store, from ingest.store_registered/updated."""

    __tablename__ = "diag_stores"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    store_id: str = Field(sa_column=Column(String(128), primary_key=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    platform: str = Field(sa_column=Column(String(32), nullable=False))
    timezone: str = Field(sa_column=Column(String(64), nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    market: str = Field(sa_column=Column(String(2), nullable=False))
    category: str = Field(sa_column=Column(String(200), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    # The store's own partitioning dimensions (shared/grains.py), beside the registry's.
    partition_dimensions: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    # The event time of the state we hold: an older event never overwrites a newer one.
    as_of: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class KnownTenant(SQLModel, table=True):
    """Diagnosis' own copy of a tenant, from ingest.tenant_created/updated: the currency triage
    converts impacts to. A tenant not heard of yet reads as USD (ingest's default)."""

    __tablename__ = "diag_tenants"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    reporting_currency: str = Field(sa_column=Column(String(3), nullable=False))
    as_of: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class FxRateRow(SQLModel, table=True):
    """A tenant's exchange rate, from ingest.fx_rates_ingested: 1 `base` = `value` `quote` on
    `date`. A day converts at the latest rate on or before it, as ingest's rollup does."""

    __tablename__ = "diag_fx_rates"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    base: str = Field(sa_column=Column(String(3), primary_key=True))
    quote: str = Field(sa_column=Column(String(3), primary_key=True))
    date: dt.date = Field(sa_column=Column(Date, primary_key=True))
    value: float = Field(sa_column=Column(Float, nullable=False))


class SeriesRow(SQLModel, table=True):
    """One metric row of a store: identity (tenant, store, date, metric, canonical dimensions).

    On SQLite the table is its primary key's B-tree (WITHOUT ROWID, migration 0003): a
    store-day's rows are read in place, with no rowid lookup per row."""

    __tablename__ = "diag_series"
    __table_args__ = {"sqlite_with_rowid": False}

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    store_id: str = Field(sa_column=Column(String(128), primary_key=True))
    date: dt.date = Field(sa_column=Column(Date, primary_key=True))
    metric: str = Field(sa_column=Column(String(80), primary_key=True))
    # Canonical dimensions: JSON with sorted keys, "{}" for the store total.
    dims: str = Field(sa_column=Column(Text, primary_key=True))
    value: float = Field(sa_column=Column(Float, nullable=False))


class BenchmarkRow(SQLModel, table=True):
    __tablename__ = "diag_benchmarks"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    market: str = Field(sa_column=Column(String(2), primary_key=True))
    category: str = Field(sa_column=Column(String(200), primary_key=True))
    date: dt.date = Field(sa_column=Column(Date, primary_key=True))
    metric: str = Field(sa_column=Column(String(80), primary_key=True))
    value: float = Field(sa_column=Column(Float, nullable=False))
    value_kind: str = Field(sa_column=Column(String(16), nullable=False))


class CompetitorRow(SQLModel, table=True):
    __tablename__ = "diag_competitors"

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    store_id: str = Field(sa_column=Column(String(128), primary_key=True))
    competitor_id: str = Field(sa_column=Column(String(128), primary_key=True))
    date: dt.date = Field(sa_column=Column(Date, primary_key=True))
    metric: str = Field(sa_column=Column(String(80), primary_key=True))
    dims: str = Field(sa_column=Column(Text, primary_key=True))
    value: float = Field(sa_column=Column(Float, nullable=False))


class CampaignWindowRow(SQLModel, table=True):
    """A store's campaign, from campaigns.campaign_created/updated: context for its days."""

    __tablename__ = "diag_campaigns"
    __table_args__ = (Index("ix_diag_campaigns_store", "tenant_id", "store_id", "start"),)

    campaign_id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(128), nullable=False))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    event: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    start: dt.date = Field(sa_column=Column(Date, nullable=False))
    end: dt.date = Field(sa_column=Column(Date, nullable=False))
    phases: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    as_of: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class StoreDayState(SQLModel, table=True):
    """The schedule: one row per store-day with data (or due by the clock). A store-day is due
    when it was never diagnosed, or its data changed after the last diagnosis read it; a worker
    claims it (claimed_until, a lease) so that two pods never diagnose it at once."""

    __tablename__ = "diag_store_days"
    __table_args__ = (Index("ix_diag_store_days_due", "diagnosed_version", "date"),)

    tenant_id: str = Field(sa_column=Column(String(64), primary_key=True))
    store_id: str = Field(sa_column=Column(String(128), primary_key=True))
    date: dt.date = Field(sa_column=Column(Date, primary_key=True))
    # Bumped whenever rows of the day (or its market/competitor data) change.
    data_version: int = Field(sa_column=Column(Integer, nullable=False))
    data_changed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # data_version the newest automatic diagnosis read; 0 = never diagnosed automatically.
    diagnosed_data_version: int = Field(sa_column=Column(Integer, nullable=False))
    diagnosed_version: int = Field(sa_column=Column(Integer, nullable=False))
    claimed_by: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    claimed_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class Report(SQLModel, table=True):
    __tablename__ = "diag_reports"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "store_id", "date", "version", name="uq_diag_reports_version"
        ),
    )

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(128), nullable=False))
    date: dt.date = Field(sa_column=Column(Date, nullable=False))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    baseline: str = Field(sa_column=Column(String(32), nullable=False))
    trigger: str = Field(sa_column=Column(String(16), nullable=False))
    data_complete: bool = Field(sa_column=Column(Boolean, nullable=False))
    finding_count: int = Field(sa_column=Column(Integer, nullable=False))
    # The report document (kpis, decomposition, root_causes, findings, context, summaries).
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class FindingRow(SQLModel, table=True):
    """A finding: one per (store, day, code, metric, dimensions), enforced by the database, so
    a replayed event or a late-data re-run updates it and never opens a second one."""

    __tablename__ = "diag_findings"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id",
            "store_id",
            "date",
            "code",
            "metric",
            "dims",
            name="uq_diag_findings_problem",
        ),
        Index(
            "ix_diag_findings_triage",
            "tenant_id",
            "status",
            "severity_rank",
            "triage_tier",
            "triage_impact",
        ),
        Index("ix_diag_findings_store_day", "tenant_id", "store_id", "date"),
        Index("ix_diag_findings_currency", "tenant_id", "impact_currency", "date"),
    )

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    store_id: str = Field(sa_column=Column(String(128), nullable=False))
    date: dt.date = Field(sa_column=Column(Date, nullable=False))
    code: str = Field(sa_column=Column(String(64), nullable=False))
    metric: str = Field(sa_column=Column(String(80), nullable=False))
    dims: str = Field(sa_column=Column(Text, nullable=False))
    owner: str = Field(sa_column=Column(String(32), nullable=False))
    severity: str = Field(sa_column=Column(String(16), nullable=False))
    title: str = Field(sa_column=Column(Text, nullable=False))
    action: str = Field(sa_column=Column(Text, nullable=False))
    evidence: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    expected_gmv_impact: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    confidence: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    # |impact in the reporting currency| x confidence (0 without one): the money at stake.
    priority: float = Field(sa_column=Column(Float, nullable=False))
    # Triage (service.triage_fields): severity first, then the impact in the tenant's
    # reporting currency (a finding whose rate is missing after the converted ones), then
    # confidence. Kept on the row, and redone when rates or the reporting currency arrive.
    impact_currency: str | None = Field(default=None, sa_column=Column(String(3), nullable=True))
    reporting_currency: str | None = Field(default=None, sa_column=Column(String(3), nullable=True))
    impact_reporting: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    fx_missing: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    severity_rank: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    # 0: in the reporting currency (or no GMV impact); 1: its exchange rate is missing
    triage_tier: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    # |impact_reporting|, 0 when there is none
    triage_impact: float = Field(
        default=0.0, sa_column=Column(Float, nullable=False, server_default="0")
    )
    status: str = Field(sa_column=Column(String(16), nullable=False))
    resolution: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    snoozed_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    report_id: str | None = Field(default=None, sa_column=Column(String(36), nullable=True))
    report_version: int = Field(sa_column=Column(Integer, nullable=False))
    opened_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class FindingTransition(SQLModel, table=True):
    """Who moved a finding, when, from what to what (the system too: opened, superseded...)."""

    __tablename__ = "diag_finding_transitions"
    __table_args__ = (Index("ix_diag_finding_transitions_finding", "finding_id"),)

    id: int | None = Field(default=None, sa_column=id_column())
    finding_id: str = Field(sa_column=Column(String(36), nullable=False))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False))
    action: str = Field(sa_column=Column(String(32), nullable=False))
    from_status: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    to_status: str = Field(sa_column=Column(String(16), nullable=False))
    actor: str = Field(sa_column=Column(String(64), nullable=False))
    key_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


# The tables this service's migrations own, shared ones included.
TABLES: list[Table] = [
    m.__table__  # type: ignore[union-attr]
    for m in (
        KnownTenant,
        FxRateRow,
        KnownStore,
        SeriesRow,
        BenchmarkRow,
        CompetitorRow,
        CampaignWindowRow,
        StoreDayState,
        Report,
        FindingRow,
        FindingTransition,
        AuthKey,
        OutboxMessage,
        ProcessedEvent,
        IdempotencyRecord,
    )
] + NOTIFY_TABLES  # notifications' tables (services/diagnosis/notify, revision 0002)
TABLE_NAMES = {t.name for t in TABLES}
