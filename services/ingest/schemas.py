"""API models of ingest (kept apart from the tables: table models skip validation)."""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Generic, Literal, TypeVar

import pycountry
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from shared import grains
from shared.events import common
from shared.events.common import (
    COUNT_METRICS,
    MONEY_METRICS,
    SCORE_METRICS,
    Platform,
    Role,
    StoreStatus,
)
from shared.jsonguard import SupportedDate

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]

BASE_METRICS = frozenset(common.RAW_METRICS)
DERIVED_METRICS = frozenset(common.DERIVED_METRICS)
# Benchmarks and competitor figures may be ratios too: that is how markets are published.
BENCHMARK_METRICS = BASE_METRICS | DERIVED_METRICS
CHANNELS = frozenset(common.CHANNELS)
DIMENSION_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_DIMENSIONS = 12
MAX_DIMENSION_VALUE = 200


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _err(kind: str, msg: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, msg, ctx or None)


def check_timezone(v: str) -> str:
    if v not in _timezones():
        raise _err("timezone", "not an IANA timezone name (e.g. Asia/Shanghai)")
    return v


def check_currency(v: str) -> str:
    if len(v) != 3 or v.upper() != v or pycountry.currencies.get(alpha_3=v) is None:
        raise _err("currency", "not an ISO 4217 currency code (e.g. USD, CNY)")
    return v


def check_market(v: str) -> str:
    if len(v) != 2 or v.upper() != v or pycountry.countries.get(alpha_2=v) is None:
        raise _err("market", "not an ISO 3166-1 alpha-2 country code (e.g. US, CN)")
    return v


def check_metric_name(v: str, known: frozenset[str] = BASE_METRICS) -> str:
    if v in known:
        return v
    if v.startswith("custom.") and re.fullmatch(r"custom\.[a-z][a-z0-9_.]{0,63}", v):
        return v
    if v in DERIVED_METRICS:
        raise _err(
            "metric", "{metric} is derived from base metrics; send its parts instead", metric=v
        )
    raise _err(
        "metric", "unknown metric {metric}; use a known name or the custom. prefix", metric=v
    )


def check_value(metric: str | None, v: float) -> float:
    if not math.isfinite(v):
        raise _err("finite_number", "must be a finite number")
    if metric is None:
        return v
    if metric in COUNT_METRICS:
        if v < 0:
            raise _err("non_negative", "a count cannot be negative")
        if v != int(v):
            raise _err("integer_count", "a count must be a whole number")
    elif metric in MONEY_METRICS and v < 0:
        raise _err("non_negative", "an amount cannot be negative")
    elif metric in SCORE_METRICS and not 1 <= v <= 5:
        raise _err("dsr_range", "a DSR score lies within 1 to 5")
    return v


def check_dimensions(v: dict[str, str]) -> dict[str, str]:
    # Rows of one request share a handful of dimension sets: check each set once.
    _checked_dimensions(tuple(v.items()))
    return v


@lru_cache(maxsize=4096)
def _checked_dimensions(items: tuple[tuple[str, str], ...]) -> None:
    v = dict(items)
    if len(v) > MAX_DIMENSIONS:
        raise _err("dimensions", "at most {n} dimensions", n=MAX_DIMENSIONS)
    for key, value in v.items():
        if not DIMENSION_KEY.match(key):
            raise _err(
                "dimension_key", "dimension name '{key}' must match [a-z][a-z0-9_]*", key=key
            )
        if not value or len(value) > MAX_DIMENSION_VALUE:
            raise _err("dimension_value", "dimension {key} must be 1 to 200 characters", key=key)
        if key == "channel" and value not in CHANNELS:
            raise _err(
                "channel",
                "unknown channel '{value}'; one of: {allowed}",
                value=value,
                allowed=", ".join(sorted(CHANNELS)),
            )
    return None


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def check_partition_dimensions(v: list[str] | None) -> list[str] | None:
    if v is None:
        return v
    reg = grains.registry()
    for key in v:
        if not DIMENSION_KEY.match(key):
            raise _err(
                "dimension_key", "dimension name '{key}' must match [a-z][a-z0-9_]*", key=key
            )
        if key in reg.slices:
            raise _err(
                "dimension_slice",
                "'{key}' is an analysis slice (its rows never add up to the store)",
                key=key,
            )
        if key == grains.TRAFFIC_TYPE:
            raise _err("dimension_derived", "traffic_type is derived from channel")
    if len(set(v)) != len(v):
        raise _err("dimension_repeated", "a dimension is named twice")
    return v


PartitionDimensions = Annotated[
    list[str],
    Field(
        max_length=6,
        description="the store's own dimensions whose rows add up to its total (beside "
        "channel, device and region), e.g. ['shop_channel']",
    ),
]


class StoreCreate(_In):
    id: Slug
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    platform: Platform
    timezone: str
    currency: str
    market: str
    category: Annotated[str, StringConstraints(min_length=1, max_length=100)] = "general"
    webhook_secret: Annotated[str, StringConstraints(min_length=8, max_length=500)] | None = None
    partition_dimensions: PartitionDimensions = Field(default_factory=list)

    _tz = field_validator("timezone")(check_timezone)
    _parts = field_validator("partition_dimensions")(check_partition_dimensions)
    _cur = field_validator("currency")(check_currency)
    _mkt = field_validator("market")(check_market)


class StoreUpdate(_In):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    timezone: str | None = None
    currency: str | None = None
    market: str | None = None
    category: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    status: StoreStatus | None = None
    webhook_secret: Annotated[str, StringConstraints(min_length=8, max_length=500)] | None = None
    partition_dimensions: PartitionDimensions | None = None

    _parts = field_validator("partition_dimensions")(check_partition_dimensions)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else check_timezone(v)

    @field_validator("currency")
    @classmethod
    def _cur(cls, v: str | None) -> str | None:
        return None if v is None else check_currency(v)

    @field_validator("market")
    @classmethod
    def _mkt(cls, v: str | None) -> str | None:
        return None if v is None else check_market(v)


class StoreOut(BaseModel):
    id: str
    name: str
    platform: Platform
    timezone: str
    currency: str
    market: str
    category: str
    status: StoreStatus
    created_at: datetime
    updated_at: datetime
    has_webhook_secret: bool
    partition_dimensions: list[str] = Field(default_factory=list)
    # Shown once, in the answer to the request that created it (generic platform).
    webhook_secret: str | None = None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class MetricRowIn(_In):
    date: SupportedDate
    metric: str
    value: float
    dimensions: dict[str, str] = Field(default_factory=dict)

    _metric = field_validator("metric")(check_metric_name)
    _dims = field_validator("dimensions")(check_dimensions)

    @field_validator("value", mode="after")
    @classmethod
    def _value(cls, v: float, info: Any) -> float:
        return check_value(info.data.get("metric"), v)


class MetricsIn(_In):
    rows: list[MetricRowIn] = Field(min_length=1)


class IngestResult(BaseModel):
    batch_id: str
    accepted: int
    duplicates: int
    updated: int


class BenchmarkRowIn(_In):
    date: SupportedDate
    metric: str
    value: float

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        return check_metric_name(v, BENCHMARK_METRICS)

    @field_validator("value", mode="after")
    @classmethod
    def _value(cls, v: float, info: Any) -> float:
        metric = info.data.get("metric")
        if metric in COUNT_METRICS:
            # A market's count may be an index (value_kind "index": Sycm's 流量指数 1.02):
            # whole numbers are checked by the batch, which knows its value_kind.
            check_value(None, v)
            if v < 0:
                raise _err("non_negative", "a count cannot be negative")
            return v
        return check_value(metric if metric in BASE_METRICS else None, v)


class BenchmarksIn(_In):
    market: str
    category: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    value_kind: Literal["absolute", "index"] = "absolute"
    # Who publishes the figures (e.g. "sycm", "a panel"); stored with every row.
    provider: Annotated[str, StringConstraints(min_length=1, max_length=100)] = "tenant"
    rows: list[BenchmarkRowIn] = Field(min_length=1)

    _mkt = field_validator("market")(check_market)


class CompetitorRowIn(BenchmarkRowIn):
    dimensions: dict[str, str] = Field(default_factory=dict)

    _dims = field_validator("dimensions")(check_dimensions)


class CompetitorMetricsIn(_In):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    rows: list[CompetitorRowIn] = Field(min_length=1)


class TenantCreate(_In):
    id: Slug
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    reporting_currency: str = "USD"

    _cur = field_validator("reporting_currency")(check_currency)


class TenantOut(BaseModel):
    id: str
    name: str
    reporting_currency: str
    created_at: datetime


class UserCreate(_In):
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    tenant_id: Slug | None = None


class UserOut(BaseModel):
    id: str
    tenant_id: str
    email: str
    name: str
    created_at: datetime


class ApiKeyCreate(_In):
    user_id: Annotated[str, StringConstraints(max_length=64)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    role: Role
    store_ids: list[Slug] | None = Field(default=None, min_length=1, max_length=1000)


class ApiKeyOut(BaseModel):
    id: str
    tenant_id: str
    user_id: str
    name: str
    role: Role
    store_ids: list[str] | None
    created_at: datetime
    revoked_at: datetime | None = None
    # The secret, shown once in the answer to the request that created it.
    key: str | None = None


class FxRateIn(_In):
    date: SupportedDate
    base: str
    quote: str
    rate: float = Field(gt=0, allow_inf_nan=False)

    _base = field_validator("base")(check_currency)
    _quote = field_validator("quote")(check_currency)


class FxRatesIn(_In):
    rows: list[FxRateIn] = Field(min_length=1, max_length=50_000)


class SeriesPoint(BaseModel):
    date: dt.date
    dimensions: dict[str, str | None]
    values: dict[str, float | None]


class RollupPoint(BaseModel):
    date: dt.date
    store_id: str | None = None
    values: dict[str, float | None]


class Rollup(BaseModel):
    currency: str
    items: list[RollupPoint]


class ImportJobOut(BaseModel):
    id: str
    store_id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    format: str
    preset: str | None
    file_name: str
    file_size: int
    bytes_done: int
    lines_done: int
    progress: float
    rows_accepted: int
    rows_updated: int
    rows_duplicate: int
    rows_rejected: int
    problems_kept: int
    warnings: list[str]
    mode: Literal["upsert", "replace"] = "upsert"
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class ImportProblemOut(BaseModel):
    line: int
    column: str | None
    message: str


class PresetOut(BaseModel):
    name: str
    description: str
    layout: str
    date_column: str
    columns: dict[str, str]
    sample: str


class SourceHealthOut(BaseModel):
    source: str
    last_delivery_at: datetime | None
    last_failure_at: datetime | None
    delivered: int
    failed: int
    rejected: int
    last_error: str | None


class StoreHealth(BaseModel):
    store_id: str
    status: Literal["ok", "stale", "no_data"]
    checked_at: datetime
    last_delivery_at: datetime | None
    last_data_date: dt.date | None
    window_start: dt.date
    window_end: dt.date
    missing_days: list[dt.date]
    sources: list[SourceHealthOut]


class CorrectionOut(BaseModel):
    """A deletion of metric rows, as audited."""

    id: str
    store_id: str
    reason: Literal["delete", "replace"]
    start: dt.date
    end: dt.date
    metrics: list[str] | None = Field(description="None: every metric")
    grain: list[str] | None = Field(
        description="the level of detail deleted (its dimension names; [] the store level); "
        "None: every level"
    )
    deleted: int = Field(description="rows deleted (0 when they were already gone)")
    dates: list[dt.date] = Field(default_factory=list, description="days that lost rows")
    user_id: str
    import_job_id: str | None = None
    created_at: datetime


class MarketPoint(BaseModel):
    date: dt.date
    dimensions: dict[str, str | None] = Field(default_factory=dict)
    values: dict[str, float | None]


class MarketSeries(BaseModel):
    """A market's (or a competitor's) figures, ratios derived from their parts when not posted."""

    value_kinds: dict[str, str] = Field(
        default_factory=dict, description="metric -> absolute | index (indices: change only)"
    )
    items: list[MarketPoint]
    next_cursor: str | None = None
