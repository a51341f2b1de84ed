"""Completeness first: is a store-day's data all there?

The expected rows of a day are the (metric, dimensions) keys that arrived on most of the recent
days; a day missing some of them is incomplete. When the missing keys all share a dimension
value that has no row at all that day (every `device=mobile` row), the scope is named, so the
report says "no rows for device=mobile" rather than "visitors down 58%".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import numpy.typing as npt

from services.diagnosis.engine.columns import distinct

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


def assess_completeness_codes(
    day: date,
    dates: Sequence[date],
    date_codes: npt.NDArray[np.int64],
    key_codes: npt.NDArray[np.int64],
    key_of: Callable[[int], Key],
    *,
    history: Sequence[date],
    min_presence: float = 0.5,
    tolerance: float = 0.02,
) -> Completeness:
    """`assess_completeness` over rows given as codes: row i is on dates[date_codes[i]] with
    the key key_of(key_codes[i]); `dates` has no repeated date and distinct codes are distinct
    keys. The same result, without a set of tuples per day (a wide store-day has 100,000+)."""
    n_keys = int(key_codes.max()) + 1 if len(key_codes) else 1
    code_of = {d: i for i, d in enumerate(dates)}
    if len(dates) * n_keys <= 8_000_000:
        # which keys each day has, as a day x key table of flags
        seen = np.zeros(len(dates) * n_keys, dtype=bool)
        seen[date_codes * n_keys + key_codes] = True
        pair = np.flatnonzero(seen)
    else:
        pair = distinct(date_codes * n_keys + key_codes)
    pair_day, pair_key = np.divmod(pair, n_keys)  # distinct (day, key), by day
    with_rows = {dates[c] for c in distinct(pair_day).tolist()}
    hist_days = [d for d in history if d in with_rows]
    # a day listed twice in history counts twice, as in assess_completeness
    weight = np.zeros(len(dates), dtype=np.int64)
    for d in hist_days:
        weight[code_of[d]] += 1
    counts = np.bincount(pair_key, weights=weight[pair_day], minlength=n_keys)
    need = max(1, int(min_presence * len(hist_days) + 0.999)) if hist_days else 1
    expected = np.flatnonzero(counts >= need)
    today_code = code_of.get(day) if day in with_rows else None
    today = pair_key[pair_day == today_code] if today_code is not None else pair_key[:0]
    if not len(today):
        return Completeness(day, False, len(expected), 0, len(expected), [{}], "no_data")
    missing = np.setdiff1d(expected, today, assume_unique=True)
    n_exp, n_miss = len(expected), len(missing)
    if n_miss <= tolerance * max(1, n_exp):
        return Completeness(day, True, n_exp, n_exp - n_miss, n_miss)
    return Completeness(
        day,
        False,
        n_exp,
        n_exp - n_miss,
        n_miss,
        _scopes({key_of(int(k)) for k in missing}, {key_of(int(k)) for k in today}),
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
