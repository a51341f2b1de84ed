"""The online detector: weekly seasonality, trend, spikes, shifts, missing points, context."""

from __future__ import annotations

import math
import random

import pytest

from services.diagnosis.engine.anomaly import score_series
from services.diagnosis.engine.errors import InputError


def daily(n: int = 120, seed: int = 1) -> list[float | None]:
    rng = random.Random(seed)
    return [
        (1000 + 2 * t) * (1.3 if t % 7 in (5, 6) else 1.0) * (1 + rng.gauss(0, 0.03))
        for t in range(n)
    ]


def test_seasonal_trending_series_raises_nothing_and_a_spike_is_flagged() -> None:
    y = daily()
    pts = score_series(y, period=7)
    assert sum(p.label for p in pts) == 0
    assert all(0 <= p.score < 1 for p in pts)
    y[90] = float(y[90] or 0) * 1.5
    pts = score_series(y, period=7)
    assert [i for i, p in enumerate(pts) if p.label] == [90]
    assert pts[90].direction == "up" and pts[90].score > 0.5


def test_online_a_point_only_depends_on_the_past() -> None:
    y = daily()
    full = score_series(y, period=7)
    head = score_series(y[:70], period=7)
    assert [p.score for p in full[:70]] == [p.score for p in head]


def test_level_shift_is_flagged_then_learnt() -> None:
    y = daily()
    y = [v if i < 80 else float(v or 0) * 0.6 for i, v in enumerate(y)]
    pts = score_series(y, period=7)
    flagged = [i for i, p in enumerate(pts) if p.label]
    assert flagged and flagged[0] == 80 and pts[80].direction == "down"
    assert max(flagged) < 88  # the new level is normal after a few days


def test_expected_window_is_context_not_incident() -> None:
    y = daily()
    window = [85 <= i <= 95 for i in range(len(y))]
    y = [float(v or 0) * (3.0 if 88 <= i <= 90 else 1.0) for i, v in enumerate(y)]
    pts = score_series(y, period=7, expected_windows=window)
    assert sum(p.label for p in pts) == 0
    assert pts[89].context and pts[89].score > 0.5  # unusual, but expected
    unaware = score_series(y, period=7)
    assert unaware[89].label == 1


def test_missing_points_are_data_problems_and_not_zero() -> None:
    y = daily()
    y[60] = None
    y[61] = math.nan
    pts = score_series(y, period=7)
    assert pts[60].label == pts[61].label == 1 and pts[60].direction == "missing"
    assert sum(p.label for p in pts[62:]) == 0  # the gap did not disturb the model


def test_constant_and_bad_series() -> None:
    pts = score_series([5.0] * 50, period=7)
    assert all(p.score == 0 and p.label == 0 for p in pts)
    with pytest.raises(InputError):
        score_series([])
    with pytest.raises(InputError):
        score_series([1.0, 2.0], expected_windows=[True])


def test_any_frequency_five_minute_stream() -> None:
    rng = random.Random(3)
    y: list[float | None] = [
        100 + 30 * math.sin(2 * math.pi * t / 288) + rng.gauss(0, 2) for t in range(288 * 4)
    ]
    y[900] = float(y[900] or 0) + 40
    pts = score_series(y, period=288)
    assert pts[900].label == 1
    assert sum(p.label for p in pts) <= 3


def _noisy_aov_history(n: int = 35, seed: int = 5) -> tuple[list[float | None], list[float | None]]:
    """A low-volume store (about 12 buyers a day): its AOV moves by a third on chance alone, but
    this history happens to be smooth (its robust scale is under 1%)."""
    rng = random.Random(seed)
    buyers: list[float | None] = [float(10 + rng.randint(0, 4)) for _ in range(n)]
    aov: list[float | None] = [60.0 * (1 + rng.gauss(0, 0.004)) for _ in range(n)]
    return aov, buyers


def test_calibrated_small_aov_move_on_a_low_volume_history_is_not_flagged() -> None:
    from services.diagnosis.engine.anomaly import AnomalyConfig

    aov, buyers = _noisy_aov_history()
    aov[-1] = float(aov[-2] or 0) * 1.0037  # +0.37%
    old = score_series(aov, period=7, config=AnomalyConfig(calibrated=False))
    new = score_series(
        aov, period=7, noise="mean", volumes=buyers, config=AnomalyConfig(min_effect=0.03)
    )
    assert new[-1].label == 0 and new[-1].score < 0.1
    # the old detector read the smooth history as the noise: a +0.37% move was many sigmas
    assert old[-1].score > new[-1].score
    # a move under the practical effect is never labelled, even with no noise model
    pts = score_series(aov, period=7, config=AnomalyConfig(min_effect=0.03))
    assert pts[-1].label == 0


def test_calibrated_cvr_drop_on_a_high_volume_history_is_flagged() -> None:
    from services.diagnosis.engine.anomaly import AnomalyConfig

    rng = random.Random(9)
    visitors: list[float | None] = [50_000.0 * (1 + rng.gauss(0, 0.05)) for _ in range(36)]
    cvr: list[float | None] = [0.03 * (1 + rng.gauss(0, 0.03)) for _ in range(36)]
    cvr[-1] = 0.03 * 0.7  # -30%
    pts = score_series(
        cvr,
        period=7,
        noise="proportion",
        volumes=visitors,
        config=AnomalyConfig(k=3.0, min_effect=0.03),
    )
    assert pts[-1].label == 1 and pts[-1].direction == "down"
    # the drop is 23 sampling errors and 10 noise scales; an ordinary day scores far below it
    assert pts[-1].score > max(p.score for p in pts[:-1]) + 0.15


def test_sampling_floor_is_monotone_and_bounded() -> None:
    from services.diagnosis.engine.anomaly import AnomalyConfig, sampling_sd

    assert sampling_sd("proportion", 0.03, 10_000) == pytest.approx((0.03 * 0.97 / 1e4) ** 0.5)
    assert sampling_sd("count", 400, None) == 20
    assert sampling_sd("mean", 60, 100, cv=1.0) == pytest.approx(6.0)
    assert sampling_sd("proportion", 0.03, None) == 0.0
    aov, buyers = _noisy_aov_history()
    cfg = AnomalyConfig(min_effect=0.03)
    scores = []
    for move in (0.0, 0.01, 0.05, 0.2, 0.5, 1.0, 3.0):
        y = list(aov)
        y[-1] = 60.0 * (1 + move)
        p = score_series(y, period=7, noise="mean", volumes=buyers, config=cfg)[-1]
        assert 0 <= p.score < 1
        scores.append(p.score)
    assert scores == sorted(scores)
    with pytest.raises(InputError):
        score_series(aov, noise="proportion")
    with pytest.raises(InputError):
        score_series(aov, noise="mean", volumes=buyers[:-1])


def _square_days(days: int, seed: int = 5) -> list[float | None]:
    # NAB's artificial days: low at night, high from 09:00 to 18:00, small noise
    rng = random.Random(seed)
    return [(80.0 if 108 <= t % 288 < 216 else 20.0) + rng.gauss(0, 1.5) for t in range(288 * days)]


def test_stream_pattern_memory_sees_a_changed_day_inside_the_range() -> None:
    from services.diagnosis.engine.stream import StreamConfig, score_stream

    y = _square_days(12)
    base = score_stream(y, period=288)
    start = 288 * 10 + 108  # day 10 stays at half height: no new extreme, a new shape
    for t in range(start, start + 108):
        y[t] = 50.0 + random.Random(t).gauss(0, 1.5)
    pts = score_stream(y, period=288)
    cut = StreamConfig().threshold
    # the repeated days alarm nowhere; the changed day alarms, within its first hour
    assert max(p.score for p in base[900:]) < cut
    hits = [i for i, p in enumerate(pts) if i >= 900 and p.score >= cut]
    assert hits and start <= hits[0] < start + 12
    # without the pattern memory the changed day goes unseen (no value leaves the range)
    plain = score_stream(y, period=288, config=StreamConfig(nn_window=0))
    assert max(p.score for p in plain[start : start + 108]) < cut


def test_stream_pattern_distances_vectorised_equal_one_by_one() -> None:
    import numpy as np

    from services.diagnosis.engine.stream import (
        PatternMemory,
        StreamDetector,
        pattern_distances,
        score_stream,
    )

    rng = random.Random(2)
    x = [1000 + 50 * math.sin(t / 7) + rng.gauss(0, 5) for t in range(2500)]
    for w, c, e in [(10, 1500, 10), (4, 30, 2)]:
        pm = PatternMemory(w, c, e)
        one = [pm.add(v) for v in x]
        vec = pattern_distances(np.asarray(x), w, c, e, block=97).tolist()
        for a, b in zip(one, vec, strict=True):
            assert (a is None and math.isnan(b)) or (a is not None and abs(a - b) < 1e-8)
    # the streaming path (one point at a time) gives the scores of the series path
    y: list[float | None] = list(x)
    y[1700] = None
    det = StreamDetector(period=None)
    one_pts = [det.update(v) for v in y]
    for p, q in zip(score_stream(y), one_pts, strict=True):
        assert abs(p.score - q.score) < 1e-9
