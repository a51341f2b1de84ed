"""The one way a bench module reports: a line per benchmark on stdout ("target, measured,
pass|MISS") and its markdown section in $BENCH_OUT (scripts/bench.sh assembles
docs/benchmarks.md from them). Returns the exit status: 1 on any miss."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

Row = tuple[str, str, str, bool, str]  # name, target, measured, passed, note


def report(module: str, title: str, intro: Sequence[str], rows: Sequence[Row]) -> int:
    ok = True
    lines = []
    for name, target, measured, passed, note in rows:
        ok &= passed
        res = "pass" if passed else "MISS"
        print(
            f"{name}: target {target}, measured {measured}, {res}" + (f" ({note})" if note else "")
        )
        lines.append(f"| {name} | {target} | {measured} | {res} | {note} |")
    out = Path(os.environ.get("BENCH_OUT", f"var/bench/{module}.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    header = [f"## {title}", ""]
    if intro:
        header += [*intro, ""]
    header += [
        "| benchmark | target | measured | result | baseline / note |",
        "|---|---|---|---|---|",
    ]
    out.write_text("\n".join(header + lines) + "\n")
    return 0 if ok else 1
