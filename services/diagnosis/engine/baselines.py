"""Baselines of a daily series on the store's local dates.

A series is a mapping date -> value holding only the days that have data: a missing day is
absent (or None), never zero, and is reported back in `missing`. The trailing baselines are
medians, so one odd day (or one festival day) in the window does not move them much.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from shared.events.common import Baseline

BASELINES: tuple[Baseline, ...] = (
    "previous_day",
    "same_weekday_last_week",
    "trailing_7d",
    "trailing_28d",
    "same_phase_last_year",
)


@dataclass(frozen=True)
class PhaseWindow:
    """One phase of a festival in one year, e.g. ("double_11", "presale", 2025-10-24, 2025-10-30).

    Passed in by the caller (the service reads them from shared/calendar); the engine does not
    know any festival's dates.
    """

    festival: str
    phase: str
    start: date
    end: date  # inclusive

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


@dataclass(frozen=True)
class BaselineValue:
    kind: Baseline
    value: float | None  # None when the baseline's days are missing
    dates: tuple[date, ...]  # the days it is made of (present ones)
    missing: tuple[date, ...]  # the days it wanted but the series does not have


# A trailing median needs at least this share of its window present.
MIN_PRESENT = 0.5


def _get(series: Mapping[date, float | None], d: date) -> float | None:
    v = series.get(d)
    return None if v is None else float(v)


def baseline_dates(
    day: date,
    kind: Baseline,
    *,
    phases: Sequence[PhaseWindow] = (),
    exclude: Collection[date] = (),
) -> list[date]:
    """The days the baseline `kind` of `day` is made of (see compute_baseline)."""
    if kind == "previous_day":
        return [_skip(day, 1, exclude)]
    if kind == "same_weekday_last_week":
        return [_skip(day, 7, exclude)]
    if kind == "trailing_7d":
        return [d for i in range(1, 8) if (d := day - timedelta(days=i)) not in exclude]
    if kind == "trailing_28d":
        return [d for i in range(1, 29) if (d := day - timedelta(days=i)) not in exclude]
    if kind == "same_phase_last_year":
        return [same_phase_last_year(day, phases)]
    raise ValueError(kind)  # pragma: no cover - Literal exhausts it


def baseline_from(
    kind: Baseline, wanted: Sequence[date], series: Mapping[date, float | None]
) -> BaselineValue:
    """The baseline over the wanted days of a series (the days computed once for many series:
    the leaves of a store-day share them)."""
    present = [(d, v) for d in wanted if (v := _get(series, d)) is not None]
    missing = tuple(d for d in wanted if _get(series, d) is None)
    dates = tuple(d for d, _ in present)
    if not present or not wanted:
        return BaselineValue(kind, None, dates, missing)
    if len(wanted) > 1:
        if len(present) < MIN_PRESENT * len(wanted):
            return BaselineValue(kind, None, dates, missing)
        value = float(statistics.median(v for _, v in present))
    else:
        value = present[0][1]
    return BaselineValue(kind, value, dates, missing)


def compute_baseline(
    series: Mapping[date, float | None],
    day: date,
    kind: Baseline,
    *,
    phases: Sequence[PhaseWindow] = (),
    exclude: Collection[date] = (),
) -> BaselineValue:
    """The baseline `kind` of `day` (see the module docstring).

    `exclude` are context days (a festival, a campaign, a holiday) that are not a normal day's
    baseline: previous_day and same_weekday_last_week step further back (a day, a week, up to
    eight times: a Double 11 season is four weeks long), the trailing windows leave them out.
    same_phase_last_year keeps them: a phase is compared with the same phase.
    """
    return baseline_from(kind, baseline_dates(day, kind, phases=phases, exclude=exclude), series)


def _skip(day: date, step: int, exclude: Collection[date]) -> date:
    d = day - timedelta(days=step)
    for _ in range(8):
        if d not in exclude:
            return d
        d -= timedelta(days=step)
    return day - timedelta(days=step)


def same_phase_last_year(day: date, phases: Sequence[PhaseWindow]) -> date:
    """Day k of the same phase of the same festival last year; outside any phase, the same
    weekday 52 weeks before (364 days), which keeps the weekly pattern."""
    for w in phases:
        if day in w:
            k = (day - w.start).days
            for prev in phases:
                if (
                    prev.festival == w.festival
                    and prev.phase == w.phase
                    and prev.start.year == w.start.year - 1
                ):
                    return min(prev.start + timedelta(days=k), prev.end)
    return day - timedelta(days=364)


# --- the default baseline: comparable days ---------------------------------------------------

# The default baseline is the median of this many recent same weekdays ...
COMPARABLE_WEEKS = 4
# ... looked for this many weeks back (a Double 11 season, warm-up to aftermath, is ~7 weeks).
COMPARABLE_LOOKBACK_WEEKS = 16


@dataclass(frozen=True)
class BaselineChoice:
    """The days a store-day is compared with, and why (the report's baseline_days and note).

    `method` is a code: "comparable_weekdays" (the median of recent same weekdays outside
    festival periods), "same_phase_last_year" (the day is in a festival phase: day k of the same
    phase a year before), "explicit" (a kind the caller asked for), "none" (no comparable day)."""

    days: tuple[date, ...]
    method: str
    skipped: tuple[date, ...] = ()  # same weekdays passed over: a festival period or context
    festival: str | None = None  # the festival phase the day is in, when it is in one
    note: str = ""


def _phase_of(day: date, phases: Sequence[PhaseWindow]) -> PhaseWindow | None:
    return next((w for w in phases if day in w), None)


def comparable_days(
    day: date,
    *,
    shaped: Collection[date] = (),
    exclude: Collection[date] = (),
    phases: Sequence[PhaseWindow] = (),
    available: Collection[date] | None = None,
    weeks: int = COMPARABLE_WEEKS,
    lookback: int = COMPARABLE_LOOKBACK_WEEKS,
) -> BaselineChoice:
    """The default baseline's days of `day` (pure; the caller passes what the calendar says).

    `shaped` are the days a festival shapes (its warm-up, pre-sale and main days and their
    aftermath), `exclude` the context days (campaign windows, public holidays), `available`
    the days the store has data for (None: any). A day inside a festival period is compared with
    the same phase a year before when that is available; any other day with the median of the
    last `weeks` same weekdays that are neither shaped nor context days, so the week after Black
    Friday is not compared with the festival week and the lull after Double 11 not with its
    pre-sale. The median of four also keeps one odd week from moving the baseline."""
    has = (lambda d: True) if available is None else (lambda d: d in available)
    shaped_set, excl = set(shaped), set(exclude)
    if day in shaped_set:
        w = _phase_of(day, [p for p in phases if p.phase != "returns_window"]) or _phase_of(
            day, phases
        )
        if w is not None:
            last = same_phase_last_year(day, phases)
            if last != day - timedelta(days=364) and has(last):
                return BaselineChoice(
                    (last,),
                    "same_phase_last_year",
                    festival=f"{w.festival}/{w.phase}",
                    note=f"{day} is in {w.festival} {w.phase}: compared with day "
                    f"{(day - w.start).days + 1} of the same phase a year before ({last})",
                )
    picked: list[date] = []
    skipped: list[date] = []
    for k in range(1, lookback + 1):
        d = day - timedelta(days=7 * k)
        if d in shaped_set or d in excl:
            skipped.append(d)
            continue
        if not has(d):
            continue
        picked.append(d)
        if len(picked) == weeks:
            break
    wd = day.strftime("%A")
    if not picked:
        return BaselineChoice(
            (), "none", tuple(skipped), note=f"no comparable {wd} in the last {lookback} weeks"
        )
    why = ""
    if skipped:
        n = len([s for s in skipped if s > picked[-1]])
        why = f"; {n} {wd}(s) in a festival period or campaign/holiday skipped" if n else ""
    return BaselineChoice(
        tuple(picked),
        "comparable_weekdays",
        tuple(s for s in skipped if s > picked[-1]),
        note=f"median of the {len(picked)} previous {wd}s outside festival periods"
        f" ({', '.join(d.isoformat() for d in picked)}){why}",
    )
