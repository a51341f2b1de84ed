"""Real clocks: place timestamped rows on a series the detectors can read, and say what was odd.

Real feeds repeat a timestamp (a DST change writes 03:00 twice, a logger restarts), run backwards
(02:00 after 02:55 when the clock goes back) and change step (a sensor reports every 5 minutes,
then every 10, then skips an hour). None of that is a reason to refuse a row: every row gets a
score, in file order, and a warning says what was seen. A strictly increasing series on one regular
step (gaps allowed) is placed on its grid, so a gap is stepped over, never read as zero; anything
else is read row after row, one row one step, and the season comes from the median step.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

DAY = 86_400.0


@dataclass(frozen=True)
class Timeline:
    index: list[int]  # position of each row (in file order) on the series handed to a detector
    length: int  # length of that series (> len(index) when gaps are stepped over)
    step: float  # seconds: the grid step, or the median step of an irregular series
    regular: bool  # False: rows are read one after another, the step is only a median
    warnings: list[str] = field(default_factory=list)


def period_for(step: float, n: int) -> int | None:
    """A week of daily points; a day of shorter steps; none when the series is too short.

    An irregular step (a median of 540 s, say) is rounded to the nearest whole count per day."""
    if step <= 0:
        return None
    if abs(step - DAY) <= 3600:
        m = 7
    elif step < DAY:
        m = round(DAY / step)
    else:
        return None
    return m if m > 1 and n >= 3 * m else None


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def _line(i: int, first_line: int) -> str:
    return f"line {i + first_line}"


def build_timeline(
    times: list[float], labels: list[str] | None = None, *, first_line: int = 2
) -> Timeline:
    """`times` in epoch seconds, in file order; `labels` the timestamps as written (messages)."""
    shown = labels if labels is not None else [f"{t:g}" for t in times]
    diffs = [b - a for a, b in itertools.pairwise(times)]
    warnings: list[str] = []
    repeats = [i + 1 for i, d in enumerate(diffs) if d == 0]
    backwards = [i + 1 for i, d in enumerate(diffs) if d < 0]
    if repeats:
        i = repeats[0]
        warnings.append(
            f"warning: {len(repeats)} repeated timestamp(s), first {shown[i]!r} at "
            f"{_line(i, first_line)} (a clock change or a restarted logger?); every row is "
            "scored, in file order"
        )
    if backwards:
        i = backwards[0]
        warnings.append(
            f"warning: {len(backwards)} timestamp(s) earlier than the row before, first "
            f"{shown[i]!r} after {shown[i - 1]!r} at {_line(i, first_line)} (a clock set "
            "back?); every row is scored, in file order"
        )
    forward = [d for d in diffs if d > 0]
    if not forward:
        return Timeline(list(range(len(times))), len(times), DAY, False, warnings)
    if all(d >= DAY - 3600 and abs(d - DAY * round(d / DAY)) <= 3600 for d in forward):
        # local midnights across a daylight-saving change are 23 or 25 hours apart: still days
        forward = [DAY * round(d / DAY) for d in forward]
        diffs = [DAY * round(d / DAY) if d > 0 else d for d in diffs]
    step = min(forward)
    on_grid = all(abs(d / step - round(d / step)) <= 1e-6 * max(1.0, d / step) for d in forward)
    if not repeats and not backwards and on_grid:
        index, pos, gaps, missing = [0], 0, 0, 0
        for d in diffs:
            k = round(d / step)
            if k > 1:
                gaps += 1
                missing += k - 1
            pos += k
            index.append(pos)
        if gaps:
            warnings.append(
                f"warning: {gaps} gap(s) in the series, {missing} missing timestamp(s) at a "
                f"step of {step:g} s; scored across them, never read as zero"
            )
        return Timeline(index, pos + 1, step, True, warnings)
    median = _median(forward)
    if not on_grid:
        steps = sorted({round(d, 3) for d in forward})
        shown_steps = ", ".join(f"{s:g}" for s in steps[:5]) + (", ..." if len(steps) > 5 else "")
        warnings.append(
            f"warning: irregular steps ({len(steps)} different: {shown_steps} s); rows are read "
            f"one after another and the season comes from the median step, {median:g} s"
        )
    return Timeline(list(range(len(times))), len(times), median, False, warnings)
