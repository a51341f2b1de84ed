"""Online anomaly scoring of a high-frequency stream: raw surprise -> likelihood -> first alarm.

Three stages, each using only the points before the one scored:
1. Raw surprise in [0, 1): how far the value is from a robust forecast (level and, when the step
   gives a season, the same phase one season back), over a robust scale of recent errors.
2. Likelihood (Numenta's "anomaly likelihood", Ahmad et al. 2017): the mean of the last few raw
   surprises against the long-run distribution of that mean; its tail probability says how rare
   the recent surprise is *for this series*, so a noisy series and a quiet one share a threshold.
3. First alarm: once the likelihood is red, the following red points are held at yellow, so a
   regime that keeps surprising does not keep alarming; the forecaster follows the new level.
4. New extremes: a value beyond the range of the last `span_window` values scores above 0.5 by
   how far beyond (in ranges), whatever the likelihood says; a run of new extremes (a ramp) alarms
   at its first point only. On NAB this stage carries most of the score (docs/diagnosis.md).
A missing value scores 1 with label 1 (a data problem), as in the seasonal detector.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamConfig:
    learn: int = 150  # points before the likelihood speaks (the raw surprise is collected)
    estimate_every: int = 100  # re-estimate the distribution of mean surprise this often
    history: int = 8640  # points of mean surprise the distribution is estimated from
    average: int = 10  # raw surprises averaged before the tail probability
    alpha: float = 0.1  # level of the forecast
    eta: float = 0.02  # robust scale of the errors
    k: float = 3.0  # raw = |z| / (|z| + k)
    dead: float = 0.0  # |z| below this is no surprise at all
    cap: float = 2.0  # an error moves the scale as if it were at most cap x the scale
    prefer: float = 0.8  # the seasonal forecast is used once its errors are this much smaller
    red: float = 0.99999
    yellow: float = 0.999
    margin: float = 0.0  # of the range seen: a value outside it is new
    excess_c: float = 0.05  # score of a new extreme: 0.5 + 0.5 e / (e + excess_c), e in ranges
    excess_gap: int = 5  # a new extreme this close after the last one is the same event
    span_window: int = 4000  # values the range is taken over (0: all seen)
    threshold: float = 0.57  # label = score >= threshold (one threshold for every series)


@dataclass(frozen=True)
class StreamPoint:
    score: float
    label: int
    raw: float


class StreamDetector:
    def __init__(self, *, period: int | None = None, config: StreamConfig | None = None) -> None:
        self.cfg = config or StreamConfig()
        self.m = period if period and period > 1 else 0
        self.n = 0
        self.level = 0.0
        self.scale = 0.0
        self.lo = math.inf
        self.hi = -math.inf
        self.past: deque[float] = deque(maxlen=self.m + 1 if self.m else 1)
        self.sscale = 0.0
        self.recent: deque[float] = deque(maxlen=self.cfg.average)
        self.means: deque[float] = deque(maxlen=self.cfg.history)
        self.mu = 0.0
        self.sd = 0.0
        self.was_red = False
        self.last_excess = -(10**9)
        self.excess = 0.0
        self.maxq: deque[tuple[int, float]] = deque()
        self.minq: deque[tuple[int, float]] = deque()

    def update(self, x: float | None) -> StreamPoint:
        cfg = self.cfg
        if x is None or math.isnan(x):
            # a data problem, not a surprise: the season steps on so its phases stay aligned
            if self.m and self.past:
                self.past.append(self.past[0] if len(self.past) > self.m else self.past[-1])
            return StreamPoint(1.0, 1, 1.0)
        self.n += 1
        raw = self._raw(x)
        self.recent.append(raw)
        avg = sum(self.recent) / len(self.recent)
        self.means.append(avg)
        if self.n <= cfg.learn:
            return StreamPoint(0.0, 0, raw)
        if self.n == cfg.learn + 1 or self.n % cfg.estimate_every == 0:
            self._estimate()
        tail = _tail(avg, self.mu, self.sd)
        like = 1.0 - tail
        red = like >= cfg.red
        if red and self.was_red:
            like = cfg.yellow
        self.was_red = red
        score = math.log(1.0000000001 - like) / math.log(1.0 - 0.9999999999)
        if self.excess > 0:
            e = self.excess
            if self.n - self.last_excess > cfg.excess_gap:
                score = max(score, 0.5 + 0.5 * e / (e + cfg.excess_c))
            self.last_excess = self.n
        score = min(1.0, max(0.0, score))
        return StreamPoint(score, int(score >= cfg.threshold), raw)

    def _raw(self, x: float) -> float:
        cfg = self.cfg
        self.excess = 0.0
        if self.n == 1:
            self.level = x
            self._remember(x)
            self.past.append(x)
            return 0.0
        span = self.hi - self.lo
        if span > 0 and self.n > cfg.learn:
            tol = span * cfg.margin
            self.excess = max(x - self.hi - tol, self.lo - tol - x) / span
        self._remember(x)
        floor = 1e-9 * max(1.0, abs(self.level)) + 1e-3 * span
        r = x - self.level
        z = abs(r) / max(self.scale * 1.2533, floor)
        if self.m and len(self.past) > self.m:
            rs = x - self.past[0]
            zs = abs(rs) / max(self.sscale * 1.2533, floor)
            self.sscale += cfg.eta * (min(abs(rs), cfg.cap * self.sscale + floor) - self.sscale)
            if self.sscale < cfg.prefer * self.scale:
                z = zs
        self.past.append(x)
        self.scale += cfg.eta * (min(abs(r), cfg.cap * self.scale + floor) - self.scale)
        self.level += cfg.alpha * r
        z = max(0.0, z - cfg.dead)
        return z / (z + cfg.k)

    def _remember(self, x: float) -> None:
        # the range of the last `span_window` values (monotonic queues: O(1) a point)
        n, w = self.n, self.cfg.span_window
        while self.maxq and self.maxq[-1][1] <= x:
            self.maxq.pop()
        self.maxq.append((n, x))
        while self.minq and self.minq[-1][1] >= x:
            self.minq.pop()
        self.minq.append((n, x))
        if w:
            while self.maxq[0][0] <= n - w:
                self.maxq.popleft()
            while self.minq[0][0] <= n - w:
                self.minq.popleft()
        self.hi, self.lo = self.maxq[0][1], self.minq[0][1]

    def _estimate(self) -> None:
        xs = self.means
        n = len(xs)
        mu = sum(xs) / n
        var = sum((v - mu) ** 2 for v in xs) / n
        self.mu = max(mu, 0.03)
        self.sd = math.sqrt(max(var, 0.0003))


def _tail(x: float, mu: float, sd: float) -> float:
    if x < mu:
        x = 2 * mu - x
    return 0.5 * math.erfc((x - mu) / sd / math.sqrt(2))


def score_stream(
    values: Sequence[float | None],
    *,
    period: int | None = None,
    config: StreamConfig | None = None,
) -> list[StreamPoint]:
    det = StreamDetector(period=period, config=config)
    return [det.update(v) for v in values]
