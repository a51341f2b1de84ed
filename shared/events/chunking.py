"""Split a batch's rows into chunks whose events stay well under the broker's message limit.

A producer publishes one event per chunk (same batch_id, chunk i of n):
    chunks = chunk_rows(rows)
    for i, part in enumerate(chunks):
        stage(MetricsIngestedV1(..., batch_id=batch, chunk=i, chunks=len(chunks), rows=part))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from pydantic_core import to_json

from shared.events.envelope import MAX_EVENT_BYTES

T = TypeVar("T")

# Room left in max_bytes for the envelope and the event's own fields around `rows` (an event's
# fields besides its rows take a few hundred bytes; names and ids are bounded).
ENVELOPE_RESERVE_BYTES = 16 * 1024
_SAMPLE_SIZE = 64
_SAFETY = 1.25


class RowTooLarge(ValueError):
    """A single row does not fit in one event: it can never be published."""


def chunk_rows(
    rows: Sequence[T],
    *,
    max_bytes: int = MAX_EVENT_BYTES,
    row_bytes: Callable[[T], int] | None = None,
) -> list[list[T]]:
    """Split rows, in order, into chunks whose event JSON stays under max_bytes.

    max_bytes is the limit for the whole event: the rows get it minus an envelope reserve
    (ENVELOPE_RESERVE_BYTES, at most a quarter of max_bytes). Without row_bytes, the rows are
    pydantic models (or JSON-able values): the chunk size is estimated from a sample of rows,
    conservatively, then every chunk is measured in one serialization and halved if a row the
    sample missed made it too large, so the guarantee holds whatever the rows. With row_bytes
    (the JSON size of one row in bytes), rows are packed greedily on those sizes.
    An empty list gives one empty chunk: a batch with no new rows is still announced.
    Raises RowTooLarge if one row alone exceeds the budget.
    """
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")
    budget = max_bytes - min(ENVELOPE_RESERVE_BYTES, max_bytes // 4) - len(b"[]")
    if not rows:
        return [[]]
    if row_bytes is not None:
        return _pack_greedily(rows, budget, row_bytes)

    per_row = _estimate_row_bytes(rows)
    size = max(1, budget // per_row)
    chunks: list[list[T]] = []
    for start in range(0, len(rows), size):
        chunks.extend(_fit(list(rows[start : start + size]), budget))
    return chunks


def _json_bytes(value: object) -> int:
    # The same serializer pydantic uses for the event's rows (UTF-8 bytes, not characters).
    return len(to_json(value))


def _estimate_row_bytes(rows: Sequence[T]) -> int:
    """The largest row of an evenly spread sample, plus a margin and the separating comma."""
    step = max(1, len(rows) // _SAMPLE_SIZE)
    sample = rows[::step][:_SAMPLE_SIZE]
    largest = max(_json_bytes(row) for row in sample)
    return math.ceil(largest * _SAFETY) + 1


def _fit(chunk: list[T], budget: int) -> list[list[T]]:
    if _json_bytes(chunk) <= budget:
        return [chunk]
    if len(chunk) == 1:
        raise RowTooLarge(f"a row of {_json_bytes(chunk[0])} bytes exceeds {budget} bytes")
    middle = len(chunk) // 2
    return _fit(chunk[:middle], budget) + _fit(chunk[middle:], budget)


def _pack_greedily(rows: Sequence[T], budget: int, row_bytes: Callable[[T], int]) -> list[list[T]]:
    chunks: list[list[T]] = []
    current: list[T] = []
    used = 0
    for row in rows:
        size = row_bytes(row)
        if size > budget:
            raise RowTooLarge(f"a row of {size} bytes exceeds {budget} bytes")
        cost = size + (1 if current else 0)  # the comma before it
        if current and used + cost > budget:
            chunks.append(current)
            current, used, cost = [], 0, size
        current.append(row)
        used += cost
    chunks.append(current)
    return chunks
