"""Events published by campaigns on topic "campaigns.v1": campaigns with their plan, due tasks.

All are store-scoped. Campaign events carry the whole plan (phases and tasks), so a consumer
replaces its copy of a campaign on every `campaign_created`/`campaign_updated`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from shared.events import examples as ex
from shared.events.common import (
    CampaignStatus,
    CopyType,
    CountryCode,
    CurrencyCode,
    EventPart,
    ExternalId,
    NonEmptyStr,
    NonNegativeFloat,
    Slug,
    StoreId,
    TaskKind,
    TaskStatus,
)
from shared.events.envelope import Event

# --- parts ---------------------------------------------------------------------------------------


class PhaseV1(EventPart):
    """A phase of a campaign (e.g. warm_up, pre_sale, peak, review); dates inclusive."""

    name: NonEmptyStr
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"phase {self.name!r} ends before it starts")
        return self


class TaskV1(EventPart):
    """A task of a campaign's plan; a milestone is a zero-length task (start == due)."""

    task_id: ExternalId
    name: NonEmptyStr
    owner_role: Slug = Field(description="the team the task is for, e.g. designer, promotion")
    start: dt.date
    due: dt.date
    depends_on: list[ExternalId] = Field(description="task_ids that must be done first")
    status: TaskStatus
    kind: TaskKind
    copy_type: CopyType | None = Field(
        default=None, description="set on a copy task: content opens a brief of this type"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.due < self.start:
            raise ValueError(f"task {self.task_id!r} is due before it starts")
        return self


# --- campaigns -----------------------------------------------------------------------------------


class _CampaignState(Event):
    """A campaign's full state. Dates are the store's local dates, inclusive."""

    store_id: StoreId
    campaign_id: uuid.UUID
    name: NonEmptyStr
    event: Slug | None = Field(description="the retail festival, e.g. double_11; null if none")
    market: CountryCode
    start: dt.date
    end: dt.date
    status: CampaignStatus
    budget: NonNegativeFloat | None
    currency: CurrencyCode | None = Field(description="currency of the budget")
    phases: list[PhaseV1]
    tasks: list[TaskV1]

    @model_validator(mode="after")
    def _consistent_plan(self) -> Self:
        if self.end < self.start:
            raise ValueError("the campaign ends before it starts")
        ids = [task.task_id for task in self.tasks]
        if len(set(ids)) != len(ids):
            raise ValueError("task_ids must be unique within a campaign")
        known = set(ids)
        for task in self.tasks:
            missing = [dep for dep in task.depends_on if dep not in known]
            if missing:
                raise ValueError(f"task {task.task_id!r} depends on unknown tasks {missing}")
        return self

    @classmethod
    def _example_fields(cls) -> dict[str, object]:
        return {
            "tenant_id": ex.EXAMPLE_TENANT,
            "store_id": ex.EXAMPLE_STORE,
            "campaign_id": ex.EXAMPLE_CAMPAIGN_ID,
            "name": "Black Friday / Cyber Monday 2025",
            "event": "black_friday",
            "market": ex.EXAMPLE_MARKET,
            "start": dt.date(2025, 10, 29),
            "end": dt.date(2025, 12, 4),
            "budget": 25000.0,
            "currency": ex.EXAMPLE_CURRENCY,
            "phases": [
                PhaseV1(name="preparation", start=dt.date(2025, 10, 29), end=dt.date(2025, 11, 16)),
                PhaseV1(name="warm_up", start=dt.date(2025, 11, 17), end=dt.date(2025, 11, 27)),
                PhaseV1(name="peak", start=dt.date(2025, 11, 28), end=dt.date(2025, 12, 1)),
                PhaseV1(name="review", start=dt.date(2025, 12, 2), end=dt.date(2025, 12, 4)),
            ],
        }


def _example_tasks(copy_task_status: TaskStatus) -> list[TaskV1]:
    # fmt: off
    plan: list[tuple[str, str, str, dt.date, dt.date, list[str], TaskStatus, TaskKind]] = [
        ("offer-plan", "Plan offers and budget", "operations",
         dt.date(2025, 10, 29), dt.date(2025, 10, 31), [], "done", "task"),
        ("key-visual", "Design key visual and main images", "designer",
         dt.date(2025, 11, 3), dt.date(2025, 11, 10), ["offer-plan"], "in_progress", "task"),
        (ex.EXAMPLE_COPY_TASK_ID, "Write banner copy", "copywriter",
         dt.date(2025, 11, 5), dt.date(2025, 11, 12), ["offer-plan"], copy_task_status, "task"),
        ("ads-setup", "Set up paid search campaigns", "promotion",
         dt.date(2025, 11, 10), dt.date(2025, 11, 14), ["key-visual", ex.EXAMPLE_COPY_TASK_ID],
         "todo", "task"),
        ("warm-up-start", "Warm-up starts", "operations",
         dt.date(2025, 11, 17), dt.date(2025, 11, 17), ["ads-setup"], "todo", "milestone"),
        ("launch", "Black Friday goes live", "operations",
         dt.date(2025, 11, 28), dt.date(2025, 11, 28), ["warm-up-start"], "todo", "milestone"),
        ("review", "Post-campaign review", "operations",
         dt.date(2025, 12, 2), dt.date(2025, 12, 4), ["launch"], "todo", "task"),
    ]
    # fmt: on
    return [
        TaskV1(
            task_id=task_id,
            name=name,
            owner_role=owner_role,
            start=start,
            due=due,
            depends_on=depends_on,
            status=status,
            kind=kind,
            copy_type="banner" if task_id == ex.EXAMPLE_COPY_TASK_ID else None,
        )
        for task_id, name, owner_role, start, due, depends_on, status, kind in plan
    ]


class CampaignCreatedV1(_CampaignState):
    """A campaign was created with its phases and tasks scheduled backwards from the event."""

    TYPE: ClassVar[str] = "campaigns.campaign_created"
    VERSION: ClassVar[int] = 1
    type: Literal["campaigns.campaign_created"] = "campaigns.campaign_created"
    version: Literal[1] = 1

    @classmethod
    def example(cls) -> Self:
        return cls.model_validate(
            {
                **cls._example_fields(),
                "event_id": ex.example_event_id(21),
                "occurred_at": ex.example_time(1, 10),
                "status": "planned",
                "tasks": _example_tasks("todo"),
            }
        )


class CampaignUpdatedV1(_CampaignState):
    """A campaign changed (status, dates, a task moved or progressed); carries its full state."""

    TYPE: ClassVar[str] = "campaigns.campaign_updated"
    VERSION: ClassVar[int] = 1
    type: Literal["campaigns.campaign_updated"] = "campaigns.campaign_updated"
    version: Literal[1] = 1

    @classmethod
    def example(cls) -> Self:
        return cls.model_validate(
            {
                **cls._example_fields(),
                "event_id": ex.example_event_id(22),
                "occurred_at": ex.example_time(6, 16, 45),
                "status": "planned",
                "tasks": _example_tasks("in_progress"),
            }
        )


# --- tasks ---------------------------------------------------------------------------------------


class TaskDueV1(Event):
    """A campaign task is due: its owner should act.

    copy_type is set when the task is a copy task, so that content can open a brief for it.
    """

    TYPE: ClassVar[str] = "campaigns.task_due"
    VERSION: ClassVar[int] = 1
    type: Literal["campaigns.task_due"] = "campaigns.task_due"
    version: Literal[1] = 1

    store_id: StoreId
    campaign_id: uuid.UUID
    task_id: ExternalId
    name: NonEmptyStr
    owner_role: Slug
    due: dt.date
    status: TaskStatus
    kind: TaskKind
    copy_type: CopyType | None

    @classmethod
    def example(cls) -> Self:
        return cls(
            event_id=ex.example_event_id(23),
            occurred_at=ex.example_time(10, 13),
            tenant_id=ex.EXAMPLE_TENANT,
            store_id=ex.EXAMPLE_STORE,
            campaign_id=ex.EXAMPLE_CAMPAIGN_ID,
            task_id=ex.EXAMPLE_COPY_TASK_ID,
            name="Write banner copy",
            owner_role="copywriter",
            due=dt.date(2025, 11, 12),
            status="in_progress",
            kind="task",
            copy_type="banner",
        )
