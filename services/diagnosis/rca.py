"""`python -m services.diagnosis.rca FILE.csv`: the root-cause set of a change, as JSON.

The CSV has one column per dimension plus `real` and `predict` (one row per leaf), or, for a
ratio KPI, `real_num`, `real_den`, `predict_num`, `predict_den`. Prints a JSON list of elements,
most likely first, each an object {"<dimension>": "<value>", ...}; `[]` when there is nothing
to explain or no single cause (said on stderr). Bad input: a message on stderr, exit status 2.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from services.diagnosis.engine.errors import InputError
from services.diagnosis.engine.rootcause import RcaResult, leaves_from_rows, localize

ADDITIVE = ("real", "predict")
RATIO = ("real_num", "real_den", "predict_num", "predict_den")


def is_ratio(columns: Sequence[str]) -> bool | None:
    """True for the four ratio columns, False for real/predict, None for neither."""
    if all(c in columns for c in RATIO):
        return True
    if all(c in columns for c in ADDITIVE):
        return False
    return None


def localize_rows(
    dims: Sequence[str],
    rows: Sequence[Mapping[str, object]],
    *,
    ratio: bool,
    row_name: str = "row",
    first: int = 0,
) -> RcaResult:
    """The CLI's computation, shared with `POST /v1/rca` so both give the same set."""
    return localize(leaves_from_rows(dims, rows, ratio=ratio, row_name=row_name, first=first))


def run(path: str) -> str:
    """Parse the file, localise, return the JSON line (raises InputError on bad input)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise InputError("the file is empty: expected a header with dimensions, real, predict")
    if len(set(header)) != len(header):
        raise InputError(f"duplicate column names in the header: {header}")
    reader.fieldnames = header
    found = is_ratio(header)
    if found is None:
        raise InputError(
            "the CSV needs the columns real and predict "
            "(or real_num, real_den, predict_num, predict_den for a ratio KPI)"
        )
    ratio = found
    known = set(ADDITIVE) | set(RATIO)
    dims = [h for h in header if h not in known]
    rows = []
    for i, row in enumerate(reader):
        if None in row or any(v is None for v in row.values()):
            raise InputError(f"line {i + 2}: wrong number of fields")
        rows.append(row)
    if not rows:
        raise InputError("no leaf rows after the header")
    result = localize_rows(dims, rows, ratio=ratio, row_name="line", first=2)
    if result.verdict == "no_single_cause":
        print("no single cause: the change is spread evenly over the leaves", file=sys.stderr)
    elif result.verdict == "no_change":
        print("no change to explain: every leaf is within the noise", file=sys.stderr)
    return json.dumps(result.elements, ensure_ascii=False)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m services.diagnosis.rca FILE.csv", file=sys.stderr)
        return 2
    try:
        print(run(args[0]))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
