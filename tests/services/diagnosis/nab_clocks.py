"""Series with the NAB files' clocks, built here (the data files are not copied):
- realAdExchange/exchange-2_*: hourly at :00:01 with `2011-08-24 12:00:01` written twice and
  gaps of two and three hours;
- realTraffic/occupancy_t4013, speed_t4013: steps of 5, 10, 15... minutes and minutes off the
  grid, with `2015-09-10 05:33:00` written twice;
- realTraffic/TravelTime_451: steps of 9, 10 and 11 minutes (median 10) and long silences;
- other NAB files (issue 14): a DST change that writes `03:00:00` five times and a clock set
  back (`02:00` after `02:55`).
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

FMT = "%Y-%m-%d %H:%M:%S"


def _values(n: int, per_day: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [100 + 30 * math.sin(2 * math.pi * i / per_day) + rng.gauss(0, 3) for i in range(n)]


def exchange_like(n: int = 900) -> list[tuple[str, str]]:
    """Hourly at :00:01, one timestamp repeated, a few gaps of 2 and 3 hours."""
    t = datetime(2011, 7, 1, 0, 0, 1)
    vals = _values(n, 24, 1)
    rows = []
    for i, v in enumerate(vals):
        rows.append((t.strftime(FMT), f"{v:.6f}"))
        if i == 600:
            continue  # the next row repeats this timestamp
        t += timedelta(hours=3 if i in (100, 400) else 2 if i == 700 else 1)
    return rows


def traffic_like(n: int = 1200, repeat_at: int = 800) -> list[tuple[str, str]]:
    """Steps of 5 minutes mostly, then 10, 15, 20 and odd minutes; one timestamp repeated."""
    rng = random.Random(2)
    t = datetime(2015, 9, 1, 11, 30)
    vals = _values(n, 288, 2)
    rows = []
    for i, v in enumerate(vals):
        rows.append((t.strftime(FMT), f"{max(v, 0):.2f}"))
        if i == repeat_at:
            continue
        t += timedelta(minutes=rng.choice([5, 5, 5, 5, 5, 10, 10, 15, 20, 7, 29, 42]))
    return rows


def travel_time_like(n: int = 800) -> list[tuple[str, str]]:
    """Steps of 9, 10 and 11 minutes, and silences of hours."""
    rng = random.Random(3)
    t = datetime(2015, 7, 28, 11, 56)
    rows = []
    for i, v in enumerate(_values(n, 144, 3)):
        rows.append((t.strftime(FMT), str(round(v))))
        gap = rng.choice([9, 10, 10, 10, 11, 19, 20])
        t += timedelta(minutes=gap if i % 97 else 187)
    return rows


def dst_like(n: int = 1000) -> list[tuple[str, str]]:
    """5-minute local time: `03:00:00` five times at a spring change, and the next night the
    clock goes back from `02:55` to `02:00` and runs through that hour again."""
    stamps: list[datetime] = []
    t = datetime(2015, 3, 29, 0, 0)
    back_done = False
    while len(stamps) < n:
        stamps.append(t)
        if t == datetime(2015, 3, 29, 3, 0):
            stamps.extend([t] * 4)
        if t == datetime(2015, 3, 30, 2, 55) and not back_done:
            back_done = True
            t = datetime(2015, 3, 30, 2, 0)
            continue
        t += timedelta(minutes=5)
    vals = _values(n, 288, 4)
    return [(s.strftime(FMT), f"{v:.3f}") for s, v in zip(stamps[:n], vals, strict=True)]
