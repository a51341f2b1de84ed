"""Completeness first: is a store-day's data all there?

The expected rows of a day are the (metric, dimensions) keys that arrived on most of the recent
days; a day missing some of them is incomplete. When the missing keys all share a dimension
value that has no row at all that day (every `device=mobile` row), the scope is named, so the
report says "no rows for device=mobile" rather than "visitors down 58%".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

Key = tuple[str, tuple[tuple[str, str], ...]]  # (metric, sorted dimension items)


def row_key(metric: str, dimensions: Mapping[str, str]) -> Key:
    return metric, tuple(sorted(dimensions.items()))


@dataclass(frozen=True)
class Completeness:
    day: date
    complete: bool
    expected: int
    present: int
    missing: int
    missing_scopes: list[dict[str, str]] = field(default_factory=list)
    reason: str = ""  # "no_data", "missing_rows" or ""


def assess_completeness(
    day: date,
    keys_by_day: Mapping[date, Collection[Key]],
    *,
    history: Sequence[date],
    min_presence: float = 0.5,
    tolerance: float = 0.02,
) -> Completeness:
    """Compare the day's keys with those present on at least `min_presence` of `history` days.

    `tolerance` is the share of expected keys that may be missing before the day counts as
    incomplete (a leaf that sells nothing some days has no row).
    """
    counts: Counter[Key] = Counter()
    hist_days = [d for d in history if d in keys_by_day]
    for d in hist_days:
        counts.update(set(keys_by_day[d]))
    need = max(1, int(min_presence * len(hist_days) + 0.999)) if hist_days else 1
    expected = {k for k, c in counts.items() if c >= need}
    today = set(keys_by_day.get(day, ()))
    if not today:
        return Completeness(day, False, len(expected), 0, len(expected), [{}], "no_data")
    missing = expected - today
    if len(missing) <= tolerance * max(1, len(expected)):
        return Completeness(day, True, len(expected), len(expected) - len(missing), len(missing))
    return Completeness(
        day,
        False,
        len(expected),
        len(expected) - len(missing),
        len(missing),
        _scopes(missing, today),
        "missing_rows",
    )


def _scopes(missing: set[Key], today: set[Key]) -> list[dict[str, str]]:
    """Dimension values every missing key has and no present key has, most general first."""
    present_values = {item for _, dims in today for item in dims}
    per_item: Counter[tuple[str, str]] = Counter(item for _, dims in missing for item in dims)
    whole = [
        item
        for item, c in per_item.items()
        if c == len(missing) or (item not in present_values and c >= 0.5 * len(missing))
    ]
    whole = [item for item in whole if item not in present_values]
    return [{k: v} for k, v in sorted(whole)]
