"""API models of diagnosis (separate from the tables)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.events.common import Baseline
from shared.jsonguard import FiniteFloat, StrictInt, SupportedDate
from shared.locales import fallback

SummaryLocale = Annotated[Literal["en", "zh-CN", "ja"], fallback(("en", "zh-CN", "ja"))]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DiagnosisRequest(_In):
    date: SupportedDate = Field(description="the store's local date to diagnose")
    baseline: Baseline | None = Field(
        default=None,
        description="omitted: the default, the median of the last 4 same weekdays outside "
        "festival periods (or the same phase a year before); the report's baseline_days and "
        "baseline_note say which days",
    )
    locale: SummaryLocale = "en"


class ReportListItem(BaseModel):
    id: str
    date: dt.date
    version: int
    baseline: str
    trigger: str
    data_complete: bool
    finding_count: int
    severities: list[str]
    summary: str
    created_at: dt.datetime


class ReportPage(BaseModel):
    items: list[ReportListItem]
    next_cursor: str | None


class RcaIn(_In):
    dimensions: list[str] = Field(min_length=1, max_length=16)
    rows: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=500_000,
        description="one leaf per row: its dimension values and real, predict (or real_num, "
        "real_den, predict_num, predict_den for a ratio KPI)",
    )


class RcaCause(BaseModel):
    element: dict[str, str]
    real: float
    predict: float
    change: float
    share_of_change: float
    leaves: int


class RcaOut(BaseModel):
    verdict: Literal["causes", "no_single_cause", "no_change"]
    root_causes: list[dict[str, str]] = Field(description="the set, most likely first (the CLI's)")
    causes: list[RcaCause]
    ratio: bool


class AnomalyPoint(_In):
    timestamp: str | StrictInt | FiniteFloat = Field(
        description="ISO 8601 date or date-time, or epoch s"
    )
    value: FiniteFloat | None = Field(description="null = a missing point")


class AnomaliesIn(_In):
    points: list[AnomalyPoint] = Field(min_length=1, max_length=1_000_000)
    mode: Literal["auto", "seasonal", "stream"] = Field(
        default="auto",
        description="seasonal: robust Holt-Winters (daily KPIs); stream: likelihood of surprise "
        "(high-frequency feeds); auto: stream for sub-daily series of 500 rows or more",
    )


class AnomalyScore(BaseModel):
    timestamp: str | int | float
    value: float | None
    anomaly_score: float
    label: int


class AnomaliesOut(BaseModel):
    points: list[AnomalyScore]
    warnings: list[str]


class TransitionIn(_In):
    action: Literal["acknowledge", "snooze", "resolve", "reopen"]
    until: AwareDatetime | None = Field(default=None, description="snooze: until when")
    note: str | None = Field(default=None, max_length=2000)


class TransitionOut(BaseModel):
    action: str
    from_status: str | None
    to_status: str
    actor: str
    note: str | None
    until: dt.datetime | None
    at: dt.datetime


class FindingOut(BaseModel):
    id: str
    store_id: str
    date: dt.date
    code: str
    metric: str
    dimensions: dict[str, str]
    owner: str
    severity: str
    title: str
    action: str
    evidence: dict[str, Any]
    expected_gmv_impact: float | None = Field(
        description="the part of the day's GMV change the finding's factor explains, in the "
        "store's currency (impact_currency); null = no direct GMV impact (ratings, refunds...)"
    )
    impact_currency: str | None = None
    impact_reporting: float | None = Field(
        default=None,
        description="expected_gmv_impact in the tenant's reporting currency; null when there "
        "is no impact or its exchange rate is missing (fx_missing says which)",
    )
    reporting_currency: str | None = None
    fx_missing: str | None = Field(
        default=None, description='the missing exchange rate, e.g. "CNY->USD on 2026-11-20"'
    )
    confidence: float | None
    priority: float = Field(
        description="|impact_reporting| x confidence. Triage orders by severity first, then "
        "impact_reporting (missing rates after the converted ones), then confidence"
    )
    status: str
    resolution: str | None
    snoozed_until: dt.datetime | None
    report_id: str | None
    report_version: int
    opened_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    history: list[TransitionOut] | None = None


class FindingGroup(BaseModel):
    """One cause (code, metric, dimensions) seen in one or more stores of one market, on the
    same or adjacent days, with a comparable magnitude."""

    code: str
    metric: str
    dimensions: dict[str, str]
    market: str | None = Field(description="the stores' market (ISO country)")
    start: dt.date
    end: dt.date
    owner: str
    severity: str
    title: str
    stores: int
    store_ids: list[str]
    findings: int
    finding_ids: list[str]
    expected_gmv_impact: float | None = Field(
        description="sum in impact_currency when every member has that one currency, else null"
    )
    impact_currency: str | None = None
    impact_reporting: float | None = Field(
        default=None, description="sum of the members' converted impacts (reporting currency)"
    )
    reporting_currency: str | None = None
    fx_missing: list[str] = Field(default_factory=list)
    priority: float


class FindingPage(BaseModel):
    items: list[FindingOut]
    groups: list[FindingGroup] | None = None
    next_cursor: str | None
