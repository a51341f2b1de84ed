"""File formats of imports (pure: no database, no clock): presets as data, the header mapping,
streaming readers that know the byte offset after every record, and records turned into rows.

A CSV is long (date, metric, value, dimension columns) or wide (date, dimension columns, one
column per metric); NDJSON holds one object per line, long ({"date","metric","value",
"dimensions"}) or wide ({"date", "dimensions", "<metric>": value ...}). Presets map the exports
operators really have (presets/*.yaml) onto the same rows.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, NamedTuple

import yaml

from services.ingest.linemaps import LineSums, folded_list, folded_values, map_cell
from shared import grains
from shared.events.common import DERIVED_METRICS, RAW_METRICS, SCORE_METRICS
from shared.jsonguard import JsonRefused, check_json

PRESETS_DIR = Path(__file__).parent / "presets"
# Columns read as dimensions by name: the registry's (shared/dimensions.toml); others need dim_.
KNOWN_DIMENSIONS = (*grains.registry().partition, *sorted(grains.registry().slices))
DIM_PREFIX = "dim."
_NUMBER_JUNK = re.compile(r"[,\s\u00a0'¥$€£]")


class HeaderProblem(Exception):
    """The file's header cannot be mapped: [(column, message)]."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{c}: {m}" for c, m in problems))
        self.problems = problems


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    layout: str
    encoding: str
    date_column: str
    date_formats: tuple[str, ...]
    dimensions: dict[str, dict[str, Any]]
    constants: dict[str, str]
    metrics: dict[str, dict[str, str]]
    ignore: frozenset[str]
    sample: str
    # Lines landing on one identity after the value tables are summed (linemaps.LineSums).
    sum_lines: bool = False
    # Columns that mean the file is another export: refused with the message (e.g. "use X").
    refuse: dict[str, str] = field(default_factory=dict)
    # Columns not imported that still tell lines apart (a referrer's name under its source):
    # lines differing there are summed, not taken for a repeat of one line.
    details: tuple[str, ...] = ()
    # Slice dimensions whose lines also make rows without them (summed): an ad export's
    # campaigns are a slice of the store, but their sum is the paid channel's row.
    also_total_over: tuple[str, ...] = ()


@lru_cache(maxsize=1)
def presets() -> dict[str, Preset]:
    out = {}
    for path in sorted(PRESETS_DIR.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        dims = {
            col: (spec if isinstance(spec, dict) else {"name": spec})
            for col, spec in (raw.get("dimensions") or {}).items()
        }
        sum_lines = bool(raw.get("sum_lines", False))
        if sum_lines and any(s["metric"] in SCORE_METRICS for s in raw["metrics"].values()):
            raise ValueError(f"preset {raw['name']}: scores do not add up, so no sum_lines")
        out[raw["name"]] = Preset(
            name=raw["name"],
            description=" ".join(raw["description"].split()),
            layout=raw["layout"],
            encoding=raw.get("encoding", "utf-8-sig"),
            date_column=raw["date"]["column"],
            date_formats=tuple(raw["date"]["formats"]),
            dimensions=dims,
            constants=dict(raw.get("constants") or {}),
            metrics=dict(raw["metrics"]),
            ignore=frozenset(raw.get("ignore") or ()),
            sample=raw.get("sample", ""),
            sum_lines=sum_lines,
            refuse=dict(raw.get("refuse") or {}),
            details=tuple(raw.get("details") or ()),
            also_total_over=tuple(raw.get("also_total_over") or ()),
        )
    return out


@dataclass
class Mapping:
    """How the columns of one file become rows."""

    layout: str  # long | wide
    date_col: str
    date_formats: tuple[str, ...] = ("%Y-%m-%d",)
    metric_col: str | None = None
    value_col: str | None = None
    metric_cols: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    dim_cols: dict[str, tuple[str, dict[str, str] | None, str | None]] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # column -> {totals, subtotals, unknown} (linemaps.map_cell); values in dim_cols are folded
    dim_rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    sum_lines: bool = False
    detail_cols: list[str] = field(default_factory=list)
    total_over: list[str] = field(default_factory=list)  # dimension names (Preset.also_total_over)

    def to_json(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "date_col": self.date_col,
            "date_formats": list(self.date_formats),
            "metric_col": self.metric_col,
            "value_col": self.value_col,
            "metric_cols": {k: list(v) for k, v in self.metric_cols.items()},
            "dim_cols": {k: list(v) for k, v in self.dim_cols.items()},
            "constants": self.constants,
            "ignored": self.ignored,
            "warnings": self.warnings,
            "dim_rules": self.dim_rules,
            "sum_lines": self.sum_lines,
            "detail_cols": self.detail_cols,
            "total_over": self.total_over,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Mapping:
        return cls(
            layout=d["layout"],
            date_col=d["date_col"],
            date_formats=tuple(d["date_formats"]),
            metric_col=d["metric_col"],
            value_col=d["value_col"],
            metric_cols={k: (v[0], v[1]) for k, v in d["metric_cols"].items()},
            # folded again: jobs queued before values were folded keep matching (idempotent)
            dim_cols={k: (v[0], folded_values(v[1]), v[2]) for k, v in d["dim_cols"].items()},
            constants=d["constants"],
            ignored=d["ignored"],
            warnings=d["warnings"],
            # jobs queued before these keys existed read as before
            dim_rules=d.get("dim_rules", {}),
            sum_lines=d.get("sum_lines", False),
            detail_cols=d.get("detail_cols", []),
            total_over=d.get("total_over", []),
        )


def _is_metric(name: str) -> bool:
    return name in RAW_METRICS or (name.startswith("custom.") and len(name) > 7)


def _dimension_name(col: str) -> str | None:
    if col in KNOWN_DIMENSIONS:
        return col
    if col.startswith(DIM_PREFIX) and re.fullmatch(r"[a-z][a-z0-9_]{0,63}", col[4:]):
        return col[4:]
    return None


def resolve_mapping(
    header: list[str], *, preset: str | None = None, ndjson: bool = False
) -> Mapping:
    """Map a header (the column names, or an NDJSON object's keys) or raise HeaderProblem."""
    cols = [c.strip() for c in header]
    problems: list[tuple[str, str]] = []
    dupes = {c for c in cols if cols.count(c) > 1}
    for c in sorted(dupes):
        problems.append((c, "column appears more than once"))
    if preset is not None:
        p = presets().get(preset)
        if p is None:
            raise HeaderProblem(
                [("preset", f"unknown preset {preset!r}; one of: " + ", ".join(sorted(presets())))]
            )
        if p.date_column not in cols:
            problems.append((p.date_column, "the preset's date column is missing"))
        m = Mapping(
            layout="wide",
            date_col=p.date_column,
            date_formats=p.date_formats,
            constants=dict(p.constants),
            sum_lines=p.sum_lines or bool(p.also_total_over),
            total_over=list(p.also_total_over),
        )
        for c in cols:
            if c == p.date_column:
                continue
            if c in p.refuse:
                problems.append((c, p.refuse[c]))
            elif c in p.metrics:
                spec = p.metrics[c]
                m.metric_cols[c] = (spec["metric"], spec.get("transform"))
            elif c in p.dimensions:
                dspec = p.dimensions[c]
                values = folded_values(dspec.get("values"))
                m.dim_cols[c] = (dspec["name"], values, dspec.get("default"))
                rules = {
                    "totals": folded_list(dspec.get("totals")),
                    "subtotals": folded_list(dspec.get("subtotals")),
                    "unknown": dspec.get("unknown"),
                }
                if any(rules.values()):
                    m.dim_rules[c] = rules
            elif c in p.details:
                m.ignored.append(c)
                m.detail_cols.append(c)
            elif c in p.ignore:
                m.ignored.append(c)
            else:
                # Exports gain columns over time: an unknown one is reported, not fatal.
                m.ignored.append(c)
                m.warnings.append(f"column {c!r} is not in preset {preset!r} and was ignored")
        if not m.metric_cols:
            problems.append(
                (
                    "header",
                    f"none of the preset's metric columns is present "
                    f"({', '.join(sorted(p.metrics))})",
                )
            )
        if problems:
            raise HeaderProblem(problems)
        return m

    if "date" not in cols:
        problems.append(("date", "a date column is required"))
    long = "metric" in cols or "value" in cols
    m = Mapping(layout="long" if long else "wide", date_col="date")
    if long:
        for need in ("metric", "value"):
            if need not in cols:
                problems.append((need, "a long file needs both metric and value columns"))
        m.metric_col, m.value_col = "metric", "value"
    for c in cols:
        if c in ("date", "metric", "value") or (ndjson and c == "dimensions"):
            continue
        if not long and _is_metric(c):
            m.metric_cols[c] = (c, None)
            continue
        dim = _dimension_name(c)
        if dim is not None:
            m.dim_cols[c] = (dim, None, None)
        elif c in DERIVED_METRICS:
            problems.append((c, f"{c} is derived from base metrics; send its parts instead"))
        else:
            problems.append(
                (
                    c,
                    "unknown column: not a metric, nor a dimension (channel, "
                    "device, region, category, product_id, copy_id, campaign, "
                    "or dim.<name>)",
                )
            )
    if not long and not m.metric_cols and not ndjson:
        problems.append(("header", "no metric column (a wide file has one column per metric)"))
    if problems:
        raise HeaderProblem(problems)
    return m


def parse_number(raw: str) -> float | None:
    """'1,234.50' -> 1234.5; '' and '-' -> None (no value); anything else non-numeric raises."""
    text = _NUMBER_JUNK.sub("", raw)
    if text in ("", "-", "--"):
        return None
    if text.endswith("%"):
        raise ValueError("a percentage is not a base metric")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def parse_date(raw: str, formats: tuple[str, ...]) -> date:
    text = raw.strip()
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"not a date in the expected format ({', '.join(formats)})")


Problem = tuple[str | None, str]  # (column, message)


def record_rows(
    record: dict[str, Any], m: Mapping
) -> tuple[list[dict[str, Any]], list[Problem], list[Problem]]:
    """One CSV record (column -> text) or NDJSON object into metric rows, or problems; and the
    line's warnings (a value kept under `unknown`, a subtotal line skipped), which reject
    nothing. Each row names the column its value came from, for its problems."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    raw_date = record.get(m.date_col)
    if raw_date is None or (isinstance(raw_date, str) and not raw_date.strip()):
        return [], [(m.date_col, "the date is missing")], warnings
    try:
        day = parse_date(str(raw_date), m.date_formats)
    except ValueError as exc:
        return [], [(m.date_col, str(exc))], warnings
    dims = dict(m.constants)
    nested = record.get("dimensions")
    if nested is not None:
        if not isinstance(nested, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in nested.items()
        ):
            return [], [("dimensions", "dimensions must be an object of strings")], warnings
        dims.update(nested)
    for col, (name, values, default) in m.dim_cols.items():
        raw = record.get(col)
        text = "" if raw is None else str(raw).strip()
        if values is not None:
            cell = map_cell(text, name, values, default, m.dim_rules.get(col, {}))
            if cell.warning:
                warnings.append((col, cell.warning))
            if cell.kind == "subtotal":
                return [], [], warnings
            text = cell.value
        if text:
            dims[name] = text
    rows: list[dict[str, Any]] = []
    if m.layout == "long":
        metric = record.get(m.metric_col or "metric")
        if not isinstance(metric, str) or not metric.strip():
            return [], [(m.metric_col or "metric", "the metric is missing")], warnings
        try:
            value = _value(record.get(m.value_col or "value"))
        except ValueError as exc:
            return [], [(m.value_col or "value", str(exc))], warnings
        if value is None:
            return [], [(m.value_col or "value", "the value is missing")], warnings
        rows.append(
            {
                "date": day,
                "metric": metric.strip(),
                "value": value,
                "dimensions": dims,
                "column": m.value_col or "value",
            }
        )
        return rows, problems, warnings
    for col, (metric, transform) in m.metric_cols.items():
        try:
            value = _value(record.get(col))
        except ValueError as exc:
            problems.append((col, str(exc)))
            continue
        if value is None:
            continue
        if transform == "abs":
            value = abs(value)
        rows.append(
            {"date": day, "metric": metric, "value": value, "dimensions": dict(dims), "column": col}
        )
    return (rows, problems, warnings) if not problems else ([], problems, warnings)


def _value(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValueError("not a number")
    if isinstance(raw, int | float):
        if not math.isfinite(float(raw)):
            raise ValueError("not a finite number")
        return float(raw)
    if isinstance(raw, str):
        try:
            return parse_number(raw)
        except ValueError as exc:
            msg = str(exc)
            raise ValueError(
                msg if "percentage" in msg or "finite" in msg else f"not a number: {raw[:40]!r}"
            ) from None
    raise ValueError("not a number")


# ---- streaming readers ------------------------------------------------------------------------


def sniff_encoding(head: bytes, declared: str = "auto") -> str:
    if declared not in ("auto", ""):
        return declared
    cut = head.rfind(b"\n")
    sample = head if cut < 0 else head[: cut + 1]
    try:
        sample.decode("utf-8")
        return "utf-8-sig"
    except UnicodeDecodeError:
        return "gb18030"


class _Lines:
    """Decoded lines of a binary file from a byte offset, counting bytes and lines as the csv
    reader pulls them (it pulls exactly one record's lines at a time)."""

    def __init__(self, f: IO[bytes], encoding: str, offset: int, line: int) -> None:
        self.f = f
        self.encoding = encoding
        self.offset = offset
        self.line = line
        f.seek(offset)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = self.f.readline()
        if not raw:
            raise StopIteration
        self.offset += len(raw)
        self.line += 1
        if self.line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError:
            return raw.decode(self.encoding, errors="replace")


@dataclass
class Record:
    line: int  # the record's first line in the file (1-based)
    end_offset: int  # byte offset just after the record
    end_line: int
    values: dict[str, Any] | None  # None when the record itself is broken
    problem: str | None = None


def read_header(f: IO[bytes], fmt: str, encoding: str) -> tuple[list[str], int, int]:
    """(column names, byte offset after the header, lines it took). NDJSON has no header: the
    first object's keys stand for it and reading starts at 0."""
    f.seek(0)
    if fmt == "ndjson":
        first = f.readline()
        try:
            check_json(first)
            obj = json.loads(first.decode(encoding))
        except (ValueError, UnicodeDecodeError) as exc:
            raise HeaderProblem([("line 1", f"not a JSON object: {exc}")]) from exc
        if not isinstance(obj, dict):
            raise HeaderProblem([("line 1", "each line must be a JSON object")])
        return list(obj), 0, 0
    lines = _Lines(f, encoding, 0, 0)
    top = next(lines, None)
    if top is None or not top.strip():
        raise HeaderProblem([("header", "the file is empty or starts with an empty line")])
    try:
        header = next(csv.reader([top.rstrip("\r\n")], strict=True))
    except csv.Error as exc:
        raise HeaderProblem([("header", f"broken CSV header: {exc}")]) from exc
    return header, lines.offset, lines.line


def read_records(
    f: IO[bytes], fmt: str, encoding: str, header: list[str], offset: int, line: int
) -> Iterator[Record]:
    """Records from a byte offset on; a broken record is yielded with its problem."""
    lines = _Lines(f, encoding, offset, line)
    if fmt == "ndjson":
        for text in lines:
            start = lines.line
            if not text.strip():
                continue
            try:
                # Before the (recursive) parser: a line nested 5,000 deep is a line problem.
                check_json(text)
                obj = json.loads(text)
            except JsonRefused as exc:
                at = ".".join(map(str, exc.loc))
                yield Record(
                    start, lines.offset, lines.line, None, f"{at + ': ' if at else ''}{exc}"
                )
                continue
            except ValueError as exc:
                yield Record(start, lines.offset, lines.line, None, f"not JSON: {exc}")
                continue
            if not isinstance(obj, dict):
                yield Record(start, lines.offset, lines.line, None, "not a JSON object")
                continue
            yield Record(start, lines.offset, lines.line, obj)
        return
    names = [h.strip() for h in header]
    # One physical line is one record: a stray quote then spoils its own line only, instead of
    # swallowing the rest of the file into one field (metric exports have no multi-line cells).
    for text in lines:
        start = lines.line
        if not text.strip():
            continue
        try:
            fields = next(csv.reader([text.rstrip("\r\n")], strict=True))
        except csv.Error as exc:
            yield Record(start, lines.offset, lines.line, None, f"broken CSV: {exc}")
            continue
        if len(fields) != len(names):
            yield Record(
                start,
                lines.offset,
                lines.line,
                None,
                f"{len(fields)} fields where the header has {len(names)}",
            )
            continue
        yield Record(start, lines.offset, lines.line, dict(zip(names, fields, strict=True)))


# ---- whole steps, run in a worker thread (file I/O stays off the event loop) -------------------


def inspect_file(
    path: Path, fmt: str, preset: str | None, declared: str
) -> tuple[int, str, list[str], int, int, Mapping]:
    """(size, encoding, header, byte offset after it, its lines, mapping) or HeaderProblem."""
    size = path.stat().st_size
    with path.open("rb") as f:
        enc = sniff_encoding(f.read(65536), declared)
        header, header_end, header_lines = read_header(f, fmt, enc)
    mapping = resolve_mapping(header, preset=preset, ndjson=fmt == "ndjson")
    return size, enc, header, header_end, header_lines, mapping


@dataclass
class Batch:
    rows: list[Any]
    problems: list[dict[str, Any]]
    rejected: int
    end_offset: int
    end_line: int
    done: bool
    dates: list[str] = field(default_factory=list)  # days written (for a sum_lines mapping)


def parse_batch(
    path: Path,
    fmt: str,
    encoding: str,
    header: list[str],
    mapping: Mapping,
    offset: int,
    line: int,
    batch_rows: int,
    latest: date,
    closed_dates: frozenset[str] = frozenset(),
) -> Batch:
    """The next records from `offset` into validated rows, up to `batch_rows` rows. A repeated
    identity ends the batch, so that the later value counts as an update exactly as if the
    lines had been sent one at a time. A sum_lines mapping instead sums the lines of one
    identity (LineSums), so a batch ends only before a day it has not seen yet, and a day that
    an earlier batch wrote (`closed_dates`) is refused rather than overwritten by a part sum."""
    rows: list[ImportRow] = []
    sums = LineSums() if mapping.sum_lines else None
    keys: set[tuple[Any, ...]] = set()
    problems: list[dict[str, Any]] = []
    rejected = 0
    end_offset, end_line = offset, line

    def result(done: bool) -> Batch:
        if sums is None:
            return Batch(rows, problems, rejected, end_offset, end_line, done)
        dates = sorted(d.isoformat() for d in sums.dates)
        return Batch(sums.rows(), problems, rejected, end_offset, end_line, done, dates)

    with path.open("rb") as f:
        for rec in read_records(f, fmt, encoding, header, offset, line):
            if rec.values is None:
                rejected += 1
                # The only problem without a column: the line could not be split into columns.
                problems.append({"line": rec.line, "column": None, "message": rec.problem})
                end_offset, end_line = rec.end_offset, rec.end_line
                continue
            try:
                good, errs, warns = _good_rows(rec.values, mapping, latest)
            except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
                # A line no check foresaw is still one line: it must not fail the whole job
                # (and lose the good lines after it) once the import was accepted.
                good, errs, warns = [], [(None, f"the line cannot be read: {exc!r}"[:500])], []
            new_keys = {(g.date, g.metric, json.dumps(g.dimensions, sort_keys=True)) for g in good}
            if good and not errs:
                if sums is None:
                    if keys & new_keys or len(rows) + len(good) > batch_rows:
                        return result(done=False)
                elif any(g.date.isoformat() in closed_dates for g in good):
                    errs.append((mapping.date_col, _CLOSED_DAY.format(day=good[0].date)))
                elif len(sums) + sums.would_add(good) > batch_rows and not (
                    {g.date for g in good} <= sums.dates
                ):
                    return result(done=False)
            problems.extend(
                {"line": rec.line, "column": c, "message": m[:500]} for c, m in warns + errs
            )
            end_offset, end_line = rec.end_offset, rec.end_line
            if errs:
                rejected += 1
            elif sums is not None:
                line_key = [*mapping.dim_cols, *mapping.detail_cols]
                if mapping.total_over:
                    drop = set(mapping.total_over)
                    good = good + [
                        g._replace(
                            dimensions={k: v for k, v in g.dimensions.items() if k not in drop}
                        )
                        for g in good
                        if drop & set(g.dimensions)
                    ]
                sums.add(tuple(str(rec.values.get(c, "")).strip() for c in line_key), good)
            else:
                keys |= new_keys
                rows.extend(good)
    return result(done=True)


_CLOSED_DAY = (
    "lines of {day} were already imported and summed from earlier in this file; a day's lines "
    "must come together to be summed (sort the export by date and import it again)"
)


def _good_rows(
    values: dict[str, Any], mapping: Mapping, latest: date
) -> tuple[list[ImportRow], list[Problem], list[Problem]]:
    parsed, errs, warns = record_rows(values, mapping)
    good: list[ImportRow] = []
    for r in parsed:
        try:
            row = validate_row(r)
        except RowProblem as exc:
            errs.append((_column(exc, r, mapping), exc.message))
            continue
        if row.date > latest:
            errs.append(
                (mapping.date_col, f"date {row.date} is in the future for the store's timezone")
            )
            continue
        good.append(row)
    # A bad dimension fails every row of its line alike: say it once.
    return good, list(dict.fromkeys(errs)), warns


class ImportRow(NamedTuple):
    """A row of a file that passed the same checks as the API's MetricRowIn (plain functions
    here: a pydantic model per row would cost more than the database write)."""

    date: date
    metric: str
    value: float
    dimensions: dict[str, str]


class RowProblem(Exception):
    def __init__(self, field: str, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.key = key  # the dimension concerned, when field is "dimensions"


def validate_row(r: dict[str, Any]) -> ImportRow:
    from pydantic_core import PydanticCustomError

    from services.ingest.schemas import check_dimensions, check_metric_name, check_value

    field = "metric"
    try:
        metric = check_metric_name(r["metric"])
        field = "value"
        value = check_value(metric, float(r["value"]))
        field = "dimensions"
        dims = check_dimensions(r["dimensions"])
    except PydanticCustomError as exc:
        ctx = exc.context or {}
        key = "channel" if exc.type == "channel" else ctx.get("key")
        raise RowProblem(field, exc.message(), key) from None
    return ImportRow(r["date"], metric, value, dims)


def _column(exc: RowProblem, row: dict[str, Any], mapping: Mapping) -> str:
    """The file's column a row problem concerns: every row problem concerns one."""
    if exc.field == "metric" and mapping.layout == "long":
        return mapping.metric_col or "metric"
    if exc.field in ("metric", "value"):
        return str(row.get("column") or mapping.value_col or "value")
    cols = [c for c, (name, _, _) in mapping.dim_cols.items() if name == exc.key]
    if cols:
        return cols[0]
    if exc.key is not None and exc.key in mapping.constants:
        return "preset"  # a preset's constant dimension: not a column of the file
    if exc.key is None and mapping.dim_cols:
        return ", ".join(mapping.dim_cols)[:200]  # too many dimensions: all their columns
    return "dimensions"  # NDJSON's nested object
