"""Campaign templates (YAML under services/campaigns/templates/) and their instantiation against
a festival occurrence: durations and pins resolved to numbers and dates.

A template is data in two parts. Its `tasks` are the preparation steps of one business model
(a marketplace store registers with the platform and passes its creative review; a DTC store
has neither; an Amazon seller submits deals). Its `selling` section is not a task list: the
selling milestones are generated from the festival's own phases, one per selling phase (pinned to
the phase's start), one per cut-off (a deadline), none in a logistics pause, so a Spring
Festival plan sells in the new-year shopping weeks before the courier cut-off, not on the
festival's day. Templates may extend another (`extends`): tasks are merged by id, `ready` lists
are appended.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.calendar import Occurrence, Phase

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
TaskId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=128)]
BusinessModel = Literal["marketplace", "dtc", "amazon"]

# How a store sells, from its platform: marketplaces run the festival themselves (registration,
# creative review, their slots); a direct-to-consumer site runs its own. `generic` is a store's
# own integration, so DTC. Amazon is not a platform of the registry: `template: amazon`.
BUSINESS_MODELS: dict[str, BusinessModel] = {
    "taobao": "marketplace",
    "jd": "marketplace",
    "shopee": "marketplace",
    "shopify": "dtc",
    "woocommerce": "dtc",
    "bigcommerce": "dtc",
    "generic": "dtc",
}
DEFAULT_TEMPLATE: dict[BusinessModel, str] = {
    "marketplace": "marketplace",
    "dtc": "dtc",
    "amazon": "amazon",
}
LEGACY_AUTO = "mega_sale"  # the one template of old: now "choose from the store's platform"


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
    milestone: str | None = None  # a platform milestone offset of the festival (from its date)
    event: int | None = None  # calendar days from the festival's main date
    after_selling: int | None = None  # calendar days after the last selling day
    fallback: int = 0  # calendar days from the peak's start when the festival lacks the milestone


class TemplateTask(_Strict):
    id: TaskId
    name: str
    owner_role: str
    duration: int | MilestoneDuration = 0
    kind: Literal["task", "milestone"] = "task"
    copy_type: str | None = None
    pin: PinDef | None = None
    depends_on: list[TaskId | DepDef] = Field(default_factory=list)


class Ready(_Strict):
    """What must be done before the selling milestones: the first phase that opens (`launch`),
    the first that takes orders (`orders`), the peak (`peak`)."""

    launch: list[TaskId] = Field(default_factory=list)
    orders: list[TaskId] = Field(default_factory=list)
    peak: list[TaskId] = Field(default_factory=list)


class Selling(_Strict):
    owner_role: str = "operations"
    names: dict[str, str] = Field(default_factory=dict, description="milestone name per phase")
    ready: Ready = Field(default_factory=Ready)


class Template(_Strict):
    key: str
    name: str
    business_model: BusinessModel | None = None
    abstract: bool = False
    extends: str | None = None
    description: str = ""
    tasks: list[TemplateTask] = Field(default_factory=list)
    selling: Selling = Field(default_factory=Selling)


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


def _read(key: str) -> Template | None:
    path = TEMPLATES / f"{key}.yaml"
    if not key.replace("_", "").isalnum() or not path.is_file():
        return None
    return Template.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def _merge(base: Template, child: Template) -> Template:
    tasks = {t.id: t for t in base.tasks}
    for t in child.tasks:
        tasks[t.id] = t
    ready = Ready(
        launch=[*base.selling.ready.launch, *child.selling.ready.launch],
        orders=[*base.selling.ready.orders, *child.selling.ready.orders],
        peak=[*base.selling.ready.peak, *child.selling.ready.peak],
    )
    selling = Selling(
        owner_role=child.selling.owner_role,
        names={**base.selling.names, **child.selling.names},
        ready=ready,
    )
    return child.model_copy(update={"tasks": list(tasks.values()), "selling": selling})


@cache
def load(key: str) -> Template | None:
    """A concrete template with its bases merged in; None for an unknown or abstract one."""
    tpl = _resolve(key)
    return None if tpl is None or tpl.abstract else tpl


def _resolve(key: str, depth: int = 0) -> Template | None:
    tpl = _read(key)
    if tpl is None or tpl.extends is None or depth > 5:
        return tpl
    base = _resolve(tpl.extends, depth + 1)
    if base is None:
        raise ValueError(f"template {key!r} extends unknown {tpl.extends!r}")
    return _merge(base, tpl)


def available() -> list[str]:
    return sorted(p.stem for p in TEMPLATES.glob("*.yaml") if load(p.stem) is not None)


def for_platform(platform: str | None) -> str:
    """The template a store's platform calls for (DTC when the platform is not known)."""
    return DEFAULT_TEMPLATE[BUSINESS_MODELS.get(platform or "", "dtc")]


def _pin_date(pin: PinDef, occ: Occurrence) -> dt.date:
    if pin.milestone is not None:
        offset = occ.milestone(pin.milestone)
        if offset is not None:
            return occ.date + dt.timedelta(days=offset)
    if pin.event is not None:
        return occ.date + dt.timedelta(days=pin.event)
    if pin.after_selling is not None:
        return occ.selling_end + dt.timedelta(days=pin.after_selling)
    return occ.peak.start + dt.timedelta(days=pin.fallback)


def _title(phase: Phase, names: dict[str, str]) -> str:
    if phase.name in names:
        return names[phase.name]
    words = phase.name.replace("_", " ")
    words = words[:1].upper() + words[1:]
    if phase.kind == "cutoff":
        return f"{words}: last orders ship (deadline)"
    if phase.name == "main":
        return "Main day" if phase.start == phase.end else "Main sale starts"
    return f"{words} starts"


def selling_milestones(template: Template, occ: Occurrence) -> list[TaskSpec]:
    """One milestone per selling phase and cut-off of the occurrence, in date order, each after
    the one before; the first, the first taking orders and the peak wait for the template's
    `ready` tasks. Pauses and after-sale phases get none."""
    peak = occ.peak
    phases = [p for p in occ.phases if p.kind in ("selling", "cutoff")] or [peak]
    if peak not in phases:
        phases.append(peak)
    phases.sort(key=lambda p: (p.start, p.end))
    ready = template.selling.ready
    out: list[TaskSpec] = []
    seen_orders = False
    prev: str | None = None
    for i, p in enumerate(phases):
        deps: list[str] = [prev] if prev else []
        if p.kind == "selling":
            if i == 0:
                deps += ready.launch
            if p.orders and not seen_orders:
                deps += ready.orders
                seen_orders = True
            if p == peak:
                deps += [d for d in ready.orders if not seen_orders] + ready.peak
        tid = "main_day" if p.name == "main" else p.name
        out.append(
            TaskSpec(
                id=tid,
                name=_title(p, template.selling.names),
                owner_role=template.selling.owner_role,
                duration=0,
                kind="milestone",
                copy_type=None,
                pin=p.start,
                depends_on=tuple((d, "FS", 0) for d in dict.fromkeys(deps)),
            )
        )
        prev = tid
    return out


def instantiate(template: Template, occ: Occurrence) -> list[TaskSpec]:
    selling = selling_milestones(template, occ)
    last_selling = selling[-1].id
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
        # `selling_end` in a template names the last selling milestone, whatever the festival
        deps = tuple((last_selling if d[0] == "selling_end" else d[0], d[1], d[2]) for d in deps)
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
    return out + selling


def around_pauses(occ: Occurrence, pauses: Sequence[tuple[dt.date, dt.date]]) -> Occurrence:
    """The occurrence with its selling phases kept out of other festivals' logistics pauses in
    the market (Valentine's Day 2027 in China: its gifting run-up falls in the Spring
    Festival's courier pause, so only the day after it is left to sell on). A phase partly in
    a pause keeps its part after the pause, else its part before; a phase wholly inside one is
    dropped. Cut-offs, pauses and after-sale phases are left as they are."""
    if not pauses:
        return occ
    kept: list[Phase] = []
    for p in occ.phases:
        if p.kind != "selling":
            kept.append(p)
            continue
        start, end = p.start, p.end
        for lo, hi in sorted(pauses):
            if hi < start or lo > end:
                continue
            if hi < end:
                start = max(start, hi + dt.timedelta(days=1))
            elif lo > start:
                end = min(end, lo - dt.timedelta(days=1))
            else:
                start, end = end + dt.timedelta(days=1), end  # wholly inside: nothing left
        if start <= end:
            kept.append(dataclasses.replace(p, start=start, end=end))
    return dataclasses.replace(occ, phases=tuple(kept))


def deadline(occ: Occurrence) -> dt.date:
    """Preparation must be done before the peak phase opens (its milestone's pin)."""
    return occ.peak.start
