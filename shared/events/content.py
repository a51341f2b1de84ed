"""Events published by content on topic "content.v1": published copy and decided experiments.

Both are store-scoped. Metric rows attribute impressions and clicks to a copy through the
dimension copy_id, whose value is str(copy_id) of these events.
"""

from __future__ import annotations

import uuid
from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, model_validator

from shared.events import examples as ex
from shared.events.common import (
    CopyType,
    Count,
    Decision,
    EventPart,
    Locale,
    NonEmptyStr,
    NonNegativeFloat,
    Probability,
    StoreId,
)
from shared.events.envelope import Event

# --- copy ----------------------------------------------------------------------------------------


class CopyPublishedV1(Event):
    """A revision of a copy was published (it passed review and lint)."""

    TYPE: ClassVar[str] = "content.copy_published"
    VERSION: ClassVar[int] = 1
    type: Literal["content.copy_published"] = "content.copy_published"
    version: Literal[1] = 1

    store_id: StoreId
    copy_id: uuid.UUID
    revision: int = Field(ge=1, description="the published revision of the copy")
    campaign_id: uuid.UUID | None
    copy_type: CopyType
    locale: Locale
    title: str = Field(description="may be empty for types without a title, e.g. sms")
    body: NonEmptyStr
    published_by: uuid.UUID = Field(description="user_id of the user who published it")

    @classmethod
    def example(cls) -> Self:
        return cls(
            event_id=ex.example_event_id(31),
            occurred_at=ex.example_time(11, 16, 20),
            tenant_id=ex.EXAMPLE_TENANT,
            store_id=ex.EXAMPLE_STORE,
            copy_id=ex.EXAMPLE_COPY_ID,
            revision=3,
            campaign_id=ex.EXAMPLE_CAMPAIGN_ID,
            copy_type="banner",
            locale="en",
            title="Black Friday starts now",
            body="Up to 40% off coats and knitwear. Free shipping over $50, through Cyber Monday.",
            published_by=ex.EXAMPLE_USER_ID,
        )


# --- experiments ---------------------------------------------------------------------------------


class VariantV1(EventPart):
    """One copy variant's counts (metric rows with dimension copy_id) at decision time."""

    copy_id: uuid.UUID
    impressions: Count
    clicks: Count
    ctr: NonNegativeFloat = Field(description="clicks / impressions, 0 without impressions")
    probability_best: Probability = Field(description="posterior probability of the best CTR")


class ExperimentDecidedV1(Event):
    """An A/B test over copy variants was decided.

    winner_copy_id is set if and only if decision is "winner", and is one of the variants.
    """

    TYPE: ClassVar[str] = "content.experiment_decided"
    VERSION: ClassVar[int] = 1
    type: Literal["content.experiment_decided"] = "content.experiment_decided"
    version: Literal[1] = 1

    store_id: StoreId
    experiment_id: uuid.UUID
    campaign_id: uuid.UUID | None
    metric: Literal["ctr"] = "ctr"
    winner_copy_id: uuid.UUID | None = Field(description="null = no winner")
    decision: Decision
    variants: Annotated[list[VariantV1], Field(min_length=2)]
    p_value: Probability | None

    @model_validator(mode="after")
    def _winner_matches_decision(self) -> Self:
        if (self.decision == "winner") != (self.winner_copy_id is not None):
            raise ValueError('winner_copy_id is set if and only if decision is "winner"')
        copy_ids = [variant.copy_id for variant in self.variants]
        if len(set(copy_ids)) != len(copy_ids):
            raise ValueError("variants must be distinct copies")
        if self.winner_copy_id is not None and self.winner_copy_id not in copy_ids:
            raise ValueError("winner_copy_id must be one of the variants")
        return self

    @classmethod
    def example(cls) -> Self:
        return cls(
            event_id=ex.example_event_id(32),
            occurred_at=ex.example_time(18, 9),
            tenant_id=ex.EXAMPLE_TENANT,
            store_id=ex.EXAMPLE_STORE,
            experiment_id=ex.EXAMPLE_EXPERIMENT_ID,
            campaign_id=ex.EXAMPLE_CAMPAIGN_ID,
            metric="ctr",
            winner_copy_id=ex.EXAMPLE_COPY_ID,
            decision="winner",
            variants=[
                VariantV1(
                    copy_id=ex.EXAMPLE_COPY_ID,
                    impressions=48210,
                    clicks=1013,
                    ctr=0.021012,
                    probability_best=0.987,
                ),
                VariantV1(
                    copy_id=ex.EXAMPLE_COPY_VARIANT_ID,
                    impressions=47985,
                    clicks=864,
                    ctr=0.018006,
                    probability_best=0.013,
                ),
            ],
            p_value=0.0011,
        )
