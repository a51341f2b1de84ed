"""The engine's columnar input (SeriesColumns) and the service's one-query loader: the same
rows as mappings or as columns (however the columns are coded) give the same report, to the
bit; the columnar pieces (completeness on codes, leaf baselines, repeated rows, duplicate leaves)
do what the row versions do."""

from __future__ import annotations

import json
import random
import statistics
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from support import Harness, apply_events

from services.diagnosis import repository as repo
from services.diagnosis import service
from services.diagnosis.engine.baselines import baseline_from
from services.diagnosis.engine.columns import Frame, SeriesColumns, codes_of, distinct
from services.diagnosis.engine.completeness import (
    assess_completeness,
    assess_completeness_codes,
    row_key,
)
from services.diagnosis.engine.diagnose import StoreDay, _LeafTable, diagnose_store_day
from services.diagnosis.engine.errors import InputError
from services.ingest.demo import DemoData, festival_days, generate_demo

END = date(2026, 3, 20)


@pytest.fixture(scope="module")
def demo() -> DemoData:
    return generate_demo(end=END, days=60, seed=7)


def _canon(d: dict[str, str]) -> str:
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def window(demo: DemoData, store_id: str, day: date) -> list[dict[str, Any]]:
    return [r for r in demo.rows[store_id] if day - timedelta(days=35) <= r["date"] <= day]


def scrambled(rows: list[dict[str, Any]]) -> SeriesColumns:
    """The same rows with tables in another order, every dimensions entry twice (as distinct
    but equal dicts, items in another order) and codes alternating between the copies."""
    base = SeriesColumns.from_rows(rows)
    n = len(base.dimensions)
    dims = [dict(reversed(list(d.items()))) for d in base.dimensions][::-1]
    dims += [dict(d) for d in base.dimensions]  # entry n + i is a copy of entry i
    codes = np.where(np.arange(len(rows)) % 2 == 0, n - 1 - base.dims_codes, n + base.dims_codes)
    perm = list(range(len(base.dates)))[::-1]  # dates table reversed
    return SeriesColumns(
        [base.dates[i] for i in perm],
        base.metrics,
        dims,
        np.array([perm.index(c) for c in base.date_codes.tolist()], dtype=np.int64),
        base.metric_codes,
        codes.astype(np.int64),
        base.values,
    )


def test_rows_and_columns_give_the_same_report_on_the_demo(demo: DemoData) -> None:
    with_causes = 0
    days = [(i.store_id, i.date) for i in demo.incidents] + [("demo-woo", END)]
    for store_id, day in days:
        rows = window(demo, store_id, day)
        as_loaded = repo.series_columns(
            [
                (r["date"].isoformat(), r["metric"], _canon(r["dimensions"]), r["value"])
                for r in rows
            ]
        )
        assert as_loaded.canonical_dims and len(as_loaded) == len(rows)
        for baseline in ("same_weekday_last_week", "trailing_7d"):
            ctx = {"context_days": festival_days(demo, store_id), "baseline": baseline}
            want = diagnose_store_day(StoreDay(day=day, rows=rows, **ctx))
            for cols in (SeriesColumns.from_rows(rows), as_loaded, scrambled(rows)):
                got = diagnose_store_day(StoreDay(day=day, columns=cols, **ctx))
                assert repr(got) == repr(want), (store_id, day, baseline)
            with_causes += bool(want.root_causes)
    assert with_causes >= 3  # the leaf path was exercised, not only "no change"


async def test_the_loader_reads_the_stored_rows_as_columns(
    diagnosis: Harness, demo: DemoData
) -> None:
    from diagnosis_helpers import metrics_events, store_registered

    store = next(s for s in demo.stores if s["id"] == "demo-shopify")
    day = date(2026, 3, 15)  # paid_traffic_drop
    rows = window(demo, "demo-shopify", day)
    await apply_events(diagnosis.app, store_registered(store, "t-cols"))
    await apply_events(diagnosis.app, *metrics_events("t-cols", "demo-shopify", rows))
    async with diagnosis.app.state.db.session(readonly=True) as s:
        known = await repo.get_store(s, "t-cols", "demo-shopify")
        loaded = await service.load_store_day(s, known, day, "same_weekday_last_week", 35)
    cols = loaded.store_day.series
    assert loaded.rows == len(rows) and cols.canonical_dims
    back = [
        {
            "date": cols.dates[d],
            "metric": cols.metrics[m],
            "value": v,
            "dimensions": cols.dimensions[k],
        }
        for d, m, k, v in zip(
            cols.date_codes.tolist(),
            cols.metric_codes.tolist(),
            cols.dims_codes.tolist(),
            cols.values.tolist(),
            strict=True,
        )
    ]
    key = lambda r: (r["date"], r["metric"], _canon(r["dimensions"]), r["value"])  # noqa: E731
    assert sorted(map(key, back)) == sorted(map(key, rows))
    # the report from the loaded columns is the report of those rows, in the loader's order
    sd = loaded.store_day
    want = diagnose_store_day(
        StoreDay(
            day=day,
            rows=back,
            currency=sd.currency,
            benchmark=sd.benchmark,
            competitors=sd.competitors,
            baseline=sd.baseline,
            phases=sd.phases,
            context_days=sd.context_days,
            shaped_days=sd.shaped_days,
            platform=sd.platform,
        )
    )
    got = diagnose_store_day(sd)
    assert repr(got) == repr(want)
    assert any(c.element == {"channel": "paid_search"} for _, c in got.root_causes)


def _codes_completeness(rows: list[dict[str, Any]], day: date, history: list[date]) -> Any:
    frame = Frame.of(SeriesColumns.from_rows(rows))
    n = len(frame.dims)

    def key_of(c: int) -> tuple[str, tuple[tuple[str, str], ...]]:
        return frame.metrics[c // n], frame.key(c % n)

    return assess_completeness_codes(
        day, frame.dates, frame.date_id, frame.metric_id * n + frame.key_id, key_of, history=history
    )


def test_completeness_on_codes_is_the_row_version(demo: DemoData) -> None:
    rng = random.Random(5)
    day = date(2026, 3, 11)  # missing_data: every mobile row of demo-woo is gone
    base = window(demo, "demo-woo", day)
    variants = {
        "mobile gone": (day, base),
        "the day before": (day - timedelta(days=1), window(demo, "demo-woo", day - timedelta(1))),
        "a few rows missing": (day, [r for r in base if r["date"] != day or rng.random() > 0.01]),
        "many rows missing": (day, [r for r in base if r["date"] != day or rng.random() > 0.3]),
        "no row on the day": (day, [r for r in base if r["date"] != day]),
        "history gaps": (day, [r for r in base if r["date"].day % 3 != 0]),
    }
    seen = set()
    for name, (d, rows) in variants.items():
        history = [d - timedelta(days=i) for i in range(1, 29)]
        keys: dict[date, set[Any]] = {}
        for r in rows:
            keys.setdefault(r["date"], set()).add(row_key(r["metric"], r["dimensions"]))
        want = assess_completeness(d, keys, history=history)
        got = _codes_completeness(rows, d, history)
        assert got == want, name
        seen.add((got.complete, got.reason))
    assert {(True, ""), (False, "missing_rows"), (False, "no_data")} <= seen


def _leaf_rows(values: dict[tuple[date, str], float]) -> list[dict[str, Any]]:
    return [
        {"date": d, "metric": "gmv", "value": v, "dimensions": {"channel": ch}}
        for (d, ch), v in values.items()
    ]


def test_leaf_baselines_are_the_engines_baselines() -> None:
    day = date(2026, 3, 10)
    rng = random.Random(2)
    values = {}
    for ch in ("a", "b", "c", "d", "e"):
        for k in range(0, 29):
            # leaves with gaps: odd and even counts of present days, one with too few
            sparse = ch in ("b", "c") and k and k % (2 if ch == "b" else 3) == 0
            if (ch == "e" and k > 2) or sparse:
                continue
            values[(day - timedelta(days=k), ch)] = round(rng.uniform(10, 100), 2)
    for kind in ("trailing_7d", "trailing_28d", "previous_day"):
        sd = StoreDay(day=day, rows=_leaf_rows(values), baseline=kind)  # type: ignore[arg-type]
        table = _LeafTable.of(Frame.of(sd.series), sd, {"gmv"})
        got, present = table.base("gmv")
        for i, dm in enumerate(table.leaf_dims):
            series = {d: v for (d, ch), v in values.items() if ch == dm["channel"]}
            want = baseline_from(kind, table.wanted, series).value  # type: ignore[arg-type]
            assert (want is not None) == bool(present[i]), (kind, dm)
            if want is not None:
                assert got[i] == want, (kind, dm)
        if kind == "trailing_7d":
            a = [values[(day - timedelta(days=k), "a")] for k in range(1, 8)]
            assert got[0] == statistics.median(a)


def test_a_repeated_row_counts_as_its_last_occurrence_in_the_leaves() -> None:
    day = date(2026, 3, 10)
    rows = _leaf_rows({(day, "a"): 10.0, (day, "b"): 20.0, (day - timedelta(days=7), "a"): 9.0})
    again = [*rows, {**rows[0], "value": 12.0}, {**rows[0], "value": 11.0}]
    sd = StoreDay(day=day, rows=again)
    table = _LeafTable.of(Frame.of(sd.series), sd, {"gmv"})
    val, has = table.get(day, "gmv")
    assert val.tolist() == [11.0, 20.0] and has.tolist() == [True, True]
    base, has_base = table.base("gmv")
    assert base.tolist() == [9.0, 0.0] and has_base.tolist() == [True, False]


def test_rows_of_two_grains_are_never_leaves_together() -> None:
    """{channel} and {channel, device} are two levels of detail: the leaves of a root cause are
    the finest partitioning grain's rows only, and the store total is the coarser grain's sum
    (once), however the columns are ordered."""
    day = date(2026, 3, 10)
    rows = []
    for k in (0, 7):
        for dims in (
            {"channel": "a"},
            {"channel": "b"},
            {"channel": "a", "device": "mobile"},
            {"channel": "a", "device": "pc"},
            {"channel": "b", "device": "mobile"},
        ):
            v = 10.0 if len(dims) == 2 else 20.0
            if k == 0 and dims.get("channel") == "a":
                v *= 5
            rows.append(
                {"date": day - timedelta(days=k), "metric": "gmv", "value": v, "dimensions": dims}
            )
    for sd in (StoreDay(day=day, rows=rows), StoreDay(day=day, columns=scrambled(rows))):
        report = diagnose_store_day(sd)
        gmv = next(k for k in report.kpis if k.metric == "gmv")
        assert gmv.value == 120.0 and gmv.baseline == 40.0  # the {channel} grain, summed once
        assert report.root_causes, "channel a moved"
        for _, cause in report.root_causes:
            assert cause.element == {"channel": "a"}
            assert cause.real == 100.0  # two {channel, device} leaves of 50, not 100 + 50 + 50


def test_bad_columns_are_refused() -> None:
    d = np.zeros(2, dtype=np.int64)
    with pytest.raises(InputError, match="dims_codes must have one code per value"):
        SeriesColumns([date(2026, 1, 1)], ["gmv"], [{}], d, d, d[:1], np.ones(2))
    with pytest.raises(InputError, match="metric_codes has a code outside its table"):
        SeriesColumns([date(2026, 1, 1)], ["gmv"], [{}], d, d + 1, d, np.ones(2))
    rows = [{"date": date(2026, 1, 1), "metric": "gmv", "value": 1.0, "dimensions": {}}]
    with pytest.raises(InputError, match="rows or as columns"):
        StoreDay(day=date(2026, 1, 1), rows=rows, columns=SeriesColumns.from_rows(rows))
    empty = repo.series_columns([])
    with pytest.raises(InputError, match="no metric rows"):
        diagnose_store_day(StoreDay(day=date(2026, 1, 1), columns=empty))


def test_helpers() -> None:
    a = np.array([5, 1, 5, 3, 1, 0], dtype=np.int64)
    assert distinct(a).tolist() == np.unique(a).tolist() == [0, 1, 3, 5]
    assert distinct(a[:1]).tolist() == [5] and distinct(a[:0]).tolist() == []
    table, codes = codes_of(["b", "a", "b", "c"])
    assert table == ["b", "a", "c"] and codes.tolist() == [0, 1, 0, 2]
    texts = [_canon({"channel": "搜索", "device": "m"}), "{}", _canon({"a": "x},{"})]
    assert repo.decode_dims(texts) == [json.loads(t) for t in texts]
    # not the canonical form: decoded one by one, as before
    for odd in (['{"a":"x', '"}', "{}"], ['{"a":"x}', '{"b":"y"}']):
        with pytest.raises(ValueError):
            repo.decode_dims(odd)
    assert repo.decode_dims([" {}", "{}"]) == [{}, {}]
