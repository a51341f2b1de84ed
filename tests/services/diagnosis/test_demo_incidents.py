"""The engine on the demo data (services/ingest/demo.py, docs/demo-data.md): each of the seven
incidents is found, handed to its owner, and ordinary days raise nothing."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import pytest

from services.diagnosis.engine.diagnose import Report, StoreDay, diagnose_store_day
from services.ingest.demo import DemoData, festival_days, generate_demo

ENDS = (date(2026, 3, 20), date(2025, 11, 30))  # a quiet spring; Double 11 and BFCM in the window


def _series(rows: list[dict[str, Any]]) -> dict[date, dict[str, float]]:
    out: dict[date, dict[str, float]] = defaultdict(dict)
    for r in rows:
        out[r["date"]][r["metric"]] = r["value"]
    return out


def diagnose(demo: DemoData, store_id: str, day: date) -> Report:
    store = next(s for s in demo.stores if s["id"] == store_id)
    bench = next(
        b
        for b in demo.benchmarks
        if (b["market"], b["category"]) == (store["market"], store["category"])
    )
    comps = {c["competitor_id"]: _series(c["rows"]) for c in demo.competitors[store_id]}
    rows = [r for r in demo.rows[store_id] if day - timedelta(days=35) <= r["date"] <= day]
    return diagnose_store_day(
        StoreDay(
            day=day,
            rows=rows,
            currency=store["currency"],
            benchmark=_series(bench["rows"]),
            competitors=comps,
            context_days=festival_days(demo, store_id),
        )
    )


@pytest.fixture(scope="module", params=ENDS, ids=[e.isoformat() for e in ENDS])
def demo(request: pytest.FixtureRequest) -> DemoData:
    return generate_demo(end=request.param, days=90, seed=7)


def test_every_incident_is_found_and_handed_to_its_owner(demo: DemoData) -> None:
    for inc in demo.incidents:
        rep = diagnose(demo, inc.store_id, inc.date)
        severe = [f for f in rep.findings if f.severity in ("high", "critical")]
        if inc.owner == "none":
            # market-wide: explained by the market, nothing severe, nobody's fault but the market's
            assert rep.explained_by_market, inc.id
            assert severe == [], (inc.id, severe)
            assert {f.owner for f in rep.findings} <= {"operations"}
            assert "whole market" in rep.summaries["en"]
            continue
        assert severe, (inc.id, rep.findings)
        assert severe[0].owner == inc.owner, (inc.id, severe)
        if inc.kind == "missing_data" or inc.owner == "operations":
            assert not rep.data_complete and severe[0].code == "data_incomplete"
            assert severe[0].dimensions == inc.dimensions
            assert rep.root_causes == []  # a data problem is not diagnosed as a sales drop
            assert "data problem" in rep.summaries["en"]
        elif inc.dimensions:
            assert severe[0].dimensions == inc.dimensions, (inc.id, severe)
            # the GMV at stake in the incident's channel is a loss
            assert severe[0].expected_gmv_impact is not None and severe[0].expected_gmv_impact < 0
            assert any(c.element == inc.dimensions for _, c in rep.root_causes), inc.id


def test_gmv_incidents_are_explained_by_the_right_factor(demo: DemoData) -> None:
    want = {
        "paid_traffic_collapse": "visitors",
        "main_image_ctr_drop": "visitors",
        "search_conversion_drop": "cvr",
    }
    for inc in demo.incidents:
        if inc.id not in want:
            continue
        dec = diagnose(demo, inc.store_id, inc.date).decomposition
        assert dec is not None
        assert sum(dec.contributions.values()) == pytest.approx(dec.change)
        top = max(dec.contributions, key=lambda k: abs(dec.contributions[k]))
        assert top == want[inc.id], (inc.id, dec.contributions)


def test_funnel_names_click_through_for_the_main_image(demo: DemoData) -> None:
    inc = next(i for i in demo.incidents if i.id == "main_image_ctr_drop")
    rep = diagnose(demo, inc.store_id, inc.date)
    assert rep.funnel is not None
    assert sum(rep.funnel.contributions.values()) == pytest.approx(rep.funnel.change)
    top = max(rep.funnel.contributions, key=lambda k: abs(rep.funnel.contributions[k]))
    assert top == "ctr", rep.funnel.contributions
    assert rep.mix is not None
    assert rep.mix.after - rep.mix.before == pytest.approx(rep.mix.mix + rep.mix.rate)


def test_ordinary_days_raise_nothing(demo: DemoData) -> None:
    incident_days = {(i.store_id, i.date) for i in demo.incidents}
    checked = 0
    for store in demo.stores:
        fest = festival_days(demo, store["id"])
        for k in range(1, 30, 3):
            day = demo.end - timedelta(days=k)
            if (store["id"], day) in incident_days or day in fest:
                continue
            rep = diagnose(demo, store["id"], day)
            assert rep.data_complete
            assert [f for f in rep.findings if f.severity != "low"] == [], (
                store["id"],
                day,
                rep.findings,
            )
            checked += 1
    assert checked >= 15
