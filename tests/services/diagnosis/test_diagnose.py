"""diagnose_store_day on small synthetic stores: the seed case, competitors, completeness first,
context days, and a report that maps onto the contract."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from services.diagnosis.engine.baselines import PhaseWindow
from services.diagnosis.engine.diagnose import StoreDay, diagnose_store_day
from shared.events.diagnosis import KpiV1

DAY = date(2025, 6, 12)
CHANNELS = {"search": 0.5, "paid_search": 0.3, "social": 0.2}


def rows(
    days: int = 35,
    *,
    today_cvr: float = 0.011,
    today_visitors: float = 10_000,
    drop: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    out = []
    for k in range(days):
        d = DAY - timedelta(days=k)
        cvr = today_cvr if k == 0 else 0.011
        for ch, share in CHANNELS.items():
            for dev, ds in (("mobile", 0.7), ("desktop", 0.3)):
                if k == 0 and dev in drop:
                    continue
                v = (today_visitors if k == 0 else 10_000) * share * ds
                b = v * cvr
                dims = {"channel": ch, "device": dev}
                for metric, value in (
                    ("impressions", v * 20),
                    ("clicks", v * 1.1),
                    ("visitors", v),
                    ("buyers", b),
                    ("orders", b),
                    ("gmv", b * 60),
                ):
                    out.append({"date": d, "metric": metric, "value": value, "dimensions": dims})
        for m, val in (("dsr_service", 4.8), ("dsr_logistics", 4.8)):
            out.append({"date": d, "metric": m, "value": val, "dimensions": {}})
    return out


def market(today_cvr: float) -> dict[date, dict[str, float]]:
    return {DAY - timedelta(days=k): {"cvr": today_cvr if k == 0 else 0.011} for k in range(35)}


def kpi(report: Any, metric: str) -> KpiV1:
    return next(k for k in report.kpis if k.metric == metric)


def test_seed_case_end_to_end() -> None:
    rep = diagnose_store_day(StoreDay(day=DAY, rows=rows(today_cvr=0.012), benchmark=market(0.014)))
    cvr = kpi(rep, "cvr")
    assert cvr.value == 0.012 and cvr.baseline is not None and abs(cvr.baseline - 0.011) < 1e-9
    assert cvr.change is not None and cvr.change > 0.09
    assert cvr.market_change is not None and cvr.market_change > 0.27
    assert cvr.relative_change is not None and cvr.relative_change < -0.14
    assert cvr.direction == "down"
    assert rep.facts["rel.cvr.all"] is not None and rep.facts["rel.cvr.all"] < -0.14
    assert "net of the market it fell 14.3%" in rep.summaries["en"]
    assert "扣除大盘后下降14.3%" in rep.summaries["zh-CN"]


def test_quiet_day_and_a_market_wide_dip() -> None:
    quiet = diagnose_store_day(StoreDay(day=DAY, rows=rows(), benchmark=market(0.011)))
    assert quiet.data_complete and quiet.findings == [] and quiet.rca_verdicts["gmv"] == "no_change"
    dip = diagnose_store_day(
        StoreDay(day=DAY, rows=rows(today_cvr=0.0088), benchmark=market(0.0088))
    )
    assert dip.explained_by_market
    assert [(f.code, f.owner, f.severity) for f in dip.findings] == [
        ("market_decline", "operations", "low")
    ]
    own = diagnose_store_day(
        StoreDay(day=DAY, rows=rows(today_cvr=0.0088), benchmark=market(0.011))
    )
    assert not own.explained_by_market
    assert {f.owner for f in own.findings} == {"merchandising"} and own.findings[
        0
    ].severity != "low"


def test_competitor_price_cut_goes_to_merchandising() -> None:
    comp = {
        DAY - timedelta(days=k): {
            "visitors": 5000.0,
            "buyers": 100.0,
            "gmv": 6000.0 if k else 4800.0,
        }
        for k in range(35)
    }
    rep = diagnose_store_day(
        StoreDay(day=DAY, rows=rows(), benchmark=market(0.011), competitors={"rival": comp})
    )
    assert [(f.code, f.owner) for f in rep.findings] == [("competitor_price_cut", "merchandising")]
    assert rep.facts["comp.aov.min"] is not None and abs(rep.facts["comp.aov.min"] + 0.2) < 1e-9


def test_incomplete_day_is_a_data_problem_not_a_drop() -> None:
    rep = diagnose_store_day(
        StoreDay(day=DAY, rows=rows(drop=("mobile",)), benchmark=market(0.011))
    )
    assert not rep.data_complete
    assert [(f.code, f.owner, f.dimensions) for f in rep.findings] == [
        ("data_incomplete", "operations", {"device": "mobile"})
    ]
    assert rep.root_causes == [] and "data problem" in rep.summaries["en"]


def test_context_day_raises_no_incident_and_phase_baseline() -> None:
    # a festival day: traffic x3 is expected, not an incident
    r = rows(today_visitors=30_000, today_cvr=0.02)
    rep = diagnose_store_day(StoreDay(day=DAY, rows=r, benchmark=market(0.011), context_days={DAY}))
    assert rep.context and rep.findings == []
    # same_phase_last_year reads day k of last year's phase
    last = DAY - timedelta(days=362)
    phases = [
        PhaseWindow("618", "peak", DAY - timedelta(days=2), DAY + timedelta(days=6)),
        PhaseWindow("618", "peak", last - timedelta(days=2), last + timedelta(days=6)),
    ]
    old = [dict(x, date=last) for x in rows(days=1, today_visitors=20_000)]
    rep = diagnose_store_day(
        StoreDay(
            day=DAY,
            rows=old + r,
            baseline="same_phase_last_year",
            phases=phases,
            context_days={DAY},
        )
    )
    visitors = kpi(rep, "visitors")
    assert (
        visitors.baseline == 20_000
        and visitors.change is not None
        and abs(visitors.change - 0.5) < 1e-9
    )


def test_a_tiny_aov_move_is_no_anomaly_and_a_conversion_collapse_is() -> None:
    """Issue 14: an AOV change of +0.37% on a smooth history was flagged with score 0.999999."""
    from services.diagnosis.engine.diagnose import UNCALIBRATED_ANOMALY

    r = rows()
    for x in r:
        if x["date"] == DAY and x["metric"] == "gmv":
            x["value"] *= 1.0037
    rep = diagnose_store_day(StoreDay(day=DAY, rows=r, benchmark=market(0.011)))
    aov = kpi(rep, "aov")
    assert aov.change is not None and abs(aov.change - 0.0037) < 1e-6
    assert not aov.is_anomaly and aov.anomaly_score is not None and aov.anomaly_score < 0.5
    old = diagnose_store_day(
        StoreDay(day=DAY, rows=r, benchmark=market(0.011), anomaly=UNCALIBRATED_ANOMALY)
    )
    assert kpi(old, "aov").is_anomaly  # the old flag: a flat history made any change many sigmas
    drop = diagnose_store_day(StoreDay(day=DAY, rows=rows(today_cvr=0.011 * 0.7)))
    assert kpi(drop, "cvr").is_anomaly and kpi(drop, "buyers").is_anomaly
