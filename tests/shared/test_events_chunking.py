"""chunk_rows(): every chunk's event stays under the limit, rows in order, none lost."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from shared.events import MAX_EVENT_BYTES
from shared.events.chunking import RowTooLarge, chunk_rows
from shared.events.examples import EXAMPLE_STORE, EXAMPLE_TENANT
from shared.events.ingest import MetricRowV1, MetricsIngestedV1

CHANNELS = ["search", "recommendation", "paid_search", "paid_display", "social", "live"]


def _rows(count: int) -> list[MetricRowV1]:
    start = dt.date(2025, 11, 1)
    return [
        MetricRowV1(
            date=start + dt.timedelta(days=i % 7),
            metric=("impressions", "clicks", "visitors", "gmv")[i % 4],
            value=i * 1.37,
            dimensions={
                "channel": CHANNELS[i % len(CHANNELS)],
                "device": "mobile" if i % 3 else "desktop",
                "region": f"region-{i % 50}",
                "product_id": f"SKU-{i:06d}",
            },
        )
        for i in range(count)
    ]


def _wrap(chunks: list[list[MetricRowV1]]) -> list[MetricsIngestedV1]:
    batch = uuid.uuid4()
    return [
        MetricsIngestedV1(
            tenant_id=EXAMPLE_TENANT,
            store_id=EXAMPLE_STORE,
            batch_id=batch,
            source="import",
            chunk=number,
            chunks=len(chunks),
            accepted=50_000,
            duplicates=0,
            updated=0,
            rows=rows,
        )
        for number, rows in enumerate(chunks)
    ]


def test_a_50000_row_batch_fits_in_events_under_the_limit() -> None:
    rows = _rows(50_000)
    chunks = chunk_rows(rows)
    assert len(chunks) > 1
    events = _wrap(chunks)
    for event in events:
        assert len(event.to_bytes()) < MAX_EVENT_BYTES
    assert [row for chunk in chunks for row in chunk] == rows  # order kept, nothing lost
    # Not wastefully small either: each full chunk uses at least half the limit.
    assert all(len(event.to_bytes()) > MAX_EVENT_BYTES // 2 for event in events[:-1])


def test_non_ascii_values_are_counted_in_bytes() -> None:
    rows = [
        MetricRowV1(
            date=dt.date(2025, 11, 11),
            metric="gmv",
            value=float(i),
            dimensions={"channel": "直播", "region": "浙江省杭州市", "category": "女装/连衣裙"},
        )
        for i in range(20_000)
    ]
    chunks = chunk_rows(rows, max_bytes=64 * 1024)
    assert all(len(event.to_bytes()) < 64 * 1024 for event in _wrap(chunks))
    assert [row for chunk in chunks for row in chunk] == rows


def test_a_large_row_the_sample_missed_still_fits() -> None:
    rows = _rows(10_000)
    big = rows[4_321].model_copy(update={"dimensions": {"campaign": "x" * 20_000}})
    rows[4_321] = big
    chunks = chunk_rows(rows, max_bytes=128 * 1024)
    assert all(len(event.to_bytes()) < 128 * 1024 for event in _wrap(chunks))
    assert [row for chunk in chunks for row in chunk] == rows


def test_an_empty_batch_gives_one_empty_chunk() -> None:
    assert chunk_rows([]) == [[]]
    assert chunk_rows([], row_bytes=lambda row: 1) == [[]]


def test_a_small_batch_is_one_chunk() -> None:
    rows = _rows(10)
    assert chunk_rows(rows) == [rows]


def test_row_bytes_packs_greedily_on_the_given_sizes() -> None:
    rows = list(range(100))
    chunks = chunk_rows(rows, max_bytes=1000, row_bytes=lambda row: 99)
    # budget = 1000 - 250 (reserve) - 2 = 748: seven rows of 99 bytes plus six commas.
    assert [len(chunk) for chunk in chunks] == [7] * 14 + [2]
    assert [row for chunk in chunks for row in chunk] == rows


def test_a_row_that_can_never_fit_is_refused() -> None:
    rows = _rows(3)
    huge = rows[1].model_copy(update={"dimensions": {"note": "x" * 5_000}})
    with pytest.raises(RowTooLarge):
        chunk_rows([rows[0], huge, rows[2]], max_bytes=4_000)
    with pytest.raises(RowTooLarge):
        chunk_rows(["a", "b"], max_bytes=100, row_bytes=lambda row: 500)


def test_max_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        chunk_rows(_rows(1), max_bytes=0)
