"""The whole journey across the four services as separate processes, each on its own PostgreSQL
database, all on one real Kafka broker: a store is registered; its history arrives as a file; a
day's funnel figures as a file and its orders as signed Shopify webhooks; diagnosis finds the
click-through drop and hands it to the designer; the campaign gets a remedial task; content opens
a refresh brief; a copy is written, reviewed, published and tested against another in an
experiment decided from the counts. Every hop is checked, in the API and on the topics."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from e2e import journey_data as jd
from processes import Platform
from support import Infra, read_topic, wait_until

from shared.events import decode


async def _ok(r: httpx.Response, *status: int) -> dict[str, Any]:
    assert r.status_code in (status or (200,)), f"{r.request.method} {r.request.url}: {r.text}"
    return r.json() if r.content else {}


async def _eventually(fn: Any, timeout: float = 90.0, interval: float = 0.5) -> Any:
    """Call fn until it returns something truthy (a hop across the broker takes a moment)."""
    result: list[Any] = []

    async def cond() -> bool:
        value = await fn()
        if value:
            result.append(value)
            return True
        return False

    await wait_until(cond, timeout, interval)
    return result[0]


async def _key(p: Platform, ingest: httpx.AsyncClient, role: str, name: str) -> dict[str, str]:
    return (await _user_key(p, ingest, role, name))[0]


async def _user_key(
    p: Platform, ingest: httpx.AsyncClient, role: str, name: str
) -> tuple[dict[str, str], str]:
    user = await _ok(
        await ingest.post(
            "/v1/users", json={"name": name, "email": f"{name}@example.com"}, headers=p.auth
        ),
        201,
    )
    key = await _ok(
        await ingest.post(
            "/v1/api-keys", json={"user_id": user["id"], "name": name, "role": role}, headers=p.auth
        ),
        201,
    )
    return {"Authorization": f"Bearer {key['key']}"}, str(user["id"])


async def test_the_whole_journey_across_four_processes(platform: Platform, infra: Infra) -> None:
    p = platform
    d = jd.local_yesterday(datetime.now(UTC)) - timedelta(days=1)
    days = jd.generate(d)
    history = [x for x in days if x.day < d]
    today = [x for x in days if x.day == d]
    ingest, diagnosis, campaigns, content = (
        p.client(n) for n in ("ingest", "diagnosis", "campaigns", "content")
    )
    async with ingest, diagnosis, campaigns, content:
        # 1. The store is registered in ingest and reaches every other service as an event.
        await _ok(await ingest.post("/v1/stores", json=jd.store_body(), headers=p.auth), 201)
        campaign = await _eventually(lambda: _create_campaign(campaigns, p, d), timeout=60)
        assert campaign["store_id"] == jd.STORE_ID

        # 2. History and the day's funnel as files; the day's orders as Shopify webhooks.
        hist_csv = jd.long_csv(jd.rows_of(history))
        day_csv = jd.long_csv(jd.rows_of(today, funnel_only=True))
        jobs = []
        for name, body in (("history.csv", hist_csv), ("day.csv", day_csv)):
            r = await ingest.post(
                f"/v1/stores/{jd.STORE_ID}/metrics/import",
                content=body,
                headers={
                    **p.auth,
                    "Content-Type": "text/csv",
                    "Content-Disposition": f'attachment; filename="{name}"',
                },
            )
            jobs.append((await _ok(r, 202))["id"])
        deliveries = []
        first_id = 5_000_000
        for x in today:
            deliveries += jd.shopify_orders(x, first_id)
            first_id += 1000
        answers = await asyncio.gather(
            *(
                ingest.post(f"/v1/webhooks/shopify/{jd.STORE_ID}", content=body, headers=headers)
                for body, headers in deliveries
            )
        )
        assert [a.status_code for a in answers] == [202] * len(deliveries)
        # A replay of a delivery is recognised and changes nothing.
        replay = await ingest.post(
            f"/v1/webhooks/shopify/{jd.STORE_ID}",
            content=deliveries[0][0],
            headers=deliveries[0][1],
        )
        assert (await _ok(replay, 200))["status"] == "duplicate"

        async def jobs_done() -> bool:
            states = [
                (await _ok(await ingest.get(f"/v1/imports/{j}", headers=p.auth))) for j in jobs
            ]
            assert all(s["status"] != "failed" for s in states), states
            return all(s["status"] == "succeeded" for s in states)

        await wait_until(jobs_done, 120, 0.5)
        expected_orders = sum(x.buyers for x in today)

        async def orders_of_the_day() -> bool:
            r = await ingest.get(
                f"/v1/stores/{jd.STORE_ID}/metrics",
                params={"metric": "orders", "start": d.isoformat(), "end": d.isoformat()},
                headers=p.auth,
            )
            points = (await _ok(r))["items"]
            return sum(pt["values"]["orders"] or 0 for pt in points) == expected_orders

        await wait_until(orders_of_the_day, 60, 0.5)

        # 3. Diagnosis has its own copy of the series and diagnoses the day on its own.
        async def report_with_finding() -> dict[str, Any] | None:
            r = await diagnosis.get(f"/v1/stores/{jd.STORE_ID}/diagnoses/{d}", headers=p.auth)
            if r.status_code == 404:
                return None
            rep = await _ok(r)
            codes = {(f["code"], f["owner"]) for f in rep["findings"]}
            kpi = {k["metric"]: k for k in rep["kpis"]}
            # the latest report covers every order that came by webhook
            if ("ctr_drop", "designer") in codes and kpi.get("buyers", {}).get(
                "value"
            ) == expected_orders:
                return rep
            return None

        report = await _eventually(report_with_finding, timeout=120, interval=1.0)
        finding = next(f for f in report["findings"] if f["code"] == "ctr_drop")
        assert finding["dimensions"] == {"channel": jd.INCIDENT_CHANNEL}
        assert finding["severity"] in ("high", "critical")
        severe = [f for f in report["findings"] if f["severity"] in ("high", "critical")]
        assert [f["code"] for f in severe] == ["ctr_drop"], severe
        triage = await _ok(
            await diagnosis.get("/v1/findings", params={"owner": "designer"}, headers=p.auth)
        )
        open_ctr = [i for i in triage["items"] if i.get("code") == "ctr_drop"]
        assert len(open_ctr) == 1, triage

        # 4. Campaigns: the store's active campaign gets a remedial task for the designer.
        async def remedial() -> list[dict[str, Any]]:
            got = await _ok(await campaigns.get(f"/v1/campaigns/{campaign['id']}", headers=p.auth))
            return [t for t in got["tasks"] if t["owner_role"] == "designer" and t["id"] != "plan"]

        tasks = await _eventually(remedial, timeout=60)
        assert len(tasks) == 1
        assert date.fromisoformat(tasks[0]["start"]) > d

        # 5. Content: a refresh brief for the designer.
        async def brief() -> list[dict[str, Any]]:
            got = await _ok(
                await content.get(
                    "/v1/briefs",
                    params={"store_id": jd.STORE_ID, "kind": "refresh"},
                    headers=p.auth,
                )
            )
            return got["items"]

        briefs = await _eventually(brief, timeout=60)
        assert len(briefs) == 1 and briefs[0]["owner"] == "designer"
        brief_id = briefs[0]["id"]

        # 6. A copy written, reviewed by someone else, published; tested against another.
        writer = await _key(p, ingest, "operator", "writer")
        reviewer, reviewer_id = await _user_key(p, ingest, "operator", "reviewer")
        # Approving needs an admin or an assigned reviewer: the tenant's admin assigns one.
        await _ok(
            await content.post("/v1/reviewers", json={"user_id": reviewer_id}, headers=p.auth)
        )

        async def create_copy(title: str) -> dict[str, Any] | None:
            r = await content.post(
                "/v1/copies",
                json={
                    "store_id": jd.STORE_ID,
                    "type": "banner",
                    "locale": "en",
                    "title": title,
                    "body": "Warm coats for cold days",
                    "brief_id": brief_id,
                },
                headers=writer,
            )
            if r.status_code == 401:  # the key has not reached content yet
                return None
            return await _ok(r, 201)

        copies = [
            await _eventually(lambda t=t: create_copy(t), timeout=60)
            for t in ("Coats", "New coats, new look")
        ]
        ids = [c["id"] for c in copies]

        async def reviewer_known() -> bool:
            return (await content.get("/v1/briefs", headers=reviewer)).status_code == 200

        await wait_until(reviewer_known, 60, 0.5)
        for cid in ids:
            await _ok(
                await content.post(
                    f"/v1/copies/{cid}/transitions", json={"action": "submit"}, headers=writer
                )
            )
            r = await content.post(
                f"/v1/copies/{cid}/transitions", json={"action": "approve"}, headers=writer
            )
            assert r.status_code in (403, 409), "a writer must not approve their own copy"
            await _ok(
                await content.post(
                    f"/v1/copies/{cid}/transitions", json={"action": "approve"}, headers=reviewer
                )
            )
            await _ok(
                await content.post(
                    f"/v1/copies/{cid}/transitions", json={"action": "publish"}, headers=reviewer
                )
            )
        got_brief = await _ok(await content.get(f"/v1/briefs/{brief_id}", headers=writer))
        assert got_brief["status"] == "done" and set(got_brief["answered_by"]) >= set(ids)
        exp = await _ok(
            await content.post(
                "/v1/experiments",
                json={
                    "store_id": jd.STORE_ID,
                    "name": "social refresh",
                    "copy_ids": ids,
                    "min_sample": 10_000,
                },
                headers=writer,
            ),
            201,
        )
        # 7. The counts arrive in ingest as metric rows with copy_id; content decides.
        count_day = jd.local_yesterday(datetime.now(UTC)) + timedelta(days=1)
        rows = [
            {"date": count_day.isoformat(), "metric": m, "value": v, "dimensions": {"copy_id": cid}}
            for cid, (impr, clicks) in zip(ids, ((30_000, 600), (30_000, 840)), strict=True)
            for m, v in (("impressions", impr), ("clicks", clicks))
        ]
        await _ok(
            await ingest.post(
                f"/v1/stores/{jd.STORE_ID}/metrics", json={"rows": rows}, headers=writer
            ),
            202,
        )

        async def decided() -> dict[str, Any] | None:
            got = await _ok(await content.get(f"/v1/experiments/{exp['id']}", headers=writer))
            return got if got["status"] == "decided" else None

        final = await _eventually(decided, timeout=60)
        assert (final["decision"], final["winner_copy_id"]) == ("winner", ids[1])

    # 8. Every hop is on the topics, once.
    prefix = p.prefix

    def types(records: list[Any]) -> list[str]:
        return [decode(r.value).type for r in records]

    ingest_recs = await read_topic(
        infra, prefix + "ingest.v1", until=lambda rs: "ingest.metrics_ingested" in types(rs)
    )
    sources = {decode(r.value).source for r in ingest_recs if b"metrics_ingested" in r.value}
    assert {"webhook", "import", "api"} <= sources, sources
    diag = await read_topic(
        infra,
        prefix + "diagnosis.v1",
        until=lambda rs: (
            {"diagnosis.diagnosis_completed", "diagnosis.finding_opened"} <= set(types(rs))
        ),
    )
    opened = [decode(r.value) for r in diag if b"finding_opened" in r.value]
    ctr_opened = [e for e in opened if e.code == "ctr_drop" and e.date == d]
    assert len(ctr_opened) == 1 and ctr_opened[0].owner == "designer"
    published = await read_topic(
        infra,
        prefix + "content.v1",
        until=lambda rs: "content.experiment_decided" in types(rs),
    )
    t = types(published)
    assert t.count("content.copy_published") == 2 and t.count("content.experiment_decided") == 1
    camp = await read_topic(
        infra, prefix + "campaigns.v1", until=lambda rs: "campaigns.campaign_updated" in types(rs)
    )
    assert "campaigns.campaign_created" in types(camp)
    assert uuid.UUID(str(exp["id"]))


async def _create_campaign(c: httpx.AsyncClient, p: Platform, d: date) -> dict[str, Any] | None:
    r = await c.post(
        f"/v1/stores/{jd.STORE_ID}/campaigns",
        json={
            "name": "Winter push",
            "start": (d - timedelta(days=10)).isoformat(),
            "end": (d + timedelta(days=30)).isoformat(),
            "tasks": [
                {"id": "plan", "name": "Plan the push", "owner_role": "operations", "duration": 2}
            ],
        },
        headers=p.auth,
    )
    if r.status_code == 404:  # the store has not reached campaigns yet
        return None
    return await _ok(r, 201)
