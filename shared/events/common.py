"""Value types and vocabularies shared by the producer modules' contracts.

Constraints are written so that they show up in the JSON Schema (pattern, bounds, enum): the
snapshot under tests/contracts is then the whole contract, also for a consumer that is not Python.
The exceptions (an IANA zone that must exist, a few cross-field rules) are model validators that
stop a producer from staging a wrong event; they are documented in the class docstrings.
"""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

# --- parts ---------------------------------------------------------------------------------------


class EventPart(BaseModel):
    """A nested object of an event (a row, a task...).

    Same config as the envelope: unknown fields are ignored, so adding an optional field to a part
    is a compatible change, exactly as on the event itself.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)


# --- scalars -------------------------------------------------------------------------------------

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]

NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
# Ids chosen by a client (a store's id, a competitor's id) or by a template (a task's id).
StoreId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=128)]

CurrencyCode = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{3}$"), Field(description="ISO 4217 code, e.g. USD")
]
CountryCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{2}$"),
    Field(description="ISO 3166-1 alpha-2 code, e.g. US, CN"),
]
HexSha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
HexLookup = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
# snake_case keys: finding codes, festival keys ("double_11"), task roles.
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=64)]


def _existing_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


Timezone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_existing_zone),
    Field(description="IANA time zone, e.g. Asia/Shanghai; metric dates are local to it"),
]

# --- metrics -------------------------------------------------------------------------------------

# Metric names are an open vocabulary in the contract (a pattern, not an enum): a new metric must
# not force a new version of every event that carries rows. The known names are listed here so
# producers and consumers validate and compute against one list.
RAW_METRICS: tuple[str, ...] = (
    "impressions",
    "clicks",
    "visitors",
    "page_views",
    "add_to_cart",
    "favorites",
    "orders",
    "buyers",
    "gmv",
    "refunds",
    "ad_spend",
    "inquiries",
    "inquiry_buyers",
    "dsr_description",
    "dsr_service",
    "dsr_logistics",
)
# The one list of derived metrics and their formulas: numerator / denominator, each a sum over
# whatever is grouped (a ratio of sums, never an average of ratios). shared/grains.py reads them.
DERIVED: dict[str, tuple[str, str]] = {
    "ctr": ("clicks", "impressions"),
    "cvr": ("buyers", "visitors"),
    "aov": ("gmv", "buyers"),
    "add_to_cart_rate": ("add_to_cart", "visitors"),
    "favorite_rate": ("favorites", "visitors"),
    "refund_rate": ("refunds", "gmv"),
    "roas": ("gmv", "ad_spend"),
    "inquiry_cvr": ("inquiry_buyers", "inquiries"),
}
DERIVED_METRICS: tuple[str, ...] = tuple(DERIVED)
KNOWN_METRICS: frozenset[str] = frozenset(RAW_METRICS + DERIVED_METRICS)
MONEY_METRICS: frozenset[str] = frozenset({"gmv", "refunds", "ad_spend"})
SCORE_METRICS: frozenset[str] = frozenset({"dsr_description", "dsr_service", "dsr_logistics"})
COUNT_METRICS: frozenset[str] = frozenset(RAW_METRICS) - MONEY_METRICS - SCORE_METRICS
# The channel dimension's vocabulary (DESIGN.md); other dimensions are free-form.
CHANNELS: tuple[str, ...] = (
    "search",
    "recommendation",
    "paid_search",
    "paid_display",
    "social",
    "live",
    "direct",
    "email_sms",
    "other",
)

MetricName = Annotated[
    str,
    StringConstraints(pattern=r"^(custom\.)?[a-z][a-z0-9_.]*$", max_length=80),
    Field(description="metric name, e.g. visitors, gmv, ctr, or custom.<name> for a tenant's own"),
]
DimensionName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$"),
    Field(description="a dimension's name, e.g. channel"),
]
Dimensions = Annotated[
    dict[str, str],
    Field(description="dimension name -> value, e.g. {'channel': 'search'}; {} = store total"),
]

# --- enumerations (DESIGN.md) --------------------------------------------------------------------

Role = Literal["admin", "operator", "viewer"]
Platform = Literal["shopify", "woocommerce", "bigcommerce", "taobao", "jd", "shopee", "generic"]
StoreStatus = Literal["active", "archived"]
IngestSource = Literal["api", "import", "webhook"]
ValueKind = Literal["absolute", "index"]

Baseline = Literal[
    "previous_day",
    "same_weekday_last_week",
    "trailing_7d",
    "trailing_28d",
    "same_phase_last_year",
]
Direction = Literal["up", "down", "flat"]
Severity = Literal["low", "medium", "high", "critical"]
Owner = Literal[
    "promotion", "designer", "merchandising", "customer_service", "logistics", "operations"
]
FindingStatus = Literal["open", "acknowledged", "snoozed", "resolved"]
Resolution = Literal["resolved", "auto_resolved", "superseded"]

CampaignStatus = Literal["draft", "planned", "running", "done", "cancelled"]
TaskStatus = Literal["todo", "in_progress", "done", "blocked"]
TaskKind = Literal["task", "milestone"]

CopyType = Literal["banner", "push", "sms", "guide", "rules", "article"]
Locale = Literal["en", "zh-CN", "zh-TW", "ja"]
Decision = Literal["winner", "no_difference", "stopped"]
