"""API models of campaigns (separate from the tables)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.jsonguard import StrictInt, SupportedDate

TaskId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=128)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=64)]
TaskStatus = Literal["todo", "in_progress", "done", "blocked"]
CampaignStatus = Literal["draft", "planned", "running", "done", "cancelled"]
CopyType = Literal["banner", "push", "sms", "guide", "rules", "article"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DependencyIn(_In):
    task_id: TaskId
    type: Literal["FS", "SS"] = "FS"
    lag: StrictInt = Field(default=0, ge=-60, le=60, description="working days")


class TaskIn(_In):
    id: TaskId
    name: str = Field(min_length=1, max_length=300)
    owner_role: Slug
    duration: StrictInt = Field(default=1, ge=0, le=250, description="working days; 0 = milestone")
    depends_on: list[DependencyIn | TaskId] = Field(default_factory=list, max_length=100)
    pin: SupportedDate | None = Field(default=None, description="a fixed start date")
    copy_type: CopyType | None = None
    status: TaskStatus = "todo"


class CampaignCreate(_In):
    name: str = Field(min_length=1, max_length=200)
    event: Slug | None = Field(default=None, description="a festival key, e.g. double_11")
    year: StrictInt | None = Field(default=None, ge=2000, le=2100, description="the event's year")
    template: Slug | None = None
    start: SupportedDate | None = None
    end: SupportedDate | None = None
    budget: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    tasks: list[TaskIn] | None = Field(default=None, max_length=2000)
    capacities: dict[Slug, Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shape(self) -> CampaignCreate:
        if self.start and self.end and self.end < self.start:
            raise ValueError("end is before start")
        if self.event is None and (self.start is None or self.end is None):
            raise ValueError("give an event, or explicit start and end dates")
        if self.event is None and self.template is not None:
            raise ValueError("a template needs an event to schedule from")
        return self


class TaskMove(_In):
    start: SupportedDate | None = Field(default=None, description="start no earlier than this date")
    duration: StrictInt | None = Field(default=None, ge=0, le=250)
    status: TaskStatus | None = None
    depends_on: list[DependencyIn | TaskId] | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _something(self) -> TaskMove:
        if (
            self.start is None
            and self.duration is None
            and self.status is None
            and (self.depends_on is None)
        ):
            raise ValueError("give start, duration, status or depends_on")
        return self


class CampaignUpdate(_In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    status: CampaignStatus | None = None
    budget: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _something(self) -> CampaignUpdate:
        if not self.model_fields_set:
            raise ValueError("give name, status or budget")
        return self


class DependencyOut(BaseModel):
    task_id: str
    type: str
    lag: int


class TaskOut(BaseModel):
    id: str
    name: str
    owner_role: str
    kind: str
    duration: int
    start: dt.date
    due: dt.date
    late_start: dt.date
    late_finish: dt.date
    slack: int
    critical: bool
    depends_on: list[DependencyOut]
    status: str
    copy_type: str | None = None
    pinned: bool
    source: str
    baseline_start: dt.date | None = Field(default=None, description="as first planned")
    baseline_due: dt.date | None = Field(default=None, description="as first planned")


class PhaseOut(BaseModel):
    name: str
    start: dt.date
    end: dt.date
    kind: str | None = Field(
        default=None, description="selling, cutoff (a deadline), pause (no selling), after_sale"
    )


class Conflict(BaseModel):
    type: Literal["late", "over_capacity", "dependency"]
    task_ids: list[str]
    detail: str
    date: dt.date | None = None
    owner_role: str | None = None


class CampaignOut(BaseModel):
    id: str
    store_id: str
    name: str
    event: str | None
    event_date: dt.date | None
    template: str | None
    market: str
    start: dt.date
    end: dt.date
    status: str
    budget: float | None
    currency: str | None
    phases: list[PhaseOut]
    tasks: list[TaskOut]
    critical_path: list[str]
    conflicts: list[Conflict]
    sequence: int
    created_at: dt.datetime
    updated_at: dt.datetime


class MoveResult(BaseModel):
    campaign: CampaignOut
    moved: list[str] = Field(description="tasks whose dates changed")
    conflicts: list[Conflict]


class CampaignPage(BaseModel):
    items: list[CampaignOut]
    next_cursor: str | None


class GanttOut(BaseModel):
    campaign_id: str
    name: str
    start: dt.date
    end: dt.date
    today: dt.date
    lanes: list[str]
    critical_path: list[str]
    tasks: list[TaskOut]
    milestones: list[str]
    phases: list[PhaseOut]
    off_days: list[dt.date]
    holidays: list[dict[str, Any]]
    conflicts: list[Conflict]
    dependencies: list[dict[str, Any]] = Field(
        default_factory=list, description="arrows: {from, to, type, lag}"
    )
    late: list[str] = Field(default_factory=list, description="tasks with negative slack")
    moved: list[str] = Field(
        default_factory=list, description="tasks whose dates differ from their baseline"
    )
    conflicting: list[str] = Field(default_factory=list, description="tasks in a conflict")


# ---- calendar -----------------------------------------------------------------------------


class FestivalOut(BaseModel):
    key: str
    name: str
    date: dt.date
    start: dt.date
    end: dt.date
    phases: list[PhaseOut]
    source: str | None = Field(default=None, description="where the date comes from")
    provisional: bool = Field(
        default=False, description="an estimate: the official schedule is not out"
    )
    platforms: list[str] = Field(default_factory=list, description="whose festival it is")


class HolidayOut(BaseModel):
    date: dt.date
    name: str
    provisional: bool = Field(
        default=False, description="the official schedule of the year is not published yet"
    )


class CalendarOut(BaseModel):
    market: str
    start: dt.date
    end: dt.date
    festivals: list[FestivalOut]
    holidays: list[HolidayOut]
    working_weekends: list[dt.date] = Field(description="official make-up working days")
    off_days: list[dt.date] = Field(description="non-working days of the (tenant's) calendar")
    provisional_years: list[int] = Field(
        default_factory=list,
        description="years whose official holiday and make-up-day schedule is not published: "
        "their holidays are estimates and their working weekends unknown",
    )


class CalendarSettingsIn(_In):
    festivals: list[dict[str, Any]] = Field(default_factory=list, max_length=200)
    markets: dict[str, dict[str, Any]] = Field(default_factory=dict)


class CalendarSettingsOut(BaseModel):
    festivals: list[dict[str, Any]]
    markets: dict[str, dict[str, Any]]


# ---- slots ----------------------------------------------------------------------------------


class SlotRules(_In):
    max_share: float = Field(default=1.0, gt=0, le=1, description="of a day's capacity per store")
    window_open_days: StrictInt = Field(default=90, ge=0, le=730)
    window_close_days: StrictInt = Field(default=1, ge=0, le=365)
    tier_order: list[Slug] = Field(default_factory=lambda: ["platinum", "gold", "silver"])

    @model_validator(mode="after")
    def _window(self) -> SlotRules:
        if self.window_close_days > self.window_open_days:
            raise ValueError("the booking window closes before it opens")
        return self


class SlotCreate(_In):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["banner", "push", "live", "email", "other"] = "banner"
    capacity: StrictInt = Field(ge=1, le=10_000, description="units per day")
    rules: SlotRules = Field(default_factory=SlotRules)


class SlotOut(BaseModel):
    id: str
    name: str
    kind: str
    capacity: int
    rules: SlotRules


class BookingCreate(_In):
    store_id: str = Field(min_length=1, max_length=128)
    day: SupportedDate
    # Required: stores carry no registered tier here, and a missing tier used to become
    # "silver" silently. Optional in the schema so the refusal names the slot's tiers.
    tier: Slug | None = Field(default=None, description="one of the slot's tier_order")
    priority: StrictInt = Field(default=0, ge=0, le=1000)
    campaign_id: str | None = Field(
        default=None, max_length=36, description="the plan the booking is for (with task_id)"
    )
    task_id: TaskId | None = Field(default=None, description="the plan's slot-booking task")

    @model_validator(mode="after")
    def _pair(self) -> BookingCreate:
        if (self.campaign_id is None) != (self.task_id is None):
            raise ValueError("give campaign_id and task_id together")
        return self


class TaskBookingCreate(_In):
    """A booking made from a plan's task: the store is the campaign's."""

    slot_id: str = Field(min_length=1, max_length=36)
    day: SupportedDate
    tier: Slug | None = Field(default=None, description="one of the slot's tier_order")
    priority: StrictInt = Field(default=0, ge=0, le=1000)


class BookingOut(BaseModel):
    id: str
    slot_id: str
    store_id: str
    day: dt.date
    tier: str
    priority: int
    allocation_id: str | None = None
    campaign_id: str | None = None
    task_id: str | None = None


class AllocationRequestIn(_In):
    store_id: str = Field(min_length=1, max_length=128)
    tier: Slug
    priority: StrictInt = Field(default=0, ge=0, le=1000)
    days: list[SupportedDate] = Field(min_length=1, max_length=366)
    units: StrictInt = Field(default=1, ge=1, le=100)


class AllocationIn(_In):
    requests: list[AllocationRequestIn] = Field(min_length=1, max_length=5000)


class OutcomeOut(BaseModel):
    store_id: str
    day: dt.date
    wanted: int
    granted: int
    reasons: list[str]
    explanation: str | None = Field(
        default=None, description="what the store asked for, got and why, told to that store"
    )


class AllocationOut(BaseModel):
    id: str
    slot_id: str
    rule: str
    outcomes: list[OutcomeOut]


class ExplainOut(BaseModel):
    allocation_id: str
    store_id: str
    granted: int
    wanted: int
    outcomes: list[OutcomeOut]
    summary: str = ""


class FeedTokenOut(BaseModel):
    store_id: str
    token: str
    url: str


class TeamFeedTokenOut(BaseModel):
    owner_role: str | None = Field(description="the owner role whose tasks it shows; null: all")
    stores: list[str] | None = Field(description="the stores it covers; null: all the tenant's")
    token: str
    url: str
