"""A store's metric rows as columns: the fast input of `diagnose_store_day`.

Row i is (dates[date_codes[i]], metrics[metric_codes[i]], dimensions[dims_codes[i]], values[i]).
A wide store-day is 100,000+ rows over a few dates, a few metrics and some thousands of leaves:
as columns of integer codes the engine groups, sums and looks leaves up with numpy instead of
walking row mappings in Python several times, and a loader that decodes each distinct
dimensions string once hands them over without building a dict per row.

The order of the rows is kept and means what it means for row mappings: sums are taken in row
order, leaves are listed in the order they first appear, a repeated (date, metric, dimensions)
row is read as its last occurrence. So `SeriesColumns.from_rows(rows)` and `rows` give the same
report, to the bit (tests/services/diagnosis/test_columns.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from services.diagnosis.engine.errors import InputError

DimsKey = tuple[tuple[str, str], ...]  # sorted dimension items; () is the store total
_EMPTY: Mapping[str, str] = {}


@dataclass(frozen=True, eq=False)
class SeriesColumns:
    """Metric rows as columns; a dimensions entry that is empty is the store total. The tables
    may repeat an entry (two codes for equal dimensions are one key to the engine), unless
    `canonical_dims` says the dimensions entries are distinct and each lists its items in name
    order (decoded canonical JSON, as the service stores them): the engine then takes them as
    they are instead of sorting the items of each."""

    dates: Sequence[date]
    metrics: Sequence[str]
    dimensions: Sequence[Mapping[str, str]]
    date_codes: npt.NDArray[np.int64]
    metric_codes: npt.NDArray[np.int64]
    dims_codes: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    canonical_dims: bool = False

    def __post_init__(self) -> None:
        n = len(self.values)
        for name, codes, table in (
            ("date_codes", self.date_codes, self.dates),
            ("metric_codes", self.metric_codes, self.metrics),
            ("dims_codes", self.dims_codes, self.dimensions),
        ):
            if codes.ndim != 1 or len(codes) != n:
                raise InputError(f"{name} must have one code per value ({n})")
            if n and (int(codes.min()) < 0 or int(codes.max()) >= len(table)):
                raise InputError(f"{name} has a code outside its table")

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> SeriesColumns:
        """Columns of row mappings {date, metric, value, dimensions} (one pass; rows that share
        a dimensions dict share its code)."""
        dates: dict[date, int] = {}
        metrics: dict[str, int] = {}
        by_id: dict[int, tuple[Mapping[str, str], int]] = {}
        dims: list[Mapping[str, str]] = [_EMPTY]
        dc: list[int] = []
        mc: list[int] = []
        kc: list[int] = []
        vals: list[float] = []
        for r in rows:
            d = r["date"]
            code = dates.get(d)
            if code is None:
                code = dates[d] = len(dates)
            dc.append(code)
            m = r["metric"]
            code = metrics.get(m)
            if code is None:
                code = metrics[m] = len(metrics)
            mc.append(code)
            dm = r.get("dimensions")
            if not dm:
                kc.append(0)
            else:
                hit = by_id.get(id(dm))
                if hit is None or hit[0] is not dm:
                    # the entry keeps a reference to the dict: its id is not reused meanwhile
                    hit = by_id[id(dm)] = (dm, len(dims))
                    dims.append(dm)
                kc.append(hit[1])
            vals.append(float(r["value"]))
        return cls(
            tuple(dates),
            tuple(metrics),
            dims,
            np.array(dc, dtype=np.int64),
            np.array(mc, dtype=np.int64),
            np.array(kc, dtype=np.int64),
            np.array(vals, dtype=np.float64),
        )


def distinct(a: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """np.unique(a) by sorting (numpy's hash-based unique is many times slower on 100,000+
    integers)."""
    s = np.sort(a)
    if len(s) < 2:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def codes_of(column: Sequence[Any]) -> tuple[list[Any], npt.NDArray[np.int64]]:
    """(distinct values in order of first appearance, the code of each item): for loaders
    turning a fetched column into a table and codes without a Python loop per item."""
    table = list(dict.fromkeys(column))
    index = {v: i for i, v in enumerate(table)}
    codes = np.fromiter(map(index.__getitem__, column), dtype=np.int64, count=len(column))
    return table, codes


@dataclass
class Frame:
    """The engine's view of SeriesColumns: distinct dates and metrics, and the distinct
    dimensions numbered in the order they first appear in the rows (ids per row)."""

    dates: list[date]
    date_id: npt.NDArray[np.int64]
    metrics: list[str]
    metric_id: npt.NDArray[np.int64]
    dims: list[Mapping[str, str]]  # one of the input mappings of each distinct dimensions
    key_id: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    canonical: bool  # each of dims lists its items in name order

    @classmethod
    def of(cls, cols: SeriesColumns) -> Frame:
        dates, date_id = _dedupe(cols.dates, cols.date_codes)
        metrics, metric_id = _dedupe(cols.metrics, cols.metric_codes)
        reps: list[Mapping[str, str]]
        if cols.canonical_dims:
            reps, kid = list(cols.dimensions), np.asarray(cols.dims_codes, dtype=np.int64)
        else:
            key_table: dict[DimsKey, int] = {}
            reps = []
            to_key = np.empty(len(cols.dimensions), dtype=np.int64)
            for i, dm in enumerate(cols.dimensions):
                key: DimsKey = tuple(sorted(dm.items())) if dm else ()
                k = key_table.get(key)
                if k is None:
                    k = key_table[key] = len(reps)
                    reps.append(dm or _EMPTY)
                to_key[i] = k
            kid = to_key[cols.dims_codes]
        if not _first_appearance(kid, len(reps)):
            # number the dimensions in the order they first appear in the rows
            used, first = np.unique(kid, return_index=True)
            order = used[np.argsort(first, kind="stable")]
            relabel = np.empty(len(reps), dtype=np.int64)
            relabel[order] = np.arange(len(order), dtype=np.int64)
            reps, kid = [reps[i] for i in order.tolist()], relabel[kid]
        values = np.asarray(cols.values, dtype=np.float64)
        return cls(dates, date_id, metrics, metric_id, reps, kid, values, cols.canonical_dims)

    def key(self, k: int) -> DimsKey:
        """The canonical key (sorted items) of dimensions k."""
        dm = self.dims[k]
        if not dm:
            return ()
        return tuple(dm.items()) if self.canonical else tuple(sorted(dm.items()))


def _first_appearance(codes: npt.NDArray[np.int64], size: int) -> bool:
    """Whether codes 0..size-1 all occur and each first occurs after the ones below it."""
    if not len(codes):
        return size == 0
    top = np.maximum.accumulate(codes)
    return bool(top[0] == 0 and top[-1] == size - 1 and (np.diff(top) <= 1).all())


def _dedupe(
    table: Sequence[Any], codes: npt.NDArray[np.int64]
) -> tuple[list[Any], npt.NDArray[np.int64]]:
    """A table without repeated entries, and the codes mapped onto it."""
    seen: dict[Any, int] = {}
    remap = np.fromiter(
        (seen.setdefault(v, len(seen)) for v in table), dtype=np.int64, count=len(table)
    )
    if len(seen) == len(table):
        return list(table), np.asarray(codes, dtype=np.int64)
    return list(seen), remap[codes]
