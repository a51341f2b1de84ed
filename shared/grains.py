"""Levels of detail (grains): which rows make a store-day's total. The one module that decides.

A row's grain is its set of dimension keys: `{}` is the store level, `{channel}` one grain,
`{channel, device}` another, `{copy_id}` a slice. The dimension registry (shared/dimensions.toml,
data) says which keys *partition* a store (channel, device, region and a store's own: their rows
add up to the store) and which are *slices* that never do (product_id, copy_id, keyword... and any
key nobody registered).

The rules, for one store-day-metric and a read that groups by keys G and filters on keys F:
1. A grain is admissible when it holds every key of G and F and all its other keys partition:
   summing over a partitioning key gives its parent, summing over a slice gives nonsense.
   For a plain total (no G, no F) the admissible grains are the store level and the purely
   partitioning grains; a slice's rows never reach a total.
2. Of the admissible grains present that day, the coarsest is used (fewest keys; ties by the
   registry's order: channel before device before region), so the store-level row wins when
   it was sent, and rows of two grains are never added together.
3. A metric's value on a grain is the sum of its rows (scores, the DSR ratings, are averaged);
   a derived metric is the ratio of its parts' values, each part chosen by these rules.

Ingest applies the rules in SQL (one aggregate per admissible grain), diagnosis with numpy over
its copy of the rows; both ask this module which grain to use, and `aggregate` is the reference
that tests hold them to.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from shared.events.common import DERIVED, SCORE_METRICS

Grain = tuple[str, ...]  # sorted dimension keys; () is the store level
TRAFFIC_TYPE = "traffic_type"  # a grouping derived from channel, never stored
REGISTRY_FILE = Path(__file__).with_name("dimensions.toml")


@dataclass(frozen=True)
class Registry:
    """The dimension registry: partitioning dimensions (in preference order) and slices."""

    partition: tuple[str, ...]
    slices: frozenset[str]
    paid_channels: frozenset[str]
    free_channels: frozenset[str]
    _order: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_order", {k: i for i, k in enumerate(self.partition)})

    def for_store(self, extra: Iterable[str] = ()) -> Registry:
        """This registry with a store's own partitioning dimensions after the shared ones."""
        more = tuple(k for k in extra if k not in self._order)
        if not more:
            return self
        return Registry(
            self.partition + more,
            self.slices - set(more),
            self.paid_channels,
            self.free_channels,
        )

    def partitions(self, key: str) -> bool:
        return key in self._order

    def known(self, key: str) -> bool:
        """A registered dimension (or the derived traffic_type grouping)."""
        return key in self._order or key in self.slices or key == TRAFFIC_TYPE

    def kind(self, key: str) -> str:
        return "partition" if key in self._order else "slice"

    def traffic_type(self, channel: str) -> str:
        return "paid" if channel in self.paid_channels else "free"

    def rank(self, grain: Grain) -> tuple[int, tuple[int, ...]]:
        """Coarsest first; among grains of one size, the registry's order decides."""
        big = len(self._order)
        return len(grain), tuple(sorted(self._order.get(k, big) for k in grain))

    def admissible(self, grain: Grain, need: Collection[str]) -> bool:
        keys = set(grain)
        return keys.issuperset(need) and all(k in self._order for k in keys.difference(need))

    def choose(self, grains: Iterable[Grain], need: Collection[str] = ()) -> Grain | None:
        """The grain a read of keys `need` uses among the grains present (None: none fits)."""
        cands = [g for g in grains if self.admissible(g, need)]
        return min(cands, key=lambda g: (self.rank(g), g)) if cands else None

    def finest_partition(self, grains: Iterable[Grain]) -> Grain | None:
        """The most detailed purely partitioning grain present: the leaves of a root cause."""
        cands = [g for g in grains if g and all(k in self._order for k in g)]
        if not cands:
            return None
        return min(cands, key=lambda g: (-len(g), self.rank(g)[1], g))


@cache
def registry() -> Registry:
    data = tomllib.loads(REGISTRY_FILE.read_text(encoding="utf-8"))
    tt = data.get("traffic_type", {})
    return Registry(
        tuple(data["partition"]),
        frozenset(data.get("slices", ())),
        frozenset(tt.get("paid", ())),
        frozenset(tt.get("free", ())),
    )


def grain_of(dimensions: Mapping[str, Any]) -> Grain:
    return tuple(sorted(dimensions))


def grain_text(grain: Grain) -> str:
    """The grain as ingest stores it (dims_level): the sorted keys joined by commas."""
    return ",".join(grain)


def grain_from_text(text: str) -> Grain:
    return tuple(text.split(",")) if text else ()


def needed_keys(group_by: Sequence[str], filters: Mapping[str, Collection[str]]) -> set[str]:
    """The stored keys a read needs: traffic_type is read from channel."""
    keys = {("channel" if k == TRAFFIC_TYPE else k) for k in group_by}
    keys.update("channel" if k == TRAFFIC_TYPE else k for k in filters)
    return keys


def read_problems(
    group_by: Sequence[str], filters: Mapping[str, Collection[str]], reg: Registry
) -> list[tuple[str, str]]:
    """(query parameter, message) for each dimension a read names that is not registered."""
    out: list[tuple[str, str]] = []
    known = ", ".join([*reg.partition, TRAFFIC_TYPE, *sorted(reg.slices)])
    for k in group_by:
        if not reg.known(k):
            out.append(("group_by", f"unknown dimension {k!r}; registered: {known}"))
    if len(set(group_by)) != len(group_by):
        out.append(("group_by", "a dimension is named twice"))
    if TRAFFIC_TYPE in group_by and "channel" in group_by:
        out.append(("group_by", "traffic_type is derived from channel: group by one of them"))
    for k in filters:
        if not reg.known(k):
            out.append((k, f"unknown dimension {k!r}; registered: {known}"))
    return out


def group_value(dimensions: Mapping[str, Any], key: str, reg: Registry) -> Any:
    if key == TRAFFIC_TYPE:
        ch = dimensions.get("channel")
        return None if ch is None else reg.traffic_type(str(ch))
    return dimensions.get(key)


def matches(
    dimensions: Mapping[str, Any], filters: Mapping[str, Collection[str]], reg: Registry
) -> bool:
    return all(
        (v := group_value(dimensions, k, reg)) is not None and str(v) in allowed
        for k, allowed in filters.items()
    )


def base_metrics(metrics: Iterable[str]) -> list[str]:
    """The stored metrics a read of `metrics` needs (a derived one needs its two parts)."""
    out: list[str] = []
    for m in metrics:
        for part in DERIVED.get(m, (m,)):
            if part not in out:
                out.append(part)
    return out


def part_label(metric: str, part: str) -> str:
    """The label under which a derived metric's part is summed on the derived metric's grain."""
    return f"{metric}/{part}"


def stored_metric(label: str) -> str:
    """The stored metric a label sums (a derived metric's part label names its part)."""
    if "/" in label:
        m, part = label.split("/", 1)
        num, den = DERIVED[m]
        return num if part == "num" else den
    return label


def plan(
    metrics: Iterable[str],
    present: Mapping[tuple[Any, ...], Collection[Grain]],
    need: Collection[str],
    reg_of: Any = None,
) -> dict[tuple[Any, ...], tuple[str, Grain]]:
    """(*head, label) -> (stored metric, grain): what to sum for each head (a store-day, as the
    caller keys it) and each metric read. `present` maps (*head, stored metric) to the grains
    present. A stored metric is read on its own grain (rule 2); a derived one on the coarsest
    grain where both its parts are present, its parts under part_label(), so a ratio is always
    a ratio of sums within one grain (none in common: no value)."""
    reg_of = reg_of or (lambda head: registry())
    by_head: dict[tuple[Any, ...], dict[str, Collection[Grain]]] = {}
    for key, gs in present.items():
        by_head.setdefault(tuple(key[:-1]), {})[key[-1]] = gs
    out: dict[tuple[Any, ...], tuple[str, Grain]] = {}
    wanted = list(dict.fromkeys(metrics))
    for head, have in by_head.items():
        reg = reg_of(head)
        for m in wanted:
            if m in DERIVED:
                num, den = DERIVED[m]
                if num not in have or den not in have:
                    continue
                g = reg.choose(set(have[num]) & set(have[den]), need)
                if g is not None:
                    out[(*head, part_label(m, "num"))] = (num, g)
                    out[(*head, part_label(m, "den"))] = (den, g)
            elif m in have:
                g = reg.choose(have[m], need)
                if g is not None:
                    out[(*head, m)] = (m, g)
    return out


def values(sums: Mapping[str, float], metrics: Iterable[str]) -> dict[str, float | None]:
    """The named metrics of one (head, group) from what `plan` had summed."""
    out: dict[str, float | None] = {}
    for m in metrics:
        if m in DERIVED:
            d = sums.get(part_label(m, "den"))
            out[m] = sums.get(part_label(m, "num"), 0.0) / d if d else None
        else:
            out[m] = sums.get(m)
    return out


def aggregate(
    rows: Iterable[Mapping[str, Any]],
    *,
    group_by: Sequence[str] = (),
    filters: Mapping[str, Collection[str]] | None = None,
    reg: Registry | None = None,
    metrics: Iterable[str] | None = None,
) -> dict[tuple[Any, ...], float]:
    """(date, label, *group values) -> value of row mappings {date, metric, value, dimensions}
    by the rules above: the reference every service's own fast path is tested against. The
    labels are the stored metrics (all present, or those named) and, for a derived metric
    named, its parts (part_label; `derived` makes the ratios). A repeated (date, metric,
    dimensions) row counts once, as its last occurrence."""
    reg = reg or registry()
    filters = filters or {}
    need = needed_keys(group_by, filters)
    last: dict[tuple[date, str, tuple[tuple[str, Any], ...]], float] = {}
    for r in rows:
        dims = r.get("dimensions") or {}
        last[(r["date"], r["metric"], tuple(sorted(dims.items())))] = float(r["value"])
    present: dict[tuple[date, str], set[Grain]] = {}
    for d, m, items in last:
        present.setdefault((d, m), set()).add(tuple(k for k, _ in items))
    wanted = list(metrics) if metrics is not None else sorted({m for _, m in present})
    chosen = plan(wanted, present, need, lambda head: reg)
    labels: dict[tuple[date, str, Grain], list[str]] = {}
    for (d, label), (m, g) in chosen.items():
        labels.setdefault((d, m, g), []).append(label)
    sums: dict[tuple[Any, ...], list[float]] = {}
    for (d, m, items), v in last.items():
        hit = labels.get((d, m, tuple(k for k, _ in items)))
        if not hit:
            continue
        dims = dict(items)
        if not matches(dims, filters, reg):
            continue
        group = tuple(group_value(dims, k, reg) for k in group_by)
        for label in hit:
            acc = sums.setdefault((d, label, *group), [0.0, 0.0])
            acc[0] += v
            acc[1] += 1
    return {k: (s / n if k[1] in SCORE_METRICS else s) for k, (s, n) in sums.items()}


def derived(
    sums: Mapping[tuple[Any, ...], float], metrics: Iterable[str]
) -> dict[tuple[Any, ...], float | None]:
    """(date, metric, *group) -> value of `aggregate`'s output, derived metrics included."""
    by_point: dict[tuple[Any, ...], dict[str, float]] = {}
    for (d, label, *group), v in sums.items():
        by_point.setdefault((d, *group), {})[label] = v
    out: dict[tuple[Any, ...], float | None] = {}
    for (d, *group), vals in by_point.items():
        for m, got in values(vals, metrics).items():
            if got is not None:
                out[(d, m, *group)] = got
    return out


def with_derived(values: Mapping[str, float], metrics: Iterable[str]) -> dict[str, float | None]:
    """The named metrics of one (date, group): stored ones as they are, derived ones as the
    ratio of their parts (None when the denominator is missing or zero)."""
    out: dict[str, float | None] = {}
    for m in metrics:
        if m in DERIVED:
            num, den = DERIVED[m]
            d = values.get(den)
            out[m] = values.get(num, 0.0) / d if d else None
        else:
            out[m] = values.get(m)
    return out


def market_values(
    values: Mapping[str, float], kinds: Mapping[str, str] | None = None
) -> dict[str, float]:
    """A market's (or competitor's) figures of one day with the ratios it did not post derived
    from its parts (market cvr = market buyers / market visitors), as for a store. Parts that
    are indices (Sycm's 流量指数: value_kind "index") are compared as relative change only:
    no ratio is made of them."""
    kinds = kinds or {}
    out = dict(values)
    for m, (num, den) in DERIVED.items():
        if m in out or num not in values or not values.get(den):
            continue
        if kinds.get(num, "absolute") != "absolute" or kinds.get(den, "absolute") != "absolute":
            continue
        out[m] = values[num] / values[den]
    return out
