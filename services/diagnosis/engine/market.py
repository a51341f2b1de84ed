"""The store against its market: changes net of the market's and the KPI record.

The design's first rule: a conversion rate that went from 1.1% to 1.2% is a decline when the
market went from 1.1% to 1.4%. relative_change = (1 + change) / (1 + market_change) - 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from shared.events.common import Direction
from shared.events.diagnosis import KpiV1

Attribution = Literal["store", "market", "none"]

FLAT = 0.02  # moves smaller than 2% are flat
# A move is the market's when the market moved the same way and the store's net move is less
# than this share of its own move (or below the significance threshold).
MARKET_SHARE = 0.5


def change(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline - 1


def relative_change(change_: float | None, market_change: float | None) -> float | None:
    if change_ is None or market_change is None or market_change <= -1:
        return None
    return (1 + change_) / (1 + market_change) - 1


def direction(x: float | None, flat: float = FLAT) -> Direction:
    if x is None or abs(x) < flat:
        return "flat"
    return "up" if x > 0 else "down"


@dataclass(frozen=True)
class MarketComparison:
    change: float | None
    market_change: float | None
    relative_change: float | None
    direction: Direction  # of the store net of the market when there is one
    attribution: Attribution  # who made the move: the store, the market, or nobody (flat)
    competitors: dict[str, float | None]  # the change net of each competitor's


def compare(
    value: float | None,
    baseline: float | None,
    market_value: float | None = None,
    market_baseline: float | None = None,
    *,
    competitors: Mapping[str, tuple[float | None, float | None]] | None = None,
    significant: float = 0.1,
) -> MarketComparison:
    """Store change, market change, the store's net change and who made the move."""
    c = change(value, baseline)
    mc = change(market_value, market_baseline)
    rc = relative_change(c, mc)
    comp = {k: relative_change(c, change(v, b)) for k, (v, b) in (competitors or {}).items()}
    net = rc if rc is not None else c
    attribution: Attribution
    if c is None or (abs(c) < significant and (net is None or abs(net) < significant)):
        attribution = "none"
    elif (
        mc is not None
        and rc is not None
        and abs(rc) < significant
        and (mc > 0) == (c > 0)
        and abs(rc) <= MARKET_SHARE * abs(c)
    ):
        attribution = "market"
    else:
        attribution = "store"
    return MarketComparison(c, mc, rc, direction(net), attribution, comp)


def kpi(
    metric: str,
    value: float,
    baseline: float | None,
    market_value: float | None = None,
    market_baseline: float | None = None,
    *,
    anomaly_score: float | None = None,
    is_anomaly: bool = False,
) -> KpiV1:
    """The contract's KPI record; direction is the move net of the market where there is one."""
    m = compare(value, baseline, market_value, market_baseline)
    return KpiV1(
        metric=metric,
        value=value,
        baseline=baseline,
        change=_r(m.change),
        market_change=_r(m.market_change),
        relative_change=_r(m.relative_change),
        anomaly_score=anomaly_score,
        is_anomaly=is_anomaly,
        direction=m.direction,
    )


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)
