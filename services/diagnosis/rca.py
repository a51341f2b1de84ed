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
from pathlib import Path

from services.diagnosis.engine.errors import InputError
from services.diagnosis.engine.rootcause import leaves_from_rows, localize

ADDITIVE = ("real", "predict")
RATIO = ("real_num", "real_den", "predict_num", "predict_den")


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
    if all(c in header for c in RATIO):
        ratio = True
    elif all(c in header for c in ADDITIVE):
        ratio = False
    else:
        raise InputError(
            "the CSV needs the columns real and predict "
            "(or real_num, real_den, predict_num, predict_den for a ratio KPI)"
        )
    known = set(ADDITIVE) | set(RATIO)
    dims = [h for h in header if h not in known]
    rows = []
    for i, row in enumerate(reader):
        if None in row or any(v is None for v in row.values()):
            raise InputError(f"line {i + 2}: wrong number of fields")
        rows.append(row)
    if not rows:
        raise InputError("no leaf rows after the header")
    leaves = leaves_from_rows(dims, rows, ratio=ratio, row_name="line", first=2)
    result = localize(leaves)
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
