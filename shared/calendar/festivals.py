"""Shopping festivals: definitions as data (festivals.yaml), the rules that date them each year,
and tenant additions and overrides (same shape, merged by key)."""

from __future__ import annotations

import calendar as _cal
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import holidays
import yaml
from dateutil.easter import easter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.calendar.markets import REGIONS, regions_of

DATA = Path(__file__).with_name("festivals.yaml")
Key = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FixedRule(_Strict):
    type: Literal["fixed"]
    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)
    plus_days: int = 0


class NthWeekdayRule(_Strict):
    type: Literal["nth_weekday"]
    month: int = Field(ge=1, le=12)
    weekday: int = Field(ge=0, le=6, description="0 = Monday")
    n: int = Field(ge=-1, le=5, description="1..5, or -1 for the last")
    plus_days: int = 0

    @model_validator(mode="after")
    def _n(self) -> NthWeekdayRule:
        if self.n == 0:
            raise ValueError("n is 1..5 or -1")
        return self


class EasterRule(_Strict):
    type: Literal["easter"]
    plus_days: int = 0


class LunarNewYearRule(_Strict):
    type: Literal["lunar_new_year"]
    plus_days: int = 0


class MidAutumnRule(_Strict):
    """The Mid-Autumn Festival (lunar 8/15, from the `holidays` package's lunisolar tables) plus
    an offset: a basis for other lunar dates (Qixi, lunar 7/7, is 38 or 39 days before)."""

    type: Literal["mid_autumn"]
    plus_days: int = 0


class MonthlyRule(_Strict):
    type: Literal["monthly"]
    day: int = Field(ge=1, le=28)


SimpleRule = Annotated[
    FixedRule | NthWeekdayRule | EasterRule | LunarNewYearRule | MidAutumnRule,
    Field(discriminator="type"),
]


class AnnouncedDate(_Strict):
    """One year's date with where it comes from; `provisional` while it is an estimate."""

    date: dt.date
    source: str | None = Field(default=None, max_length=500)
    provisional: bool = False


class DatesRule(_Strict):
    """Dates announced each year (Prime Day), with a rule for the years not listed: a date the
    fallback computes is provisional (the platform has not announced it)."""

    type: Literal["dates"]
    dates: dict[int, dt.date | AnnouncedDate]
    fallback: SimpleRule | None = None


Rule = Annotated[
    FixedRule
    | NthWeekdayRule
    | EasterRule
    | LunarNewYearRule
    | MidAutumnRule
    | MonthlyRule
    | DatesRule,
    Field(discriminator="type"),
]

# What a phase is for. Campaign templates put selling milestones only in `selling` phases; a
# `cutoff` is a deadline (the last day orders ship before a pause); a `pause` (couriers and
# warehouses closed) gets no selling milestone; `after_sale` is returns and reviews.
PhaseKind = Literal["selling", "cutoff", "pause", "after_sale"]
DEFAULT_KINDS: dict[str, PhaseKind] = {
    "shipping_cutoff": "cutoff",
    "logistics_pause": "pause",
    "returns_window": "after_sale",
}
# Phases that build traffic (favourites, add-to-cart) but take no orders yet.
NO_ORDER_PHASES = frozenset({"warm_up"})


class PhaseDef(_Strict):
    name: Key
    from_: int = Field(alias="from", description="first day, offset from the main date")
    to: int = Field(description="last day (inclusive), offset from the main date")
    kind: PhaseKind | None = Field(default=None, description="default from the name, else selling")
    orders: bool | None = Field(default=None, description="takes orders; warm_up does not")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _ordered(self) -> PhaseDef:
        if self.to < self.from_:
            raise ValueError(f"phase {self.name!r} ends before it starts")
        return self


class FestivalDef(_Strict):
    key: Key
    name: str = Field(min_length=1, max_length=200)
    markets: list[str] = Field(min_length=1)
    rule: Rule
    phases: list[PhaseDef] = Field(default_factory=list)
    platform_milestones: dict[str, int] = Field(default_factory=dict)
    # Where the dates come from (the platform's announcement, the law, a custom), and whether
    # they are an estimate: a platform that announces its schedule late, a guessed rule.
    source: str | None = Field(default=None, max_length=500)
    provisional: bool = False
    platforms: list[str] = Field(default_factory=list, description="whose festival it is")
    # A tenant override with disabled: true removes a built-in festival for that tenant.
    disabled: bool = False


@dataclass(frozen=True)
class Phase:
    name: str
    start: dt.date
    end: dt.date
    kind: str = "selling"
    orders: bool = True


@dataclass(frozen=True)
class DatedRule:
    """A rule's date in a year, with its source and whether it is an estimate."""

    date: dt.date
    source: str | None = None
    provisional: bool = False


@dataclass(frozen=True)
class Occurrence:
    """One festival in one year: its main date and phases (dates inclusive)."""

    key: str
    name: str
    date: dt.date
    phases: tuple[Phase, ...]
    platform_milestones: tuple[tuple[str, int], ...]
    source: str | None = None
    provisional: bool = False
    platforms: tuple[str, ...] = ()

    @property
    def selling_phases(self) -> tuple[Phase, ...]:
        """The phases in which the store sells; a festival without phases sells on its day."""
        selling = tuple(p for p in self.phases if p.kind == "selling")
        return selling or (Phase("main", self.date, self.date),)

    @property
    def peak(self) -> Phase:
        """The phase preparation must be ready for: the one holding the main date, else (the
        main date falls in a pause, as the Spring Festival's does) the last selling phase
        before it."""
        selling = self.selling_phases
        holding = [p for p in selling if p.start <= self.date <= p.end]
        if holding:
            return holding[0]
        before = [p for p in selling if p.end < self.date]
        return max(before, key=lambda p: p.end) if before else selling[-1]

    @property
    def selling_end(self) -> dt.date:
        """The last day of selling: the peak's end, or a cut-off right after it."""
        end = self.peak.end
        for p in sorted(self.phases, key=lambda p: p.start):
            if p.kind == "cutoff" and p.start > end and (p.start - end).days <= 1:
                end = p.end
        return end

    @property
    def start(self) -> dt.date:
        return min([self.date, *(p.start for p in self.phases)])

    @property
    def end(self) -> dt.date:
        return max([self.date, *(p.end for p in self.phases)])

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    def milestone(self, name: str) -> int | None:
        return dict(self.platform_milestones).get(name)


@cache
def builtin() -> tuple[FestivalDef, ...]:
    raw = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    return tuple(FestivalDef.model_validate(item) for item in raw)


def parse_definitions(raw: Sequence[dict[str, Any]]) -> list[FestivalDef]:
    """Validate a tenant's festival definitions (raises pydantic.ValidationError)."""
    return [FestivalDef.model_validate(item) for item in raw]


def definitions(overrides: Iterable[FestivalDef] = ()) -> list[FestivalDef]:
    """Built-in festivals with a tenant's additions and overrides merged by key."""
    merged = {f.key: f for f in builtin()}
    for f in overrides:
        merged[f.key] = f
    return [f for f in merged.values() if not f.disabled]


@cache
def lunar_new_year(year: int) -> dt.date:
    cn = holidays.China(years=year)
    days = sorted(d for d, name in cn.items() if "Spring Festival" in name and d.year == year)
    if not days:
        raise ValueError(f"no Spring Festival date known for {year}")
    return days[0]


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    days = [
        dt.date(year, month, d)
        for d in range(1, _cal.monthrange(year, month)[1] + 1)
        if dt.date(year, month, d).weekday() == weekday
    ]
    return days[-1] if n == -1 else days[min(n, len(days)) - 1]


def mid_autumn(year: int) -> dt.date:
    from holidays.calendars.chinese import _ChineseLunisolar

    day, _estimated = _ChineseLunisolar().mid_autumn_date(year)
    if day is None:
        raise ValueError(f"no Mid-Autumn date known for {year}")
    return day


def _dated(rule: Any, year: int) -> list[DatedRule]:
    if isinstance(rule, DatesRule):
        if year in rule.dates:
            d = rule.dates[year]
            if isinstance(d, AnnouncedDate):
                return [DatedRule(d.date, d.source, d.provisional)]
            return [DatedRule(d)]
        if rule.fallback is None:
            return []
        return [
            DatedRule(
                d, "estimate: not announced for this year, computed by the fallback rule", True
            )
            for d in _dates_of(rule.fallback, year)
        ]
    return [DatedRule(d) for d in _dates_of(rule, year)]


def _dates_of(rule: Any, year: int) -> list[dt.date]:
    if isinstance(rule, FixedRule):
        day = min(rule.day, _cal.monthrange(year, rule.month)[1])
        return [dt.date(year, rule.month, day) + dt.timedelta(days=rule.plus_days)]
    if isinstance(rule, NthWeekdayRule):
        base = _nth_weekday(year, rule.month, rule.weekday, rule.n)
        return [base + dt.timedelta(days=rule.plus_days)]
    if isinstance(rule, EasterRule):
        return [easter(year) + dt.timedelta(days=rule.plus_days)]
    if isinstance(rule, LunarNewYearRule):
        return [lunar_new_year(year) + dt.timedelta(days=rule.plus_days)]
    if isinstance(rule, MidAutumnRule):
        return [mid_autumn(year) + dt.timedelta(days=rule.plus_days)]
    if isinstance(rule, MonthlyRule):
        return [dt.date(year, m, rule.day) for m in range(1, 13)]
    if isinstance(rule, DatesRule):
        return [d.date for d in _dated(rule, year)]
    raise TypeError(f"unknown rule {rule!r}")


def phase_kind(p: PhaseDef) -> str:
    return p.kind or DEFAULT_KINDS.get(p.name, "selling")


def occurrences(festival: FestivalDef, year: int) -> list[Occurrence]:
    out = []
    for dated in _dated(festival.rule, year):
        date = dated.date
        phases = tuple(
            Phase(
                p.name,
                date + dt.timedelta(days=p.from_),
                date + dt.timedelta(days=p.to),
                phase_kind(p),
                p.orders if p.orders is not None else p.name not in NO_ORDER_PHASES,
            )
            for p in festival.phases
        )
        out.append(
            Occurrence(
                key=festival.key,
                name=festival.name,
                date=date,
                phases=phases,
                platform_milestones=tuple(sorted(festival.platform_milestones.items())),
                source=dated.source or festival.source,
                provisional=dated.provisional or festival.provisional,
                platforms=tuple(festival.platforms),
            )
        )
    return out


def applies_to(festival: FestivalDef, market: str) -> bool:
    return bool(regions_of(market) & {m.upper() for m in festival.markets})


ANY_PLATFORM = "*"


def festivals_between(
    market: str,
    start: dt.date,
    end: dt.date,
    overrides: Iterable[FestivalDef] = (),
    platform: str | None = None,
) -> list[Occurrence]:
    """Occurrences whose span (phases included) overlaps [start, end], by date then key.

    A platform's own festival (Douyin's 818: `platforms` set) is listed for a store on that
    platform, or for every platform with ANY_PLATFORM (a planning calendar); a reader that
    gives no platform (diagnosis reading a store's market) gets the market-wide ones only, as
    a Douyin festival does not move a Taobao store's traffic."""
    found = []
    for festival in definitions(overrides):
        if not applies_to(festival, market):
            continue
        if festival.platforms and platform != ANY_PLATFORM and platform not in festival.platforms:
            continue
        for year in range(start.year - 1, end.year + 2):
            for occ in occurrences(festival, year):
                if occ.start <= end and occ.end >= start:
                    found.append(occ)
    return sorted(found, key=lambda o: (o.date, o.key))


def next_occurrence(
    key: str, market: str, on_or_after: dt.date, overrides: Iterable[FestivalDef] = ()
) -> Occurrence | None:
    """The festival's first occurrence in the market whose main date is on or after a date;
    None if the festival is unknown or does not apply to the market."""
    festival = next((f for f in definitions(overrides) if f.key == key), None)
    if festival is None or not applies_to(festival, market):
        return None
    for year in range(on_or_after.year, on_or_after.year + 3):
        for occ in occurrences(festival, year):
            if occ.date >= on_or_after:
                return occ
    return None


def known_keys(overrides: Iterable[FestivalDef] = (), market: str | None = None) -> list[str]:
    """Festival keys, all of them or those that apply to one market."""
    return sorted(f.key for f in definitions(overrides) if market is None or applies_to(f, market))


def festival_markets(overrides: Iterable[FestivalDef] = ()) -> list[str]:
    """The countries some festival is defined for (regions expanded to their countries)."""
    out: set[str] = set()
    for f in definitions(overrides):
        for m in f.markets:
            out |= set(REGIONS.get(m.upper(), {m.upper()}))
    return sorted(out)


def markets_of(key: str, overrides: Iterable[FestivalDef] = ()) -> list[str]:
    """The markets (as written: countries or regions) a festival is defined for; [] if unknown."""
    festival = next((f for f in definitions(overrides) if f.key == key), None)
    return sorted(festival.markets) if festival else []
