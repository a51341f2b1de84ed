"""The diagnosis endpoints: reports on request with versions, listing, bad inputs as problem+json,
roles and tenants, the findings' dedupe on replayed and late data, triage and transitions."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from diagnosis_helpers import (
    benchmark_events,
    competitor_events,
    metrics_events,
    store_registered,
    window,
)
from sqlalchemy import select
from support import Harness, api_key_event, apply_events

from services.diagnosis.models import FindingRow, FindingTransition, Report
from services.ingest.demo import generate_demo
from shared.outbox import OutboxMessage

END = date(2026, 3, 20)
DEMO = generate_demo(end=END)
SHOP = next(s for s in DEMO.stores if s["id"] == "demo-shopify")
INCIDENT = next(i for i in DEMO.incidents if i.id == "paid_traffic_collapse")
TENANT = "acme"
TOKENS = {
    "admin": "diag-admin-token-000000000000000000",
    "operator": "diag-operator-token-0000000000000000",
    "viewer": "diag-viewer-token-00000000000000000",
    "scoped": "diag-scoped-token-00000000000000000",
    "other": "diag-other-tenant-token-00000000000",
}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


async def load(
    h: Harness, stores: tuple[str, ...] = ("s1",), *, extra: tuple[Any, ...] = ()
) -> None:
    events: list[Any] = [
        api_key_event(TOKENS["admin"], TENANT, "admin"),
        api_key_event(TOKENS["operator"], TENANT, "operator"),
        api_key_event(TOKENS["viewer"], TENANT, "viewer"),
        api_key_event(TOKENS["scoped"], TENANT, "operator", store_ids=["s1"]),
        api_key_event(TOKENS["other"], "other", "admin"),
        *benchmark_events(TENANT, next(b for b in DEMO.benchmarks if b["market"] == "US")),
    ]
    rows = window(DEMO.rows["demo-shopify"], END - timedelta(days=45), END)
    for sid in stores:
        events.append(store_registered(SHOP, TENANT, sid))
        events.extend(metrics_events(TENANT, sid, rows))
        for comp in DEMO.competitors["demo-shopify"]:
            events.extend(competitor_events(TENANT, sid, comp))
    await apply_events(h.app, *events, *extra)


async def outbox(h: Harness, event_type: str) -> list[dict[str, Any]]:
    async with h.app.state.db.session(readonly=True) as s:
        t = OutboxMessage.__table__
        rows = (await s.execute(select(t.c.payload).where(t.c.event_type == event_type))).all()
    return [json.loads(r[0]) for r in rows]


async def findings(h: Harness, **where: Any) -> list[Any]:
    t = FindingRow.__table__
    q = select(t)
    for k, v in where.items():
        q = q.where(t.c[k] == v)
    async with h.app.state.db.session(readonly=True) as s:
        return list((await s.execute(q)).all())


def noon_after(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(12), tzinfo=UTC)


async def test_request_versions_get_and_list(diagnosis: Harness) -> None:
    h = diagnosis
    await load(h)
    c = h.client
    day = INCIDENT.date.isoformat()
    r = await c.post("/v1/stores/s1/diagnoses", json={"date": day}, headers=auth("operator"))
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["version"] == 1 and first["trigger"] == "request"
    assert first["baseline"] == "same_weekday_last_week"
    kpi = next(k for k in first["kpis"] if k["metric"] == "gmv")
    assert set(kpi) == {
        "metric",
        "value",
        "baseline",
        "change",
        "market_change",
        "relative_change",
        "anomaly",
    }
    assert set(kpi["anomaly"]) == {"score", "is_anomaly", "direction"}
    dec = first["decomposition"]["gmv"]
    assert sum(dec["contributions"].values()) == pytest.approx(dec["change"])
    assert {"channel": "paid_search"} in [rc["dimensions"] for rc in first["root_causes"]]
    sev = [f for f in first["findings"] if f["severity"] in ("high", "critical")]
    assert [(f["code"], f["owner"], f["dimensions"]) for f in sev] == [
        ("paid_traffic_drop", "promotion", {"channel": "paid_search"})
    ]
    assert first["summary"] and first["summary_locale"] == "en"

    r = await c.post(
        "/v1/stores/s1/diagnoses",
        json={"date": day, "baseline": "trailing_28d", "locale": "zh-CN"},
        headers=auth("admin"),
    )
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["version"] == 2 and second["baseline"] == "trailing_28d"
    assert second["summary_locale"] == "zh-CN" and "年" in second["summary"]
    # the same problem of the same day: one finding, updated, never a second
    assert second["findings"][0]["id"] in {f["id"] for f in first["findings"]}
    assert len(await findings(h, store_id="s1", code="paid_traffic_drop")) == 1

    r = await c.get(f"/v1/stores/s1/diagnoses/{day}", headers=auth("viewer"))
    assert r.status_code == 200 and r.json()["version"] == 2
    r = await c.get(f"/v1/stores/s1/diagnoses/{day}?version=1&locale=ja", headers=auth("viewer"))
    assert r.json()["version"] == 1 and r.json()["baseline"] == "same_weekday_last_week"
    assert r.json()["summary_locale"] == "ja"
    r = await c.get(f"/v1/stores/s1/diagnoses/{day}?version=7", headers=auth("viewer"))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"

    for d in (END - timedelta(days=1), END - timedelta(days=2)):
        r = await c.post(
            "/v1/stores/s1/diagnoses", json={"date": d.isoformat()}, headers=auth("operator")
        )
        assert r.status_code == 200
    r = await c.get("/v1/stores/s1/diagnoses?limit=2", headers=auth("viewer"))
    page = r.json()
    assert [i["date"] for i in page["items"]] == [
        (END - timedelta(days=1)).isoformat(),
        (END - timedelta(days=2)).isoformat(),
    ]
    r = await c.get(
        f"/v1/stores/s1/diagnoses?limit=2&cursor={page['next_cursor']}", headers=auth("viewer")
    )
    rest = r.json()
    assert [(i["date"], i["version"]) for i in rest["items"]] == [(day, 2)]
    assert rest["next_cursor"] is None
    r = await c.get(f"/v1/stores/s1/diagnoses?start={day}&end={day}", headers=auth("viewer"))
    assert [i["date"] for i in r.json()["items"]] == [day]

    completed = await outbox(h, "diagnosis.diagnosis_completed")
    versions = sorted(e["report_version"] for e in completed if e["date"] == day)
    assert versions == [1, 2]
    async with h.app.state.db.session(readonly=True) as s:
        n = len((await s.execute(select(Report.__table__))).all())
    assert n == 4  # every version kept


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["detail"]
    return body


async def test_bad_inputs_roles_and_tenants(diagnosis: Harness) -> None:
    h = diagnosis
    empty = {**SHOP, "id": "empty"}
    await load(h, extra=(store_registered(empty, TENANT),))
    c = h.client
    day = INCIDENT.date.isoformat()
    future = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    body = problem(
        await c.post("/v1/stores/s1/diagnoses", json={"date": future}, headers=auth("operator")),
        422,
    )
    assert body["errors"][0]["loc"] == ["body", "date"]
    body = problem(
        await c.post(
            "/v1/stores/s1/diagnoses",
            json={"date": day, "baseline": "last_full_moon"},
            headers=auth("operator"),
        ),
        422,
    )
    assert body["errors"][0]["loc"] == ["body", "baseline"]
    body = problem(
        await c.post("/v1/stores/empty/diagnoses", json={"date": day}, headers=auth("operator")),
        409,
    )
    assert "No data yet" in body["detail"]
    problem(
        await c.post("/v1/stores/nope/diagnoses", json={"date": day}, headers=auth("operator")), 404
    )
    # another tenant's store, an out-of-scope store: not found (existence does not leak)
    problem(await c.post("/v1/stores/s1/diagnoses", json={"date": day}, headers=auth("other")), 404)
    problem(await c.get(f"/v1/stores/s1/diagnoses/{day}", headers=auth("other")), 404)
    problem(
        await c.post("/v1/stores/empty/diagnoses", json={"date": day}, headers=auth("scoped")), 404
    )
    # a viewer reads but does not request; no key is 401
    problem(
        await c.post("/v1/stores/s1/diagnoses", json={"date": day}, headers=auth("viewer")), 403
    )
    problem(await c.post("/v1/stores/s1/diagnoses", json={"date": day}), 401)
    r = await c.post("/v1/stores/s1/diagnoses", json={"date": day}, headers=auth("scoped"))
    assert r.status_code == 200
    assert (
        await c.get(f"/v1/stores/s1/diagnoses/{day}", headers=auth("viewer"))
    ).status_code == 200
    problem(await c.get("/v1/stores/s1/diagnoses?cursor=garbage!", headers=auth("viewer")), 422)
    problem(await c.get(f"/v1/stores/s1/diagnoses/{END}", headers=auth("viewer")), 404)


async def test_replayed_and_late_data_never_open_a_second_finding(diagnosis: Harness) -> None:
    h = diagnosis
    rows = window(DEMO.rows["demo-shopify"], END - timedelta(days=45), END)
    events = metrics_events(TENANT, "s1", rows)
    await load(h)
    sched = h.app.state.scheduler
    # Automatic diagnosis of the incident's day (the window around it is backfilled too).
    now = noon_after(INCIDENT.date)
    assert await sched.run_until_idle(now=now) > 0
    found = await findings(h, store_id="s1", date=INCIDENT.date, code="paid_traffic_drop")
    assert len(found) == 1 and found[0].status == "open" and found[0].report_version == 1
    fid = found[0].id
    opened = [e for e in await outbox(h, "diagnosis.finding_opened") if e["finding_id"] == fid]
    assert len(opened) == 1

    # The same events again (a broker redelivery) and the same rows in a new event (a client
    # re-sending its batch): nothing changed, nothing is redone.
    await apply_events(h.app, *events)
    dup = metrics_events(TENANT, "s1", window(rows, INCIDENT.date, INCIDENT.date))
    await apply_events(h.app, *dup)
    assert await sched.run_once(now=now) == 0

    # Late data for the day: one leaf's gmv corrected. A new report version, the same finding.
    day_rows = window(rows, INCIDENT.date, INCIDENT.date)
    leaf = next(
        r for r in day_rows if r["metric"] == "gmv" and r["dimensions"].get("channel") == "search"
    )
    await apply_events(h.app, *metrics_events(TENANT, "s1", [{**leaf, "value": leaf["value"] + 7}]))
    assert await sched.run_once(now=now) == 1
    found = await findings(h, store_id="s1", date=INCIDENT.date, code="paid_traffic_drop")
    assert [(f.id, f.report_version) for f in found] == [(fid, 2)]
    async with h.app.state.db.session(readonly=True) as s:
        t = Report.__table__
        reps = (
            await s.execute(
                select(t.c.version, t.c.trigger)
                .where(t.c.store_id == "s1", t.c.date == INCIDENT.date)
                .order_by(t.c.version)
            )
        ).all()
    assert [tuple(r) for r in reps] == [(1, "scheduled"), (2, "late_data")]
    opened = [e for e in await outbox(h, "diagnosis.finding_opened") if e["finding_id"] == fid]
    assert len(opened) == 1

    # Late data that shows the problem was not there (paid search restored to its week-before
    # level): the newest report no longer raises it, so the finding closes (superseded).
    base = {
        (r["metric"], json.dumps(r["dimensions"], sort_keys=True)): r["value"]
        for r in window(rows, INCIDENT.date - timedelta(days=7), INCIDENT.date - timedelta(days=7))
    }
    fixed = [
        {
            **r,
            "value": base.get(
                (r["metric"], json.dumps(r["dimensions"], sort_keys=True)), r["value"]
            ),
        }
        for r in day_rows
        if r["dimensions"].get("channel") == "paid_search"
    ]
    await apply_events(h.app, *metrics_events(TENANT, "s1", fixed))
    assert await sched.run_once(now=now) == 1
    found = await findings(h, store_id="s1", date=INCIDENT.date, code="paid_traffic_drop")
    assert [(f.id, f.status, f.resolution) for f in found] == [(fid, "resolved", "superseded")]
    closed = [e for e in await outbox(h, "diagnosis.finding_closed") if e["finding_id"] == fid]
    assert len(closed) == 1 and closed[0]["resolution"] == "superseded"

    # Late data beyond the window (7 days) is stored but the day is not redone.
    old = INCIDENT.date - timedelta(days=9)
    old_leaf = next(r for r in window(rows, old, old) if r["metric"] == "gmv")
    await apply_events(h.app, *metrics_events(TENANT, "s1", [{**old_leaf, "value": 1.0}]))
    assert await sched.run_once(now=now) == 0


async def test_triage_groups_transitions_and_snooze(diagnosis: Harness) -> None:
    h = diagnosis
    await load(h, stores=("s1", "s2"))
    c = h.client
    sched = h.app.state.scheduler
    await sched.run_until_idle(now=noon_after(INCIDENT.date))
    r = await c.get("/v1/findings?severity=high&severity=critical", headers=auth("viewer"))
    items = r.json()["items"]
    assert {(i["store_id"], i["code"]) for i in items} == {
        ("s1", "paid_traffic_drop"),
        ("s2", "paid_traffic_drop"),
    }
    assert all(
        i["priority"] == pytest.approx(abs(i["expected_gmv_impact"]) * i["confidence"])
        for i in items
    )
    # high or critical: the median-of-4 default baseline rates the demo's collapse -60%
    r = await c.get(
        "/v1/findings?group=cause&severity=high&severity=critical", headers=auth("viewer")
    )
    groups = r.json()["groups"]
    g = next(g for g in groups if g["code"] == "paid_traffic_drop")
    assert g["stores"] == 2 and g["store_ids"] == ["s1", "s2"]
    # one market (US), one day, the same size: one cause; named for the market it is in
    assert g["market"] == "US" and g["start"] == g["end"] == str(INCIDENT.date)
    assert g["title"].startswith("market-wide in US: 2 stores")
    assert g["expected_gmv_impact"] == pytest.approx(
        sum(i["expected_gmv_impact"] for i in items), abs=0.01
    )
    # a key scoped to s1 sees s1 only; filters
    r = await c.get("/v1/findings?severity=high&severity=critical", headers=auth("scoped"))
    assert {i["store_id"] for i in r.json()["items"]} == {"s1"}
    r = await c.get("/v1/findings?owner=designer", headers=auth("viewer"))
    assert r.json()["items"] == []
    r = await c.get("/v1/findings?store_id=s2&severity=high", headers=auth("scoped"))
    assert r.json()["items"] == []
    page = (await c.get("/v1/findings?limit=1", headers=auth("viewer"))).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    nxt = (
        await c.get(f"/v1/findings?limit=1&cursor={page['next_cursor']}", headers=auth("viewer"))
    ).json()
    assert nxt["items"][0]["id"] != page["items"][0]["id"]

    fid = next(i["id"] for i in items if i["store_id"] == "s1")
    url = f"/v1/findings/{fid}/transitions"
    problem(await c.post(url, json={"action": "acknowledge"}, headers=auth("viewer")), 403)
    problem(await c.post(url, json={"action": "acknowledge"}, headers=auth("other")), 404)
    r = await c.post(url, json={"action": "acknowledge", "note": "on it"}, headers=auth("operator"))
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    body = problem(await c.post(url, json={"action": "acknowledge"}, headers=auth("operator")), 409)
    assert "acknowledged" in body["detail"]
    body = problem(await c.post(url, json={"action": "snooze"}, headers=auth("operator")), 422)
    assert body["errors"][0]["loc"] == ["body", "until"]
    until = datetime.now(UTC) + timedelta(hours=2)
    r = await c.post(
        url, json={"action": "snooze", "until": until.isoformat()}, headers=auth("operator")
    )
    assert r.json()["status"] == "snoozed"
    r = await c.get("/v1/findings?severity=high&severity=critical", headers=auth("viewer"))
    assert fid not in {i["id"] for i in r.json()["items"]}  # snoozed: out of the open list
    # the snooze ends: the finding re-surfaces, and says so on the bus
    await sched.run_once(now=until + timedelta(seconds=1))
    r = await c.get("/v1/findings?severity=high&severity=critical", headers=auth("viewer"))
    assert fid in {i["id"] for i in r.json()["items"] if i["status"] == "open"}
    # the gauge the dashboards read, refreshed at each scheduler round
    metrics = (await c.get("/metrics")).text
    # the demo's -60% collapse reads -60.3% against the median of 4 Sundays: critical
    assert 'storeops_findings_open{owner="promotion",severity="critical"} 2.0' in metrics
    assert 'storeops_diagnosis_reports_total{trigger="scheduled"}' in metrics
    assert "storeops_diagnosis_duration_seconds_bucket" in metrics
    r = await c.post(
        url, json={"action": "resolve", "note": "budget restored"}, headers=auth("operator")
    )
    assert r.json()["status"] == "resolved" and r.json()["resolution"] == "resolved"
    closed = [e for e in await outbox(h, "diagnosis.finding_closed") if e["finding_id"] == fid]
    assert closed and closed[-1]["resolution"] == "resolved"
    r = await c.post(url, json={"action": "reopen"}, headers=auth("operator"))
    assert r.json()["status"] == "open"
    r = await c.get(f"/v1/findings/{fid}", headers=auth("viewer"))
    history = [(t["action"], t["to_status"]) for t in r.json()["history"]]
    assert history == [
        ("opened", "open"),
        ("acknowledge", "acknowledged"),
        ("snooze", "snoozed"),
        ("snooze_expired", "open"),
        ("resolve", "resolved"),
        ("reopen", "open"),
    ]
    assert r.json()["history"][1]["note"] == "on it"
    updated = [e for e in await outbox(h, "diagnosis.finding_updated") if e["finding_id"] == fid]
    assert [e["status"] for e in updated] == ["acknowledged", "snoozed", "open", "open"]
    async with h.app.state.db.session(readonly=True) as s:
        t = FindingTransition.__table__
        actors = {r[0] for r in (await s.execute(select(t.c.actor).where(t.c.finding_id == fid)))}
    assert "system" in actors and len(actors) == 2
