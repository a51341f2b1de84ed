"""Events published by ingest on topic "ingest.v1": the registry and the data that arrives.

Tenant and API-key events are tenant-scoped (store_id is null, the partition key is the tenant);
store, metric and competitor events carry the store_id; benchmarks are market data of the tenant.
Every event carries the full state a consumer needs (event-carried state transfer): a consumer
upserts from a `*_updated` event exactly as from a `*_created` one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from shared.events import examples as ex
from shared.events.common import (
    Count,
    CountryCode,
    CurrencyCode,
    DimensionName,
    Dimensions,
    EventPart,
    ExternalId,
    FiniteFloat,
    HexLookup,
    HexSha256,
    IngestSource,
    MetricName,
    NonEmptyStr,
    Platform,
    Role,
    StoreId,
    StoreStatus,
    Timezone,
    ValueKind,
)
from shared.events.envelope import Event

# --- parts ---------------------------------------------------------------------------------------


class MetricRowV1(EventPart):
    """One metric row; its identity is (store, date, metric, dimensions)."""

    date: dt.date = Field(description="the store's local calendar date")
    metric: MetricName
    value: FiniteFloat
    dimensions: Dimensions


class MetricKeyV1(EventPart):
    """A metric row's identity (store, date, metric, dimensions), without its value."""

    date: dt.date = Field(description="the store's local calendar date")
    metric: MetricName
    dimensions: Dimensions


class BenchmarkRowV1(EventPart):
    """One market benchmark row of a (market, category)."""

    date: dt.date
    metric: MetricName
    value: FiniteFloat


class FxRateV1(EventPart):
    """One exchange rate of a tenant: 1 unit of `base` = `rate` units of `quote` on `date`."""

    date: dt.date
    base: CurrencyCode
    quote: CurrencyCode
    rate: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Chunked(Event):
    """A batch split into messages well under the broker's limit (see shared.events.chunking).

    Chunks of one batch share batch_id and are numbered 0..chunks-1; a consumer knows the batch
    is complete once it has seen `chunks` distinct chunk numbers.
    """

    batch_id: uuid.UUID
    chunk: int = Field(ge=0, description="0-based number of this chunk in the batch")
    chunks: int = Field(ge=1, description="number of chunks the batch was split into")

    @model_validator(mode="after")
    def _chunk_in_range(self) -> Self:
        if self.chunk >= self.chunks:
            raise ValueError(f"chunk {self.chunk} out of range for {self.chunks} chunks")
        return self


# --- tenants -------------------------------------------------------------------------------------


class _TenantState(Event):
    store_id: None = None
    name: NonEmptyStr
    reporting_currency: CurrencyCode = Field(description="ISO 4217 currency reports convert to")


class TenantCreatedV1(_TenantState):
    """A tenant (a brand, or an agency) was created."""

    TYPE: ClassVar[str] = "ingest.tenant_created"
    VERSION: ClassVar[int] = 1
    type: Literal["ingest.tenant_created"] = "ingest.tenant_created"
    version: Literal[1] = 1

    @classmethod
    def example(cls) -> Self:
        return cls(
            event_id=ex.example_event_id(1),
            occurred_at=ex.example_time(1, 9),
            tenant_id=ex.EXAMPLE_TENANT,
            name="Demo Apparel Co.",
            reporting_currency=ex.EXAMPLE_CURRENCY,
        )


class TenantUpdatedV1(_TenantState):
    """A tenant's name or reporting currency changed; carries the full new state."""

    TYPE: ClassVar[str] = "ingest.tenant_updated"
    VERSION: ClassVar[int] = 1
    type: Literal["ingest.tenant_updated"] = "ingest.tenant_updated"
    version: Literal[1] = 1

    @classmethod
    def example(cls) -> Self:
        return cls(
            event_id=ex.example_event_id(2),
            occurred_at=ex.example_time(1, 9, 30),
            tenant_id=ex.EXAMPLE_TENANT,
            name="Demo Apparel Group",
            reporting_currency=ex.EXAMPLE_CURRENCY,
        )


# --- API keys ------------------------------------------------------------------------------------


class ApiKeyCreatedV1(Event):
    """An API key was issued: every service stores it to authenticate requests locally.

    The token itself never travels. `lookup` (= secret_hash[:16]) finds the key, then the full
    sha256 is compared in constant time.
    """

    TYPE: ClassVar[str] = "ingest.api_key_created"
    VERSION: ClassVar[int] = 1
    type: Literal["ingest.api_key_created"] = "ingest.api_key_created"
    version: Literal[1] = 1

    store_id: None = None
    key_id: uuid.UUID
    user_id: uuid.UUID = Field(description="the user of the tenant the key belongs to")
    name: NonEmptyStr
    role: Role
    # Optional (added in v1, compatible): the display name of the key's user, so services
    # that show who did what (content's audit) name people without reading ingest's tables.
    user_name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None, description="the display name of the key's user"
    )
    # min_length=1: an empty list would read as "no store" to one consumer and, through a falsy
    # check, as "every store" to another; null is the one way to say "every store".
    store_ids: Annotated[list[StoreId], Field(min_length=1)] | None = Field(
        description="stores the key may access; null = every store of the tenant"
    )
    lookup: HexLookup = Field(description="first 16 hex chars of sha256(token): the public index")
    secret_hash: HexSha256 = Field(description="hex sha256 of the token")
    created_at: AwareDatetime

    @model_validator(mode="after")
    def _lookup_is_hash_prefix(self) -> Self:
        if self.lookup != self.secret_hash[:16]:
            raise ValueError("lookup must be the first 16 hex chars of secret_hash")
        return self

    @classmethod
    def example(cls) -> Self:
        return cls(
            event_id=ex.example_event_id(3),
            occurred_at=ex.example_time(1, 9, 5),
            tenant_id=ex.EXAMPLE_TENANT,
            key_id=ex.EXAMPLE_API_KEY_ID,
            user_id=ex.EXAMPLE_USER_ID,
            name="Ops dashboard",
            role="operator",
            user_name="Li Wei",
            store_ids=[ex.EXAMPLE_STORE],
            lookup=ex.EXAMPLE_API_TOKEN_SHA256[:16],
            secret_hash=ex.EXAMPLE_API_TOKEN_SHA256,
            created_at=ex.example_time(1, 9, 5),
        )


class ApiKeyRevokedV1(Event):
    """An API key was revoked: every service must refuse it from now on."""

    TYPE: ClassVar[str] = "ingest.api_key_revoked"
    VERSION: ClassVar[int] = 1
    type: Literal["ingest.api_key_revoked"] = "ingest.api_key_revoked"
    version: Literal[1] = 1

    store_id: None = None
    key_id: uuid.UUID
    revoked_at: AwareDatetime

    @classmethod
    def example(cls) -> Self:
        return cls(
            event_id=ex.example_event_id(4),
            occurred_at=ex.example_time(20, 14),
            tenant_id=ex.EXAMPLE_TENANT,
            key_id=ex.EXAMPLE_API_KEY_ID,
            revoked_at=ex.example_time(20, 14),
        )


# --- stores --------------------------------------------------------------------------------------


class _StoreState(Event):
    """A store's full public state. Never its webhook secret: that stays in ingest."""

    store_id: StoreId
    name: NonEmptyStr
    platform: Platform
    timezone: Timezone
    currency: CurrencyCode
    market: CountryCode
    category: NonEmptyStr
    status: StoreStatus = "active"
    # The store's own dimensions that partition its total, beside the registry's
    # (shared/dimensions.toml); optional, so adding it kept version 1.
    partition_dimensions: list[DimensionName] = Field(default_factory=list, max_length=6)


class StoreRegisteredV1(_StoreState):
    """A store was registered."""

    TYPE: ClassVar[str] = "ingest.store_registered"
    VERSION: ClassVar[int] = 1
    type: Literal["ingest.store_registered"] = "ingest.store_registered"
    version: Literal[1] = 1

    @classmethod
    def example(cls) -> Self:
        return cls(
            event_id=ex.example_event_id(5),
            occurred_at=ex.example_time(1, 9, 10),
            tenant_id=ex.EXAMPLE_TENANT,
            store_id=ex.EXAMPLE_STORE,
            name="Demo Apparel (Shopify US)",
            platform="shopify",
            timezone=ex.EXAMPLE_TIMEZONE,
            currency=ex.EXAMPLE_CURRENCY,
            market=ex.EXAMPLE_MARKET,
            category=ex.EXAMPLE_CATEGORY,
            status="active",
        )


class StoreUpdatedV1(_StoreState):
    """A store's settings changed (or it was archived); carries the full new state."""

    TYPE: ClassVar[str] = "ingest.store_updated"
    VERSION: ClassVar[int] = 1
    type: Literal["ingest.store_updated"] = "ingest.store_updated"
    version: Literal[1] = 1

    @classmethod
    def example(cls) -> Self:
        return cls(
            event_id=ex.example_event_id(6),
            occurred_at=ex.example_time(2, 15),
            tenant_id=ex.EXAMPLE_TENANT,
            store_id=ex.EXAMPLE_STORE,
            name="Demo Apparel US",
            platform="shopify",
            timezone=ex.EXAMPLE_TIMEZONE,
            currency=ex.EXAMPLE_CURRENCY,
            market=ex.EXAMPLE_MARKET,
            category=ex.EXAMPLE_CATEGORY,
            status="active",
        )


# --- data ----------------------------------------------------------------------------------------


class MetricsIngestedV1(_Chunked):
    """Metric rows of a store were accepted (API, file import or webhook aggregation).

    accepted/duplicates/updated count the whole batch; `rows` holds only this chunk's rows that
    were new or changed (duplicates are not re-sent), with their latest value.
    """

    TYPE: ClassVar[str] = "ingest.metrics_ingested"
    VERSION: ClassVar[int] = 1
    type: Literal["ingest.metrics_ingested"] = "ingest.metrics_ingested"
    version: Literal[1] = 1

    store_id: StoreId
    source: IngestSource
    accepted: Count = Field(description="rows of the batch that were new")
    duplicates: Count = Field(description="rows of the batch identical to stored ones")
    updated: Count = Field(description="rows of the batch that changed a stored value")
    rows: list[MetricRowV1]

    @classmethod
    def example(cls) -> Self:
        day = ex.EXAMPLE_METRICS_DATE
        rows = [
            MetricRowV1(date=day, metric="visitors", value=18240, dimensions={}),
            MetricRowV1(date=day, metric="buyers", value=401, dimensions={}),
            MetricRowV1(date=day, metric="gmv", value=29873.5, dimensions={}),
            MetricRowV1(
                date=day, metric="impressions", value=412000, dimensions={"channel": "paid_search"}
            ),
            MetricRowV1(
                date=day, metric="clicks", value=5150, dimensions={"channel": "paid_search"}
            ),
            MetricRowV1(
                date=day, metric="ad_spend", value=2310.0, dimensions={"channel": "paid_search"}
            ),
            MetricRowV1(
                date=day,
                metric="clicks",
                value=1312,
                dimensions={"channel": "search", "device": "mobile", "product_id": "SKU-1042"},
            ),
        ]
        return cls(
            event_id=ex.example_event_id(7),
            occurred_at=ex.example_time(4, 5, 2),
            tenant_id=ex.EXAMPLE_TENANT,
            store_id=ex.EXAMPLE_STORE,
            batch_id=ex.EXAMPLE_METRICS_BATCH_ID,
            source="api",
            chunk=0,
            chunks=1,
            accepted=6,
            duplicates=2,
            updated=1,
            rows=rows,
        )


class BenchmarkIngestedV1(_Chunked):
    """Market benchmark rows of a (market, category) were accepted for the tenant.

    value_kind says whether values are absolute (e.g. a conversion rate) or an index the data
    provider scales (only their changes are comparable with a store's).
    """

    TYPE: ClassVar[str] = "ingest.benchmark_ingested"
    VERSION: ClassVar[int] = 1
    type: Literal["ingest.benchmark_ingested"] = "ingest.benchmark_ingested"
    version: Literal[1] = 1

    store_id: None = None
    market: CountryCode
    category: NonEmptyStr
    value_kind: ValueKind
    source: IngestSource
    rows: list[BenchmarkRowV1]

    @classmethod
    def example(cls) -> Self:
        day = ex.EXAMPLE_METRICS_DATE
        return cls(
            event_id=ex.example_event_id(8),
            occurred_at=ex.example_time(4, 6),
            tenant_id=ex.EXAMPLE_TENANT,
            batch_id=ex.EXAMPLE_BENCHMARK_BATCH_ID,
            market=ex.EXAMPLE_MARKET,
            category=ex.EXAMPLE_CATEGORY,
            value_kind="absolute",
            source="import",
            chunk=0,
            chunks=1,
            rows=[
                BenchmarkRowV1(date=day, metric="cvr", value=0.0271),
                BenchmarkRowV1(date=day, metric="ctr", value=0.0142),
                BenchmarkRowV1(date=day, metric="aov", value=71.4),
            ],
        )


class CompetitorMetricsIngestedV1(_Chunked):
    """Metric rows of one competitor a store watches were accepted."""

    TYPE: ClassVar[str] = "ingest.competitor_metrics_ingested"
    VERSION: ClassVar[int] = 1
    type: Literal["ingest.competitor_metrics_ingested"] = "ingest.competitor_metrics_ingested"
    version: Literal[1] = 1

    store_id: StoreId
    competitor_id: ExternalId
    competitor_name: str | None = None
    value_kind: ValueKind = Field(
        default="absolute", description="competitor tools often report an index, not the value"
    )
    rows: list[MetricRowV1]

    @classmethod
    def example(cls) -> Self:
        day = ex.EXAMPLE_METRICS_DATE
        return cls(
            event_id=ex.example_event_id(9),
            occurred_at=ex.example_time(4, 6, 30),
            tenant_id=ex.EXAMPLE_TENANT,
            store_id=ex.EXAMPLE_STORE,
            batch_id=ex.EXAMPLE_COMPETITOR_BATCH_ID,
            competitor_id=ex.EXAMPLE_COMPETITOR_ID,
            competitor_name="Northwind Apparel",
            value_kind="absolute",
            chunk=0,
            chunks=1,
            rows=[
                MetricRowV1(date=day, metric="visitors", value=22110, dimensions={}),
                MetricRowV1(date=day, metric="gmv", value=35120.0, dimensions={}),
                MetricRowV1(
                    date=day, metric="visitors", value=9040, dimensions={"channel": "paid_search"}
                ),
            ],
        )


class MetricsDeletedV1(_Chunked):
    """Metric rows of a store were deleted: a correction by an operator (DELETE
    /v1/stores/{id}/metrics) or a file re-imported with mode=replace. `rows` holds this chunk's
    deleted identities; a consumer deletes the same rows of its copy and redoes those days."""

    TYPE: ClassVar[str] = "ingest.metrics_deleted"
    VERSION: ClassVar[int] = 1
    type: Literal["ingest.metrics_deleted"] = "ingest.metrics_deleted"
    version: Literal[1] = 1

    store_id: StoreId
    correction_id: uuid.UUID
    reason: Literal["delete", "replace"]
    deleted: Count = Field(description="rows the whole correction deleted")
    rows: list[MetricKeyV1]

    @classmethod
    def example(cls) -> Self:
        day = ex.EXAMPLE_METRICS_DATE
        return cls(
            event_id=ex.example_event_id(40),
            occurred_at=ex.example_time(4, 7, 0),
            tenant_id=ex.EXAMPLE_TENANT,
            store_id=ex.EXAMPLE_STORE,
            batch_id=ex.EXAMPLE_METRICS_BATCH_ID,
            correction_id=ex.example_event_id(41),
            reason="delete",
            deleted=2,
            chunk=0,
            chunks=1,
            rows=[
                MetricKeyV1(date=day, metric="visitors", dimensions={"copy_id": "c-1"}),
                MetricKeyV1(date=day, metric="visitors", dimensions={"landing_page": "/promo"}),
            ],
        )


class FxRatesIngestedV1(_Chunked):
    """Exchange rates of the tenant were accepted (POST /v1/fx-rates). `rows` holds this chunk's
    rates that were new or changed; a consumer converting money keeps its own copy and applies,
    as ingest does, the latest rate on or before a day."""

    TYPE: ClassVar[str] = "ingest.fx_rates_ingested"
    VERSION: ClassVar[int] = 1
    type: Literal["ingest.fx_rates_ingested"] = "ingest.fx_rates_ingested"
    version: Literal[1] = 1

    store_id: None = None
    accepted: Count = Field(description="rates of the batch that were new")
    updated: Count = Field(description="rates of the batch that changed a stored value")
    rows: list[FxRateV1]

    @classmethod
    def example(cls) -> Self:
        day = ex.EXAMPLE_METRICS_DATE
        return cls(
            event_id=ex.example_event_id(42),
            occurred_at=ex.example_time(4, 4, 30),
            tenant_id=ex.EXAMPLE_TENANT,
            batch_id=ex.EXAMPLE_FX_BATCH_ID,
            chunk=0,
            chunks=1,
            accepted=2,
            updated=0,
            rows=[
                FxRateV1(date=day, base="CNY", quote=ex.EXAMPLE_CURRENCY, rate=0.1404),
                FxRateV1(date=day, base="EUR", quote=ex.EXAMPLE_CURRENCY, rate=1.0832),
            ],
        )
