"""API models of content (separate from the tables)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.jsonguard import StrictBool, StrictInt, SupportedDate
from shared.locales import fallback

CopyType = Literal["banner", "push", "sms", "guide", "rules", "article"]
Locale = Annotated[Literal["en", "zh-CN", "zh-TW", "ja"], fallback(("en", "zh-CN", "zh-TW", "ja"))]
Status = Literal["draft", "in_review", "approved", "published", "archived"]
Action = Literal["submit", "approve", "reject", "publish", "archive"]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
ChannelName = Annotated[str, StringConstraints(min_length=1, max_length=40)]
# Checked against the lint's one list (services.content.lint PRODUCT_CATEGORIES): 422 otherwise.
ProductCategory = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z_]{0,31}$"),
    Field(description="what the copy sells: food, health_food, cosmetics, medical_device, ..."),
]

T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class VariableIn(Strict):
    name: Name
    type: Literal["string", "integer", "number", "url", "date", "boolean"] = "string"
    required: StrictBool = True
    max_length: StrictInt = Field(default=200, ge=1, le=5000)
    example: Any = None


class CopyCreate(Strict):
    store_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    type: CopyType
    locale: Locale
    title: str = Field(default="", max_length=2000)
    body: str = Field(min_length=1, max_length=100_000)
    campaign_id: uuid.UUID | None = None
    brief_id: uuid.UUID | None = None
    product_category: ProductCategory | None = None
    channels: list[ChannelName] | None = Field(
        default=None, description="channel profiles to lint against; default by type and locale"
    )
    variables: list[VariableIn] | None = Field(
        default=None, description="declared template variables: the copy is then a template"
    )


class CopyUpdate(Strict):
    title: str | None = Field(default=None, max_length=2000)
    body: str | None = Field(default=None, min_length=1, max_length=100_000)
    variables: list[VariableIn] | None = None
    note: str | None = Field(default=None, max_length=2000)


class RevisionOut(BaseModel):
    revision: int
    title: str
    body: str
    variables: list[dict[str, Any]] | None
    note: str | None
    created_by: str
    created_at: dt.datetime
    lint: dict[str, Any]


class CopyOut(BaseModel):
    id: str
    store_id: str
    campaign_id: str | None
    brief_id: str | None
    type: str
    locale: str
    status: str
    revision: int
    published_revision: int | None
    channels: list[str] | None
    product_category: str | None = None
    title: str
    body: str
    variables: list[dict[str, Any]] | None
    lint: dict[str, Any]
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime


class TransitionIn(Strict):
    action: Action
    comment: str | None = Field(default=None, max_length=2000)


class AuditOut(BaseModel):
    action: str
    from_status: str | None
    to_status: str
    revision: int
    actor: str
    actor_name: str | None = Field(
        default=None, description="the user's name, from ingest.api_key_created; null if unknown"
    )
    role: str
    comment: str | None
    at: dt.datetime


class DiffOut(BaseModel):
    copy_id: str
    from_revision: int
    to_revision: int
    unit: dict[str, str]
    title: list[dict[str, str]]
    body: list[dict[str, str]]


class LintIn(Strict):
    text: str | None = Field(default=None, max_length=100_000, description="alias of body")
    body: str | None = Field(default=None, max_length=100_000)
    title: str = Field(default="", max_length=2000)
    locale: Locale = "en"
    type: CopyType | None = None
    channels: list[ChannelName] | None = None
    packs: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] | None = None
    market: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None
    marketing: StrictBool = True
    signature: str | None = Field(default=None, max_length=20)
    product_category: ProductCategory | None = None


class RenderIn(Strict):
    variables: dict[str, Any] = Field(default_factory=dict)


class RenderOut(BaseModel):
    copy_id: str
    revision: int
    title: str
    body: str
    lint: dict[str, Any]


class BriefOut(BaseModel):
    id: str
    store_id: str
    kind: str
    campaign_id: str | None
    task_id: str | None
    finding_id: str | None
    copy_type: str | None
    owner: str
    title: str
    detail: str | None
    due: dt.date | None
    status: str
    copy_ids: list[str]
    answered_by: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime


class ExperimentCreate(Strict):
    store_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    name: str = Field(min_length=1, max_length=200)
    copy_ids: list[uuid.UUID] = Field(description="the variants; the first is the control")
    weights: list[float] | None = Field(default=None, description="planned split; equal if null")
    campaign_id: uuid.UUID | None = None
    start: SupportedDate | None = None
    end: SupportedDate | None = None
    min_sample: StrictInt | None = Field(default=None, ge=100, le=100_000_000)
    looks: StrictInt = Field(
        default=4,
        ge=1,
        le=10,
        description="planned analyses at 1x..looks x min_sample; alpha is split over them",
    )
    baseline_ctr: float | None = Field(default=None, gt=0, lt=1)
    minimum_detectable_effect: float | None = Field(default=None, gt=0, le=10)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    probability_threshold: float = Field(default=0.95, ge=0.5, lt=1)
    loss_threshold: float = Field(default=0.01, gt=0, le=1)


class DecideIn(Strict):
    stop: StrictBool = Field(default=False, description="stop now without a winner")


class ExperimentOut(BaseModel):
    id: str
    store_id: str
    campaign_id: str | None
    name: str
    copy_ids: list[str]
    weights: list[float]
    start: dt.date | None
    end: dt.date | None
    rule: dict[str, Any]
    status: str
    decision: str | None
    winner_copy_id: str | None
    decided_at: dt.datetime | None
    evaluation: dict[str, Any]


class ReviewerIn(Strict):
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    note: str | None = Field(default=None, max_length=500)


class ReviewerOut(BaseModel):
    user_id: str
    name: str | None
    note: str | None
    added_by: str
    added_at: dt.datetime
