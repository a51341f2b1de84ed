"""Events published by diagnosis on topic "diagnosis.v1": reports and the findings' lifecycle.

All are store-scoped. A report is redone when late data arrives: the new one has the same
(store, date) and a higher report_version; consumers keep the highest. A finding's events carry
its full state, so a consumer that missed `finding_opened` can upsert from `finding_updated`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import ClassVar, Literal, Self

from pydantic import Field

from shared.events import examples as ex
from shared.events.common import (
    Baseline,
    Dimensions,
    Direction,
    EventPart,
    FindingStatus,
    FiniteFloat,
    Locale,
    MetricName,
    NonEmptyStr,
    Owner,
    Probability,
    Resolution,
    Severity,
    Slug,
    StoreId,
)
from shared.events.envelope import Event

# --- parts ---------------------------------------------------------------------------------------


class KpiV1(EventPart):
    """One KPI of a store-day against its baseline and the market.

    Changes are fractions (-0.12 = down 12%), null when undefined (no baseline, or a zero one).
    """

    metric: MetricName
    value: FiniteFloat
    baseline: FiniteFloat | None = Field(description="the baseline's value of the metric")
    change: FiniteFloat | None = Field(description="(value - baseline) / baseline")
    market_change: FiniteFloat | None = Field(
        description="the market benchmark's change over the same period; null without benchmark"
    )
    relative_change: FiniteFloat | None = Field(
        description="the change net of the market's: (1 + change) / (1 + market_change) - 1"
    )
    anomaly_score: FiniteFloat | None = Field(description="higher = more unusual; null if unscored")
    is_anomaly: bool
    direction: Direction


# --- reports -------------------------------------------------------------------------------------


class DiagnosisCompletedV1(Event):
    """A store-day was diagnosed (automatically at the day's cut-off, on late data, or on request).

    finding_ids lists the findings the report raised or confirmed; their content comes with the
    `finding_*` events. data_complete is false while some expected source has not reported.
    """

    TYPE: ClassVar[str] = "diagnosis.diagnosis_completed"
    VERSION: ClassVar[int] = 1
    type: Literal["diagnosis.diagnosis_completed"] = "diagnosis.diagnosis_completed"
    version: Literal[1] = 1

    store_id: StoreId
    report_id: uuid.UUID
    date: dt.date = Field(description="the store's local calendar date diagnosed")
    report_version: int = Field(ge=1, description="1, then +1 each time late data redoes it")
    baseline: Baseline
    summary: str = Field(description="plain-language summary, in summary_locale")
    summary_locale: Locale = "en"
    kpis: list[KpiV1]
    finding_ids: list[uuid.UUID]
    data_complete: bool

    @classmethod
    def example(cls) -> Self:
        return cls(
            event_id=ex.example_event_id(11),
            occurred_at=ex.example_time(4, 5, 10),
            tenant_id=ex.EXAMPLE_TENANT,
            store_id=ex.EXAMPLE_STORE,
            report_id=ex.EXAMPLE_REPORT_ID,
            date=ex.EXAMPLE_METRICS_DATE,
            report_version=1,
            baseline="same_weekday_last_week",
            summary=(
                "GMV fell 3.3% to 29,873.50 USD while visitors rose 3.6%: conversion fell 6.8% "
                "although the market's rose 2.1%. Paid-search click-through dropped 20.9%; "
                "refresh the main image and ad creative (designer)."
            ),
            summary_locale="en",
            kpis=[
                KpiV1(
                    metric="gmv",
                    value=29873.5,
                    baseline=30900.0,
                    change=-0.0332,
                    market_change=0.018,
                    relative_change=-0.0503,
                    anomaly_score=1.1,
                    is_anomaly=False,
                    direction="down",
                ),
                KpiV1(
                    metric="visitors",
                    value=18240,
                    baseline=17600,
                    change=0.0364,
                    market_change=-0.004,
                    relative_change=0.0405,
                    anomaly_score=0.6,
                    is_anomaly=False,
                    direction="up",
                ),
                KpiV1(
                    metric="cvr",
                    value=0.021985,
                    baseline=0.0236,
                    change=-0.0684,
                    market_change=0.021,
                    relative_change=-0.0876,
                    anomaly_score=2.4,
                    is_anomaly=False,
                    direction="down",
                ),
                KpiV1(
                    metric="aov",
                    value=74.5,
                    baseline=74.2,
                    change=0.004,
                    market_change=None,
                    relative_change=None,
                    anomaly_score=None,
                    is_anomaly=False,
                    direction="flat",
                ),
                KpiV1(
                    metric="ctr",
                    value=0.0125,
                    baseline=0.0158,
                    change=-0.2089,
                    market_change=-0.012,
                    relative_change=-0.1992,
                    anomaly_score=4.2,
                    is_anomaly=True,
                    direction="down",
                ),
            ],
            finding_ids=[ex.EXAMPLE_FINDING_ID, ex.EXAMPLE_SECOND_FINDING_ID],
            data_complete=True,
        )


# --- findings ------------------------------------------------------------------------------------


class _FindingState(Event):
    """A finding's full state: what moved, where, whose it is and what to do."""

    store_id: StoreId
    finding_id: uuid.UUID
    date: dt.date = Field(description="the store's local date the finding is about")
    code: Slug = Field(description="machine code of the rule that fired, e.g. ctr_drop")
    severity: Severity
    metric: MetricName
    dimensions: Dimensions
    owner: Owner
    title: NonEmptyStr
    action: NonEmptyStr = Field(description="what the owner should do")
    status: FindingStatus
    expected_gmv_impact: FiniteFloat | None = Field(
        description="expected GMV at stake per day, in the store's currency (negative = loss)"
    )
    confidence: Probability | None
    report_id: uuid.UUID | None = Field(
        default=None, description="the report that last raised or changed the finding"
    )

    @classmethod
    def _example_fields(cls) -> dict[str, object]:
        return {
            "tenant_id": ex.EXAMPLE_TENANT,
            "store_id": ex.EXAMPLE_STORE,
            "finding_id": ex.EXAMPLE_FINDING_ID,
            "date": ex.EXAMPLE_METRICS_DATE,
            "code": "ctr_drop",
            "severity": "high",
            "metric": "ctr",
            "dimensions": {"channel": "paid_search"},
            "owner": "designer",
            "title": "Paid-search click-through down 20.9% vs last Monday",
            "action": (
                "Refresh the main image and the ad creative of the top paid-search products; "
                "A/B test the new banner copy."
            ),
            "expected_gmv_impact": -1850.0,
            "confidence": 0.82,
            "report_id": ex.EXAMPLE_REPORT_ID,
        }


class FindingOpenedV1(_FindingState):
    """A finding was opened and handed to its owner."""

    TYPE: ClassVar[str] = "diagnosis.finding_opened"
    VERSION: ClassVar[int] = 1
    type: Literal["diagnosis.finding_opened"] = "diagnosis.finding_opened"
    version: Literal[1] = 1

    @classmethod
    def example(cls) -> Self:
        return cls.model_validate(
            {
                **cls._example_fields(),
                "event_id": ex.example_event_id(12),
                "occurred_at": ex.example_time(4, 5, 10),
                "status": "open",
            }
        )


class FindingUpdatedV1(_FindingState):
    """A finding changed (acknowledged, snoozed, re-rated on new data); carries its full state."""

    TYPE: ClassVar[str] = "diagnosis.finding_updated"
    VERSION: ClassVar[int] = 1
    type: Literal["diagnosis.finding_updated"] = "diagnosis.finding_updated"
    version: Literal[1] = 1

    @classmethod
    def example(cls) -> Self:
        return cls.model_validate(
            {
                **cls._example_fields(),
                "event_id": ex.example_event_id(13),
                "occurred_at": ex.example_time(4, 14, 20),
                "status": "acknowledged",
            }
        )


class FindingClosedV1(_FindingState):
    """A finding was closed; its status is then always "resolved", resolution says how."""

    TYPE: ClassVar[str] = "diagnosis.finding_closed"
    VERSION: ClassVar[int] = 1
    type: Literal["diagnosis.finding_closed"] = "diagnosis.finding_closed"
    version: Literal[1] = 1

    status: Literal["resolved"] = "resolved"
    resolution: Resolution

    @classmethod
    def example(cls) -> Self:
        return cls.model_validate(
            {
                **cls._example_fields(),
                "event_id": ex.example_event_id(14),
                "occurred_at": ex.example_time(10, 5, 10),
                "status": "resolved",
                "resolution": "resolved",
            }
        )
