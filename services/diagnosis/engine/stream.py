"""Online anomaly scoring of a high-frequency stream: raw surprise -> likelihood -> first alarm.

Five stages, each using only the points before the one scored and the point itself:
1. Raw surprise in [0, 1): how far the value is from a robust forecast (level and, when the step
   gives a season, the same phase one season back), over a robust scale of recent errors.
2. Likelihood (Numenta's "anomaly likelihood", Ahmad et al. 2017): the mean of the last few raw
   surprises against the long-run distribution of that mean; its tail probability says how rare
   the recent surprise is *for this series*, so a noisy series and a quiet one share a threshold.
3. First alarm: once the likelihood is red, red points for the next `hold` points are held at
   yellow, so a regime that keeps surprising does not keep alarming; the forecaster follows it.
4. New extremes: a value beyond the range of the last `span_window` values scores above 0.5 by
   how far beyond (in ranges), whatever the likelihood says; a run of new extremes (a ramp) alarms
   at its first point only.
5. Pattern memory: the distance of the last `nn_window` values to the nearest earlier window (at
   a lag up to `nn_memory`), in ranges; a distance beyond the largest of the last `span_window`
   points scores above 0.5 by how far beyond, so a changed daily shape inside the range alarms
   while a repeated one does not. Stages 4 and 5 carry most of the NAB score (docs/diagnosis.md).
A missing value scores 1 with label 1 (a data problem), as in the seasonal detector.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


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
    threshold: float = 0.564  # label = score >= threshold (one threshold for every series)
    nn_window: int = 10  # points in the recent window matched against the memory (0: off)
    nn_memory: int = 1500  # past windows (by lag) the recent one is matched against
    nn_exclude: int = 0  # lags closer than this are not matches (0: the window length)
    nn_track: int = 600  # points before the farthest pattern distance is tracked
    nn_learn: int = 900  # points before a pattern's novelty speaks
    nn_floor: float = 1e-3  # of the range: the farthest distance is at least this
    nn_excess_c: float = 0.3  # score of a new farthest pattern: 0.5 + 0.5 e / (e + c)
    nn_smooth: int = 3  # pattern distances averaged before their novelty is judged
    hold: int = 300  # after an alarm, red likelihoods this soon after it are held at yellow


class Unset:
    """No pattern distance given: the detector's own memory computes it."""


UNSET = Unset()


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
        self.memory = (
            PatternMemory(
                self.cfg.nn_window, self.cfg.nn_memory, self.cfg.nn_exclude or self.cfg.nn_window
            )
            if self.cfg.nn_window
            else None
        )
        self.last_alarm = -(10**9)
        self.dq: deque[tuple[int, float]] = deque()  # running max of the pattern distance
        self.last_novel = -(10**9)
        self.dsm: deque[float] = deque(maxlen=self.cfg.nn_smooth)
        self.novel = 0.0
        self.last_x = 0.0
        self.was_red = False
        self.last_excess = -(10**9)
        self.excess = 0.0
        self.maxq: deque[tuple[int, float]] = deque()
        self.minq: deque[tuple[int, float]] = deque()

    def update(self, x: float | None, pattern: float | Unset | None = UNSET) -> StreamPoint:
        """Score the next value. `pattern`: its pattern distance when already computed (by
        `pattern_distances` over a whole series: the same figure, vectorised), else the
        pattern memory computes it."""
        cfg = self.cfg
        if x is None or math.isnan(x):
            # a data problem, not a surprise: the season steps on so its phases stay aligned
            if self.m and self.past:
                self.past.append(self.past[0] if len(self.past) > self.m else self.past[-1])
            if self.memory is not None and isinstance(pattern, Unset):
                self.memory.add(self.last_x)
            return StreamPoint(1.0, 1, 1.0)
        self.n += 1
        self.last_x = x
        raw = self._raw(x)
        self.recent.append(raw)
        avg = sum(self.recent) / len(self.recent)
        self.means.append(avg)
        if self.memory is not None:
            d = self.memory.add(x) if isinstance(pattern, Unset) else pattern
            span = self.hi - self.lo
            r2 = 0.0 if d is None or span <= 0 else d / span
            self.dsm.append(r2)
            self._novelty(sum(self.dsm) / len(self.dsm))
        if self.n <= cfg.learn:
            return StreamPoint(0.0, 0, raw)
        if self.n == cfg.learn + 1 or self.n % cfg.estimate_every == 0:
            self._estimate()
        tail = _tail(avg, self.mu, self.sd)
        like = 1.0 - tail
        red = like >= cfg.red
        if red and (self.was_red or self.n - self.last_alarm <= cfg.hold):
            like = cfg.yellow
        elif red:
            self.last_alarm = self.n
        self.was_red = red
        score = math.log(1.0000000001 - like) / math.log(1.0 - 0.9999999999)
        if self.excess > 0:
            e = self.excess
            if self.n - self.last_excess > cfg.excess_gap:
                score = max(score, 0.5 + 0.5 * e / (e + cfg.excess_c))
            self.last_excess = self.n
        if self.novel > 0:
            e = self.novel
            if self.n - self.last_novel > cfg.excess_gap:
                score = max(score, 0.5 + 0.5 * e / (e + cfg.nn_excess_c))
            self.last_novel = self.n
        score = min(1.0, max(0.0, score))
        return StreamPoint(score, int(score >= cfg.threshold), raw)

    def _novelty(self, d: float) -> None:
        """How far beyond the farthest pattern distance of the last `span_window` points
        (relative to it) the current one is; 0 inside."""
        n, w = self.n, self.cfg.span_window
        self.novel = 0.0
        if n <= self.cfg.nn_track:
            return  # the memory is too short for its distances to mean anything
        if n > self.cfg.nn_learn and self.dq:
            ref = max(self.dq[0][1], self.cfg.nn_floor)
            self.novel = max(0.0, (d - ref) / ref)
        while self.dq and self.dq[-1][1] <= d:
            self.dq.pop()
        self.dq.append((n, d))
        while w and self.dq[0][0] <= n - w:
            self.dq.popleft()

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
        self.mu, self.sd = _fit(self.means)


def _fit(xs: deque[float]) -> tuple[float, float]:
    a = np.fromiter(xs, dtype=float, count=len(xs))
    mu = float(a.mean())
    var = float(((a - mu) ** 2).mean())
    return max(mu, 0.03), math.sqrt(max(var, 0.0003))


class PatternMemory:
    """Distance of the last `window` values to the nearest earlier window at a lag in
    [exclude, memory] (Euclidean, rms a point), updated in O(memory) a point: the squared
    distance at lag l moves by (x_t - x_{t-l})^2 - (x_{t-w} - x_{t-w-l})^2; recomputed
    exactly every `refresh` points so rounding never accumulates. `d2[i]` holds lag
    `memory - i`, so the values it needs are a plain slice of the buffer."""

    def __init__(self, window: int, memory: int, exclude: int, refresh: int = 512) -> None:
        self.w, self.c, self.e, self.refresh = window, memory, max(1, exclude), refresh
        self.keep = memory + window + 1  # values needed behind the newest
        self.buf = np.zeros(4 * self.keep)
        self.t = 0  # values in buf
        self.seen = 0
        k = memory - self.e + 1
        self.d2 = np.full(k, np.inf)  # lags memory down to exclude
        self.tmp = np.empty(k)
        self.tmp2 = np.empty(k)

    def add(self, x: float) -> float | None:
        if self.t == len(self.buf):
            self.buf[: self.keep] = self.buf[self.t - self.keep : self.t]
            self.t = self.keep
        self.buf[self.t] = x
        self.t += 1
        self.seen += 1
        if self.seen < self.w + self.e:
            return None
        t, w, e, c = self.t - 1, self.w, self.e, self.c
        if self.seen % self.refresh == 0 or t - w - c < 0:
            # early on (fewer values than the memory) and now and then: exactly
            self._recompute()
        else:
            b, d2, tmp, tmp2 = self.buf, self.d2, self.tmp, self.tmp2
            np.subtract(b[t - c : t - e + 1], x, out=tmp)  # x_{t-l}, l = c down to e
            np.multiply(tmp, tmp, out=tmp)
            np.subtract(b[t - w - c : t - w - e + 1], b[t - w], out=tmp2)
            np.multiply(tmp2, tmp2, out=tmp2)
            np.subtract(tmp, tmp2, out=tmp)
            np.add(d2, tmp, out=d2)
        best = float(self.d2.min())
        if not math.isfinite(best):
            return None
        return math.sqrt(max(best, 0.0) / self.w)

    def _recompute(self) -> None:
        t, w, e, c = self.t - 1, self.w, self.e, self.c
        b = self.buf
        recent = b[t - w + 1 : t + 1]
        self.d2[:] = np.inf
        lags = min(c, t - w + 1)  # the window at lag l starts at t-l-w+1 >= 0
        if lags < e:
            return
        wins = sliding_window_view(b[: t - e + 1], w)  # windows ending at w-1 .. t-e
        # lag l (stored at c - l) is the window ending at t-l: wins[t-l-w+1]
        ls = np.arange(lags, e - 1, -1)
        self.d2[c - lags :] = ((wins[t - ls - w + 1] - recent) ** 2).sum(axis=1)


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
    cfg = det.cfg
    if not cfg.nn_window:
        return [det.update(v) for v in values]
    # the pattern distances of the whole series at once (each from the values before it and
    # itself only, as the memory would give them one by one), then the points in order
    filled, last = [], 0.0
    for v in values:
        if v is not None and not math.isnan(v):
            last = v
        filled.append(last)
    dist = pattern_distances(
        np.asarray(filled, dtype=float),
        cfg.nn_window,
        cfg.nn_memory,
        cfg.nn_exclude or cfg.nn_window,
    )
    return [
        det.update(v, None if math.isnan(d) else d)
        for v, d in zip(values, dist.tolist(), strict=True)
    ]


def pattern_distances(x: np.ndarray, w: int, c: int, e: int, block: int = 256) -> np.ndarray:
    """PatternMemory(w, c, e).add over `x`, vectorised by blocks of points (nan where it gives
    None): for each lag, the squared differences are summed over windows by a cumulative sum."""
    n = len(x)
    out = np.full(n, np.nan)
    e = max(1, e)
    if c < e:
        return out
    pad = c + w  # zeros before the series: windows reaching into them are masked
    xp = np.concatenate([np.zeros(pad), x])
    lags = np.arange(c, e - 1, -1)  # rows of the view below: lag c first
    for t0 in range(w + e - 1, n, block):
        t1 = min(n, t0 + block)
        s0 = t0 - w + 1
        # row i: x[s - lags[i]] for s = s0 .. t1-1, a view (lags descending: starts ascending)
        view = sliding_window_view(xp[s0 - c + pad : t1 - e + pad], t1 - s0)
        sq = view - x[s0:t1]
        np.multiply(sq, sq, out=sq)
        cs = np.zeros((len(lags), t1 - s0 + 1))
        np.cumsum(sq, axis=1, out=cs[:, 1:])
        d2 = cs[:, w:] - cs[:, : t1 - s0 - w + 1]  # windows ending at t0 .. t1-1
        # the window at lag l ending at t starts at t-l-w+1: it must be inside the series
        early = t0 - lags - w + 1  # start of the first window of each row
        for i in np.nonzero(early < 0)[0]:
            d2[i, : -early[i]] = np.inf
        best = d2.min(axis=0)
        out[t0:t1] = np.sqrt(np.maximum(best, 0.0) / w)
    return out
