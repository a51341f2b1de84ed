"""What the calendar and the store's campaigns say about a window of days: the engine's festival
phases (for the same-phase baseline) and its context days (expected moves: no incident there, and
not a normal day's baseline). Pure: the service passes the campaigns it holds.

Which days are "context" is a choice: the calendar's festival spans are planning spans (a
warm-up of two weeks, a returns window of a month) during which most days are ordinary. Only the
days whose numbers a festival really shapes count: its pre-sale and main days and the two days of
lull after the main day, public holidays (non-working days of the market), and the peak-like
phases of the store's own campaigns (or the whole campaign when it has no phases).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from services.diagnosis.engine.baselines import PhaseWindow
from shared.calendar import festivals_between, public_holidays

# Festival phases whose days are expected to move (the calendar's names).
SHAPING_PHASES = frozenset({"pre_sale", "main", "last_orders", "new_year_shopping"})
# Days of lull after a festival's main date.
LULL_DAYS = 0
# Campaign phase names that shape demand; a campaign without phases counts whole.
CAMPAIGN_SHAPING = frozenset({"pre_sale", "presale", "peak", "main", "launch", "sale", "live"})
# The default baseline never reads a day a festival shapes (baselines.comparable_days): every
# phase of a peak festival but its returns window and a gifting run-up (both ordinary days for
# most stores), plus the first AFTERMATH_DAYS of the returns window, the lull after the peak.
# A festival whose main phase is longer than SEASON_DAYS is a season (back to school), not a
# peak: its days stay comparable.
NOT_SHAPING_FOR_BASELINE = frozenset({"returns_window", "gifting"})
AFTERMATH_DAYS = 7
SEASON_DAYS = 7


@dataclass(frozen=True)
class CampaignWindow:
    campaign_id: str
    name: str
    event: str | None
    status: str
    start: date
    end: date
    phases: Sequence[dict[str, Any]] = ()


@dataclass
class DayContextSet:
    phases: list[PhaseWindow] = field(default_factory=list)
    days: set[date] = field(default_factory=set)
    # What the report's `context` shows: [{kind, key, name, phase?, start, end}]
    items: list[dict[str, Any]] = field(default_factory=list)
    # Days a festival (warm-up to aftermath) or a campaign shapes: never a normal day's baseline
    shaped: set[date] = field(default_factory=set)


def _dates(phase: Mapping[str, Any]) -> tuple[date, date]:
    return date.fromisoformat(str(phase["start"])), date.fromisoformat(str(phase["end"]))


def _span(start: date, end: date) -> Iterable[date]:
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


def context_for(
    market: str,
    start: date,
    end: date,
    campaigns: Iterable[CampaignWindow] = (),
    *,
    day: date | None = None,
) -> DayContextSet:
    """Context of [start, end]; `items` lists only what touches `day` (default: end)."""
    day = day or end
    out = DayContextSet()
    # A year back as well: the same-phase baseline reads last year's phases.
    for occ in festivals_between(market, start - timedelta(days=371), end):
        for ph in occ.phases:
            out.phases.append(PhaseWindow(occ.key, ph.name, ph.start, ph.end))
            if ph.name in SHAPING_PHASES:
                out.days.update(_span(ph.start, ph.end))
            if ph.start <= day <= ph.end:
                out.items.append(
                    {
                        "kind": "festival",
                        "key": occ.key,
                        "name": occ.name,
                        "phase": ph.name,
                        "start": ph.start.isoformat(),
                        "end": ph.end.isoformat(),
                        "expected_move": ph.name in SHAPING_PHASES,
                    }
                )
        out.days.update(_span(occ.date, occ.date + timedelta(days=LULL_DAYS)))
        out.shaped.update(shaped_days(occ.phases))
    for d, name in public_holidays(market, start, end):
        out.days.add(d)
        if d == day:
            out.items.append(
                {
                    "kind": "holiday",
                    "key": None,
                    "name": name,
                    "phase": None,
                    "start": d.isoformat(),
                    "end": d.isoformat(),
                    "expected_move": True,
                }
            )
    for c in campaigns:
        if c.status == "cancelled" or c.end < start or c.start > end:
            continue
        shaping = [p for p in c.phases if str(p.get("name", "")).lower() in CAMPAIGN_SHAPING]
        windows = (
            [
                (date.fromisoformat(str(p["start"])), date.fromisoformat(str(p["end"])))
                for p in shaping
            ]
            if c.phases
            else [(c.start, c.end)]
        )
        for s, e in windows:
            out.days.update(_span(s, e))
            out.shaped.update(_span(s, e + timedelta(days=AFTERMATH_DAYS)))
        if c.start <= day <= c.end:
            phase = next(
                (
                    str(p.get("name"))
                    for p in c.phases
                    if date.fromisoformat(str(p["start"]))
                    <= day
                    <= date.fromisoformat(str(p["end"]))
                ),
                None,
            )
            out.items.append(
                {
                    "kind": "campaign",
                    "key": c.campaign_id,
                    "name": c.name,
                    "phase": phase,
                    "start": c.start.isoformat(),
                    "end": c.end.isoformat(),
                    "expected_move": any(s <= day <= e for s, e in windows),
                }
            )
    return out


def shaped_days(phases: Sequence[Any]) -> set[date]:
    """The days of one festival occurrence that are no normal day's baseline (see
    NOT_SHAPING_FOR_BASELINE): phases with .name, .start, .end."""
    main = [p for p in phases if p.name == "main"]
    if any((p.end - p.start).days + 1 > SEASON_DAYS for p in main):
        return set()
    out: set[date] = set()
    for p in phases:
        if p.name == "returns_window":
            out.update(_span(p.start, min(p.end, p.start + timedelta(days=AFTERMATH_DAYS - 1))))
        elif p.name not in NOT_SHAPING_FOR_BASELINE:
            out.update(_span(p.start, p.end))
    return out
