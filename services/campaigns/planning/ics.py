"""The store's iCalendar feed (RFC 5545): festivals, campaigns, milestones and tasks as all-day
events with stable UIDs; SEQUENCE is the item's revision, raised when it changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from icalendar import Calendar, Event

from shared.calendar import Occurrence

DOMAIN = "storeops"


def _event(
    uid: str,
    summary: str,
    start: dt.date,
    end_inclusive: dt.date,
    *,
    sequence: int,
    stamp: dt.datetime,
    categories: list[str],
    description: str | None = None,
) -> Event:
    ev = Event()
    ev.add("uid", uid)
    ev.add("summary", summary)
    ev.add("dtstart", start)
    ev.add("dtend", end_inclusive + dt.timedelta(days=1))  # DTEND is exclusive for dates
    ev.add("dtstamp", stamp)
    ev.add("sequence", sequence)
    ev.add("categories", categories)
    ev.add("transp", "TRANSPARENT")
    if description:
        ev.add("description", description)
    return ev


def build(
    *,
    store_id: str,
    store_name: str,
    market: str,
    festivals: Sequence[Occurrence],
    campaigns: Sequence[Any],
    tasks: Sequence[Any],
) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//storeops//campaigns//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", f"{store_name}: festivals and campaigns")
    epoch = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    for f in festivals:
        phases = ", ".join(f"{p.name} {p.start} - {p.end}" for p in f.phases)
        cal.add_component(
            _event(
                f"festival-{f.key}-{f.date.isoformat()}-{market}@{DOMAIN}",
                f.name,
                f.start,
                f.end,
                sequence=0,
                stamp=epoch,
                categories=["festival"],
                description=f"Main day {f.date}. Phases: {phases}",
            )
        )
    names = {c.id: c.name for c in campaigns}
    for c in campaigns:
        cal.add_component(
            _event(
                f"campaign-{c.id}@{DOMAIN}",
                f"Campaign: {c.name}",
                c.start,
                c.end,
                sequence=c.sequence,
                stamp=c.updated_at,
                categories=["campaign"],
                description=f"Status {c.status}" + (f", event {c.event}" if c.event else ""),
            )
        )
    for t in tasks:
        kind = "milestone" if t.kind == "milestone" else "task"
        cal.add_component(
            _event(
                f"task-{t.campaign_id}-{t.task_id}@{DOMAIN}",
                f"[{t.owner_role}] {t.name}",
                t.start,
                t.due,
                sequence=t.sequence,
                stamp=t.updated_at,
                categories=[kind, t.owner_role],
                description=f"{names.get(t.campaign_id, '')}: status {t.status}, "
                f"slack {t.slack} working days" + (", critical path" if t.critical else ""),
            )
        )
    return cal.to_ical()
