"""Campaign templates (YAML under services/campaigns/templates/) and their instantiation against
a festival occurrence: durations and pins resolved to numbers and dates."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.calendar import Occurrence

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
TaskId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DepDef(_Strict):
    task: TaskId
    type: Literal["FS", "SS"] = "FS"
    lag: int = Field(default=0, ge=-60, le=60)


class MilestoneDuration(_Strict):
    milestone: str
    default: int = Field(ge=0)


class PinDef(_Strict):
    phase: str | None = None  # the start of this phase of the festival
    milestone: str | None = None  # a platform milestone offset of the festival
    event: int | None = None  # calendar days from the main date
    fallback: int = 0  # calendar days from the main date when the festival lacks the phase


class TemplateTask(_Strict):
    id: TaskId
    name: str
    owner_role: str
    duration: int | MilestoneDuration = 0
    kind: Literal["task", "milestone"] = "task"
    copy_type: str | None = None
    pin: PinDef | None = None
    depends_on: list[TaskId | DepDef] = Field(default_factory=list)


class Template(_Strict):
    key: str
    name: str
    tasks: list[TemplateTask]


@dataclass(frozen=True)
class TaskSpec:
    id: str
    name: str
    owner_role: str
    duration: int
    kind: str
    copy_type: str | None
    pin: dt.date | None
    depends_on: tuple[tuple[str, str, int], ...]  # (task id, FS|SS, lag)


@cache
def load(key: str) -> Template | None:
    path = TEMPLATES / f"{key}.yaml"
    if not key.replace("_", "").isalnum() or not path.is_file():
        return None
    return Template.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def available() -> list[str]:
    return sorted(p.stem for p in TEMPLATES.glob("*.yaml"))


def _pin_date(pin: PinDef, occ: Occurrence) -> dt.date:
    if pin.phase is not None:
        phase = occ.phase(pin.phase)
        if phase is not None:
            return phase.start
    if pin.milestone is not None:
        offset = occ.milestone(pin.milestone)
        if offset is not None:
            return occ.date + dt.timedelta(days=offset)
    if pin.event is not None:
        return occ.date + dt.timedelta(days=pin.event)
    return occ.date + dt.timedelta(days=pin.fallback)


def instantiate(template: Template, occ: Occurrence) -> list[TaskSpec]:
    out = []
    for t in template.tasks:
        if isinstance(t.duration, MilestoneDuration):
            offset = occ.milestone(t.duration.milestone)
            duration = offset if offset is not None else t.duration.default
        else:
            duration = t.duration
        deps = tuple(
            (d, "FS", 0) if isinstance(d, str) else (d.task, d.type, d.lag) for d in t.depends_on
        )
        out.append(
            TaskSpec(
                id=t.id,
                name=t.name,
                owner_role=t.owner_role,
                duration=0 if t.kind == "milestone" else duration,
                kind=t.kind,
                copy_type=t.copy_type,
                pin=_pin_date(t.pin, occ) if t.pin is not None else None,
                depends_on=deps,
            )
        )
    return out
