"""`python -m services.diagnosis.anomaly FILE.csv`: online anomaly scores of a regular series.

The CSV has `timestamp,value`; prints `timestamp,value,anomaly_score,label` for the same rows in
the same order. Timestamps are ISO 8601 dates or date-times, or epoch seconds, increasing, at one
regular step (5 minutes, an hour, a day...): the step gives the season (a week of days, a day of
shorter steps). A point's score uses only the points before it. An empty `value` is a missing
point (label 1: a data problem); missing timestamps (gaps) are stepped over and reported on
stderr, never read as zero. Bad input: a message on stderr, exit status 2.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from services.diagnosis.engine.anomaly import score_series
from services.diagnosis.engine.errors import InputError

MISSING = {"", "nan", "na", "n/a", "null", "none"}
DAY = 86_400.0


def _epoch(raw: str, line: int) -> float:
    s = raw.strip()
    try:
        return float(s)
    except ValueError:
        pass
    try:
        if len(s) == 10:
            d = date.fromisoformat(s)
            return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise InputError(
            f"line {line}: timestamp is not ISO 8601 or epoch seconds: {raw!r}"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _value(raw: str, line: int) -> float | None:
    s = raw.strip()
    if s.lower() in MISSING:
        return None
    try:
        v = float(s)
    except ValueError:
        raise InputError(f"line {line}: value is not a number: {raw!r}") from None
    if math.isinf(v):
        raise InputError(f"line {line}: value is infinite: {raw!r}")
    return v


def period_for(step: float, n: int) -> int | None:
    """A week of daily points; a day of shorter steps; none when the series is too short."""
    if abs(step - DAY) < 1e-6:
        m = 7
    elif step < DAY and abs(DAY / step - round(DAY / step)) < 1e-6:
        m = round(DAY / step)
    else:
        return None
    return m if n >= 3 * m else None


def run(path: str) -> tuple[str, list[str]]:
    """The output CSV and the warnings (raises InputError on bad input)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise InputError("the series is empty: expected a header timestamp,value and rows")
    header = [h.strip() for h in header]
    if "timestamp" not in header or "value" not in header:
        raise InputError(f"the CSV needs the columns timestamp and value, got {header}")
    it, iv = header.index("timestamp"), header.index("value")
    raw_rows: list[tuple[str, str]] = []
    for i, row in enumerate(reader):
        if not row:
            continue
        if len(row) != len(header):
            raise InputError(f"line {i + 2}: {len(row)} fields, the header has {len(header)}")
        raw_rows.append((row[it], row[iv]))
    if not raw_rows:
        raise InputError("the series is empty: no rows after the header")
    scored, warnings = score_rows(raw_rows)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["timestamp", "value", "anomaly_score", "label"])
    for ts, raw, score, label in scored:
        w.writerow([ts, raw, f"{score:.4f}", label])
    return out.getvalue(), warnings


def score_rows(
    raw_rows: list[tuple[str, str]], *, first_line: int = 2
) -> tuple[list[tuple[str, str, float, int]], list[str]]:
    """(timestamp, value) as text -> (timestamp, value, score, label) in the same order, and
    the warnings; shared by the CLI and `POST /v1/anomalies` so both give the same scores.
    `first_line` numbers the rows in messages (2: the CSV's first line after its header)."""
    if not raw_rows:
        raise InputError("the series is empty: no points")
    off = first_line
    times = [_epoch(t, i + off) for i, (t, _) in enumerate(raw_rows)]
    values = [_value(v, i + off) for i, (_, v) in enumerate(raw_rows)]
    warnings: list[str] = []
    diffs = [b - a for a, b in itertools.pairwise(times)]
    for i, d in enumerate(diffs):
        if d <= 0:
            raise InputError(
                f"line {i + off + 1}: timestamps must increase (duplicate or out of order: "
                f"{raw_rows[i + 1][0]!r} after {raw_rows[i][0]!r})"
            )
    step = min(diffs) if diffs else DAY
    if diffs and all(d >= DAY - 3600 and abs(d - DAY * round(d / DAY)) <= 3600 for d in diffs):
        # local midnights across a daylight-saving change are 23 or 25 hours apart: still days
        step = DAY
        diffs = [DAY * round(d / DAY) for d in diffs]
    grid: list[float | None] = []
    index: list[int] = []  # position of each input row on the regular grid
    gaps = missing_steps = 0
    for i, v in enumerate(values):
        if i:
            k = diffs[i - 1] / step
            if abs(k - round(k)) > 1e-6 * max(1.0, k):
                raise InputError(
                    f"line {i + off}: irregular timestamps: {diffs[i - 1]:g} s is not a multiple "
                    f"of the step {step:g} s"
                )
            extra = round(k) - 1
            if extra:
                gaps += 1
                missing_steps += extra
                grid.extend([None] * extra)
        index.append(len(grid))
        grid.append(v)
    if gaps:
        warnings.append(
            f"warning: {gaps} gap(s) in the series, {missing_steps} missing timestamp(s) at a "
            f"step of {step:g} s; scored across them, never read as zero"
        )
    present = [v for v in values if v is not None]
    if not present:
        raise InputError("every value is missing")
    if max(present) == min(present):
        warnings.append("warning: the series is constant: nothing stands out, every score is 0")
    points = score_series(grid, period=period_for(step, len(grid)))
    scored = []
    for (ts, raw), pos in zip(raw_rows, index, strict=True):
        p = points[pos]
        scored.append((ts, raw, p.score, int(p.label)))
    return scored, warnings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m services.diagnosis.anomaly FILE.csv", file=sys.stderr)
        return 2
    try:
        text, warnings = run(args[0])
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(warning, file=sys.stderr)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
