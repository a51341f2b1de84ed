"""`python -m services.diagnosis.anomaly FILE.csv [--mode auto|seasonal|stream]`: online scores.

The CSV has `timestamp,value`; prints `timestamp,value,anomaly_score,label` for the same rows in
the same order. Timestamps are ISO 8601 dates or date-times, or epoch seconds. A point's score
uses only the points before it. Real clocks are taken as they are (engine/timeline.py): repeated
timestamps, timestamps that run backwards (a DST change) and irregular steps are read row after
row with the season from the median step, and a warning on stderr says what was odd; on one
regular step, missing timestamps (gaps) are stepped over, never read as zero. An empty `value` is a
missing point (label 1: a data problem). Two detectors: `seasonal` (engine/anomaly.py, robust
Holt-Winters, the daily reports' detector) and `stream` (engine/stream.py, the likelihood of
surprise, for high-frequency feeds); `auto` takes the stream for sub-daily series long enough for
its history. Only unparseable input is refused: a message with the line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal, get_args

from services.diagnosis.engine.anomaly import score_series
from services.diagnosis.engine.errors import InputError
from services.diagnosis.engine.stream import score_stream
from services.diagnosis.engine.timeline import DAY, build_timeline, period_for

Mode = Literal["auto", "seasonal", "stream"]
# below this many rows a stream has too little history for its likelihood: the seasonal
# detector (robust Holt-Winters, labels at |z| > k) reads it instead
STREAM_MIN_POINTS = 500

MISSING = {"", "nan", "na", "n/a", "null", "none"}


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


def run(path: str, mode: Mode = "auto") -> tuple[str, list[str]]:
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
    scored, warnings = score_rows(raw_rows, mode=mode)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["timestamp", "value", "anomaly_score", "label"])
    for ts, raw, score, label in scored:
        w.writerow([ts, raw, f"{score:.4f}", label])
    return out.getvalue(), warnings


def score_rows(
    raw_rows: list[tuple[str, str]], *, first_line: int = 2, mode: Mode = "auto"
) -> tuple[list[tuple[str, str, float, int]], list[str]]:
    """(timestamp, value) as text -> (timestamp, value, score, label) in the same order, and
    the warnings; shared by the CLI and `POST /v1/anomalies` so both give the same scores.
    `first_line` numbers the rows in messages (2: the CSV's first line after its header)."""
    if not raw_rows:
        raise InputError("the series is empty: no points")
    off = first_line
    times = [_epoch(t, i + off) for i, (t, _) in enumerate(raw_rows)]
    values = [_value(v, i + off) for i, (_, v) in enumerate(raw_rows)]
    present = [v for v in values if v is not None]
    if not present:
        raise InputError("every value is missing")
    tl = build_timeline(times, [t for t, _ in raw_rows], first_line=off)
    warnings = list(tl.warnings)
    if max(present) == min(present):
        warnings.append("warning: the series is constant: nothing stands out, every score is 0")
    grid: list[float | None] = [None] * tl.length
    for pos, v in zip(tl.index, values, strict=True):
        grid[pos] = v
    period = period_for(tl.step, tl.length)
    use = mode
    if use == "auto":
        use = "stream" if tl.step < DAY - 3600 and len(values) >= STREAM_MIN_POINTS else "seasonal"
    if use == "stream":
        scores = [(p.score, p.label) for p in score_stream(grid, period=period)]
    else:
        scores = [(p.score, int(p.label)) for p in score_series(grid, period=period)]
    scored = []
    for (ts, raw), pos in zip(raw_rows, tl.index, strict=True):
        score, label = scores[pos]
        scored.append((ts, raw, score, label))
    return scored, warnings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m services.diagnosis.anomaly",
        description="Online anomaly scores of a timestamp,value CSV.",
    )
    ap.add_argument("file")
    ap.add_argument(
        "--mode",
        choices=get_args(Mode),
        default="auto",
        help="seasonal: robust Holt-Winters (daily KPIs); stream: likelihood of surprise "
        "(high-frequency feeds); auto: stream for sub-daily series of at least "
        f"{STREAM_MIN_POINTS} rows",
    )
    try:
        args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        text, warnings = run(args.file, args.mode)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(warning, file=sys.stderr)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
