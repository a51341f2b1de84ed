"""Allocation of a contested period of a promotion slot, by rules given as data; pure.

The rule ("tier-ordered round-robin with a share cap", docs/campaigns.md): for each day, stores
are served tier by tier in the slot's tier order; within a tier, one unit at a time in turn, by
priority (higher first) then store id, until the day's capacity is used, every request is met,
or a store reaches its maximum share of the day's capacity. The result does not depend on the
order of the requests, and every store gets the reason for what it did not get.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    store_id: str
    tier: str
    priority: int
    days: tuple[dt.date, ...]
    units: int = 1


@dataclass(frozen=True)
class Rules:
    capacity: int
    tier_order: tuple[str, ...]
    max_share: float = 1.0
    window_open_days: int = 365  # bookable from today + ... up to today + open days
    window_close_days: int = 0  # ... until today + close days before the day

    def max_per_store(self) -> int:
        return max(1, math.floor(self.max_share * self.capacity + 1e-9))

    def tier_rank(self, tier: str) -> int:
        return self.tier_order.index(tier) if tier in self.tier_order else len(self.tier_order)

    def in_window(self, day: dt.date, today: dt.date) -> bool:
        return (
            today + dt.timedelta(days=self.window_close_days)
            <= day
            <= today + dt.timedelta(days=self.window_open_days)
        )


@dataclass
class Outcome:
    store_id: str
    day: dt.date
    wanted: int
    granted: int = 0
    reasons: list[str] = field(default_factory=list)


def allocate(
    requests: Sequence[Request],
    rules: Rules,
    *,
    today: dt.date,
    booked: Mapping[dt.date, int] | None = None,
    booked_by_store: Mapping[tuple[dt.date, str], int] | None = None,
) -> list[Outcome]:
    """Outcomes per (store, day), sorted by day then store. `booked` are units already taken."""
    booked = booked or {}
    booked_by_store = booked_by_store or {}
    cap = rules.max_per_store()
    wants: dict[tuple[dt.date, str], Outcome] = {}
    meta: dict[str, Request] = {}
    # Merge repeated requests of a store (keep its best tier and priority): order-independent.
    for r in sorted(requests, key=lambda r: (r.store_id, rules.tier_rank(r.tier), -r.priority)):
        meta.setdefault(r.store_id, r)
        for day in r.days:
            o = wants.setdefault((day, r.store_id), Outcome(r.store_id, day, 0))
            o.wanted += r.units
    outcomes = sorted(wants.values(), key=lambda o: (o.day, o.store_id))
    for day in sorted({o.day for o in outcomes}):
        todays = [o for o in outcomes if o.day == day]
        if not rules.in_window(day, today):
            for o in todays:
                o.reasons.append(
                    f"{day} is outside the booking window (from {rules.window_close_days} to "
                    f"{rules.window_open_days} days ahead)"
                )
            continue
        left = max(0, rules.capacity - booked.get(day, 0))
        tiers = sorted({rules.tier_rank(meta[o.store_id].tier) for o in todays})
        served_tiers: list[str] = []
        for rank in tiers:
            group = sorted(
                (o for o in todays if rules.tier_rank(meta[o.store_id].tier) == rank),
                key=lambda o: (-meta[o.store_id].priority, o.store_id),
            )
            tier_name = meta[group[0].store_id].tier
            active = list(group)
            while left > 0 and active:
                nxt = []
                for o in active:
                    if left == 0:
                        nxt.append(o)
                        continue
                    held = booked_by_store.get((day, o.store_id), 0) + o.granted
                    if held >= cap:
                        o.reasons.append(
                            f"maximum share reached: {cap} of {rules.capacity} units a day "
                            f"(max_share {rules.max_share})"
                        )
                        continue
                    o.granted += 1
                    left -= 1
                    if o.granted < o.wanted:
                        nxt.append(o)
                active = nxt
            for o in active:
                if o.granted < o.wanted and left == 0:
                    if served_tiers:
                        o.reasons.append(
                            "capacity used by higher tiers ("
                            + ", ".join(served_tiers)
                            + f") and by tier {tier_name} in turn"
                        )
                    else:
                        o.reasons.append(
                            f"capacity shared in turn within tier {tier_name} "
                            f"(priority {meta[o.store_id].priority})"
                        )
            for o in group:
                if o.granted < o.wanted and left == 0 and not o.reasons:
                    o.reasons.append("capacity used")
            served_tiers.append(tier_name)
        for o in todays:
            if o.granted < o.wanted and not o.reasons:
                o.reasons.append("capacity used by higher tiers")
            if o.granted and o.granted == o.wanted:
                o.reasons.append(
                    f"granted in full: tier {meta[o.store_id].tier} "
                    f"(rank {rules.tier_rank(meta[o.store_id].tier) + 1}), "
                    f"priority {meta[o.store_id].priority}"
                )
    return outcomes


def _reworded(reason: str, tier: str) -> str:
    """One reason of an outcome, told to the store it concerns (no other store named)."""
    if reason.startswith("maximum share reached"):
        return (
            "your store already holds the most one store may have that day ("
            + reason.split(": ", 1)[-1]
            + ")"
        )
    if reason.startswith("capacity used by higher tiers ("):
        higher = reason[len("capacity used by higher tiers (") :].split(")", 1)[0]
        return (
            f"the day's units went first to stores of higher tiers ({higher}), then in turn to "
            f"stores of your tier {tier}"
        )
    if reason.startswith("capacity used by higher tiers"):
        return "the day's units went to stores of higher tiers than your tier " + tier
    if reason.startswith("capacity shared in turn within tier"):
        return (
            f"the day's units were shared one at a time among the stores of your tier {tier}, "
            "higher priority first"
        )
    if " is outside the booking window" in reason:
        return "the day is outside the slot's booking window " + reason.split("window ", 1)[-1]
    if reason == "capacity used":
        return "the day's units were all taken"
    return reason


def explain_for_store(
    *,
    slot: str,
    day: dt.date,
    wanted: int,
    granted: int,
    tier: str,
    priority: int,
    reasons: list[str],
    rules: Rules,
) -> str:
    """A sentence for the store that asked: what it asked for, what it got, and why."""
    units = "unit" if wanted == 1 else "units"
    head = f"You asked for {wanted} {units} of {slot!r} on {day} and got {granted}"
    if granted >= wanted:
        return (
            f"{head}: all of them (your tier {tier} ranks {rules.tier_rank(tier) + 1} of "
            f"{len(rules.tier_order)}, priority {priority})."
        )
    why = "; ".join(_reworded(r, tier) for r in reasons if not r.startswith("granted in full"))
    return f"{head}: {why}." if why else f"{head}."
