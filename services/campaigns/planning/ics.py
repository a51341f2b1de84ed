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


def task_summary(
    task: Any, campaign_name: str, store_name: str | None = None, *, role_feed: bool = False
) -> str:
    """A task's title in a calendar app, where it sits among every other campaign's: it names
    its campaign (and its store, in a feed across stores); the owner role is left out of a
    feed that is all one role's."""
    where = f"{store_name} · {campaign_name}" if store_name else campaign_name
    title = f"{where}: {task.name}"
    return title if role_feed else f"{title} [{task.owner_role}]"


def build(
    *,
    title: str,
    festivals: Sequence[tuple[str, Occurrence]],
    campaigns: Sequence[Any],
    tasks: Sequence[Any],
    store_names: dict[str, str] | None = None,
    role_feed: bool = False,
) -> bytes:
    """The calendar: festivals of each market as (market, occurrence), campaigns and their
    tasks. `store_names` (a feed across stores) puts the store's name in every title."""
    cal = Calendar()
    cal.add("prodid", "-//storeops//campaigns//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", title)
    epoch = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    seen: set[str] = set()
    for market, f in festivals:
        uid = f"festival-{f.key}-{f.date.isoformat()}-{market}@{DOMAIN}"
        if uid in seen:
            continue
        seen.add(uid)
        phases = ", ".join(f"{p.name} {p.start} - {p.end}" for p in f.phases)
        label = f"{f.name} ({market})" if store_names else f.name
        note = " (provisional: an estimate)" if f.provisional else ""
        cal.add_component(
            _event(
                uid,
                label,
                f.start,
                f.end,
                sequence=0,
                stamp=epoch,
                categories=["festival"],
                description=f"Main day {f.date}{note}. Phases: {phases}"
                + (f". Source: {f.source}" if f.source else ""),
            )
        )
    by_id = {c.id: c for c in campaigns}
    for c in campaigns:
        store = (store_names or {}).get(c.store_id)
        cal.add_component(
            _event(
                f"campaign-{c.id}@{DOMAIN}",
                f"Campaign: {c.name}" + (f" ({store})" if store else ""),
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
        c = by_id.get(t.campaign_id)
        campaign_name = c.name if c is not None else t.campaign_id
        store = (store_names or {}).get(t.store_id) if store_names else None
        cal.add_component(
            _event(
                f"task-{t.campaign_id}-{t.task_id}@{DOMAIN}",
                task_summary(t, campaign_name, store, role_feed=role_feed),
                t.start,
                t.due,
                sequence=t.sequence,
                stamp=t.updated_at,
                categories=[kind, t.owner_role],
                description=f"Campaign {campaign_name}"
                + (f" of {store}" if store else "")
                + f"; owner {t.owner_role}; status {t.status}, slack {t.slack} working days"
                + (", critical path" if t.critical else ""),
            )
        )
    return cal.to_ical()
