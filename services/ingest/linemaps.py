"""How a preset's dimension cells become dimension values, and how lines that land on one
identity after that mapping add up (pure: no database, no clock).

A preset lists, per dimension column, its values as data (presets/*.yaml):
  values:    export text -> our value (matched without regard to case or repeated spaces)
  totals:    texts meaning "all of them" (汇总, 全部 ...): the line is a total over this
             dimension, so its row leaves the dimension out (a coarser grain), never a value
  subtotals: texts meaning "a group of several values" (付费流量 ...): the line is skipped with a
             warning, since it would count its members twice or blur them into one value
  unknown:   the value an unlisted text is kept under, with a warning on that line naming the
             text (without it, `default` or nothing, silently: the older presets' behaviour)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple


def fold(text: str) -> str:
    """The form texts are matched in: 'PC 端' / 'pc端' / 'Search' / 'search' alike."""
    return "".join(text.split()).casefold()


class Cell(NamedTuple):
    kind: str  # value | total | subtotal
    value: str  # the dimension value ("" for no value)
    warning: str | None


def map_cell(
    text: str, name: str, values: dict[str, str], default: str | None, rules: dict[str, Any]
) -> Cell:
    """One dimension cell through its preset's tables (values keyed by fold())."""
    key = fold(text)
    if key in rules.get("totals", ()):
        return Cell("total", "", None)
    if key in rules.get("subtotals", ()):
        return Cell(
            "subtotal",
            "",
            f"warning: {text!r} is a subtotal of several {name} values; the line was skipped "
            "(export the detailed sources instead)",
        )
    mapped = values.get(key)
    if mapped is not None:
        return Cell("value", mapped, None)
    unknown = rules.get("unknown")
    if unknown:
        return Cell(
            "value",
            unknown,
            f"warning: unknown {name} {text!r}, kept under {name}={unknown}",
        )
    return Cell("value", default or "", None)


def folded_values(values: dict[str, str] | None) -> dict[str, str] | None:
    return None if values is None else {fold(k): v for k, v in values.items()}


def folded_list(items: Iterable[str] | None) -> list[str]:
    return sorted({fold(t) for t in items or ()})


@dataclass
class LineSums:
    """Rows of one batch keyed by identity (date, metric, dimensions). Lines whose raw cells
    differ but map to one identity (手淘推荐 and 猜你喜欢, both recommendation) are summed; a line
    repeating the same raw cells replaces its earlier self, as a repeated line updates. Only for
    metrics that add up (presets that sum lines may not map scores)."""

    parts: dict[tuple[Any, ...], dict[tuple[str, ...], Any]] = field(default_factory=dict)
    dates: set[Any] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.parts)

    def would_add(self, rows: Iterable[Any]) -> int:
        return sum(1 for r in rows if _identity(r) not in self.parts)

    def add(self, raw: tuple[str, ...], rows: Iterable[Any]) -> None:
        for r in rows:
            self.parts.setdefault(_identity(r), {})[raw] = r
            self.dates.add(r.date)

    def rows(self) -> list[Any]:
        out = []
        for parts in self.parts.values():
            first, *rest = parts.values()
            # Sums of binary floats: drop the noise below a millionth (as reads do).
            total = round(first.value + sum(r.value for r in rest), 6)
            out.append(first._replace(value=total))
        return out


def _identity(r: Any) -> tuple[Any, ...]:
    return (r.date, r.metric, tuple(sorted(r.dimensions.items())))
