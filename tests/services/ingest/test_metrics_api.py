"""POST /v1/stores/{id}/metrics: idempotent upsert, validation, and every refusal leaves the
row and outbox counts unchanged."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from support import ADMIN, Harness

from services.ingest.models import MetricRow
from shared.events import decode
from shared.events.ingest import MetricsIngestedV1
from shared.outbox import OutboxMessage

PROBLEM = "application/problem+json"


def rows(n: int = 3, **over: Any) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        r = {
            "date": (date(2026, 10, 1) + timedelta(days=i)).isoformat(),
            "metric": "visitors",
            "value": 100 + i,
            "dimensions": {"channel": "search", "device": "mobile"},
        }
        r.update(over)
        out.append(r)
    return out


@pytest.fixture
async def env(ingest: Harness) -> tuple[Harness, dict[str, dict[str, str]]]:
    keys = await ingest.tenant_with_keys("acme", ["acme-shop", "acme-two"])
    other = await ingest.tenant_with_keys("other", ["other-shop"])
    keys["other_admin"] = other["admin"]
    return ingest, keys


async def outbox_events(h: Harness) -> list[Any]:
    async with h.app.state.db.session(readonly=True) as s:
        res = await s.execute(
            OutboxMessage.__table__.select().order_by(OutboxMessage.__table__.c.id)
        )
        return [decode(r.payload) for r in res]


async def test_upsert_counts_new_duplicate_updated(env: Any) -> None:
    h, keys = env
    url = "/v1/stores/acme-shop/metrics"
    r = await h.client.post(url, json={"rows": rows(3)}, headers=keys["operator"])
    assert r.status_code == 202
    assert (r.json()["accepted"], r.json()["duplicates"], r.json()["updated"]) == (3, 0, 0)
    # Same rows with the dimensions in another key order: the identity is canonical.
    resent = rows(3, dimensions={"device": "mobile", "channel": "search"})
    resent[1]["value"] = 555
    r = await h.client.post(url, json={"rows": resent}, headers=keys["operator"])
    assert (r.json()["accepted"], r.json()["duplicates"], r.json()["updated"]) == (0, 2, 1)
    assert await h.count(MetricRow, store_id="acme-shop") == 3
    async with h.app.state.db.session(readonly=True) as s:
        values = sorted(
            v
            for (v,) in await s.execute(
                MetricRow.__table__.select().with_only_columns(MetricRow.__table__.c.value)
            )
        )
    assert values == [100, 102, 555]


async def test_accepted_batch_stages_event_with_changed_rows(env: Any) -> None:
    h, keys = env
    url = "/v1/stores/acme-shop/metrics"
    before = len(await outbox_events(h))
    await h.client.post(url, json={"rows": rows(2)}, headers=keys["operator"])
    changed = rows(2)
    changed[0]["value"] = 7
    await h.client.post(url, json={"rows": changed}, headers=keys["operator"])
    events = [e for e in (await outbox_events(h))[before:] if isinstance(e, MetricsIngestedV1)]
    assert len(events) == 2
    first, second = events
    assert first.tenant_id == "acme" and first.store_id == "acme-shop"
    assert first.accepted == 2 and len(first.rows) == 2
    assert second.updated == 1 and second.duplicates == 1
    assert [(r.metric, r.value) for r in second.rows] == [("visitors", 7.0)]
    assert first.topic == "ingest.v1"


async def test_fifty_thousand_rows_in_one_request(env: Any) -> None:
    h, keys = env
    big = [
        {
            "date": (date(2026, 1, 1) + timedelta(days=i % 300)).isoformat(),
            "metric": "gmv",
            "value": float(i),
            "dimensions": {"product_id": f"p{i // 300}"},
        }
        for i in range(50_000)
    ]
    r = await h.client.post(
        "/v1/stores/acme-shop/metrics", json={"rows": big}, headers=keys["operator"]
    )
    assert r.status_code == 202, r.text[:500]
    assert r.json()["accepted"] == 50_000
    assert await h.count(MetricRow, store_id="acme-shop") == 50_000
    events = [e for e in await outbox_events(h) if isinstance(e, MetricsIngestedV1)]
    assert sum(len(e.rows) for e in events) == 50_000
    assert all(len(e.to_bytes()) < 1024 * 1024 for e in events)
    assert {e.chunks for e in events} == {len(events)}
    r = await h.client.post(
        "/v1/stores/acme-shop/metrics", json={"rows": big + big[:1]}, headers=keys["operator"]
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "rows"]


BAD_ROWS = [
    ({"metric": "visitors", "value": "many"}, ["body", "rows", 1, "value"]),
    ({"metric": "visitors", "value": -1}, ["body", "rows", 1, "value"]),
    ({"metric": "visitors", "value": 1.5}, ["body", "rows", 1, "value"]),
    ({"metric": "gmv", "value": -0.01}, ["body", "rows", 1, "value"]),
    ({"metric": "dsr_service", "value": 5.2}, ["body", "rows", 1, "value"]),
    ({"metric": "dsr_logistics", "value": 0.5}, ["body", "rows", 1, "value"]),
    ({"metric": "sessions"}, ["body", "rows", 1, "metric"]),
    ({"metric": "cvr"}, ["body", "rows", 1, "metric"]),
    ({"date": "2026-02-30"}, ["body", "rows", 1, "date"]),
    ({"date": "3026-01-01"}, ["body", "rows", 1, "date"]),
    ({"dimensions": {"channel": "telepathy"}}, ["body", "rows", 1, "dimensions"]),
    ({"dimensions": {"Bad Key": "x"}}, ["body", "rows", 1, "dimensions"]),
    ({"dimensions": {"channel": 3}}, ["body", "rows", 1, "dimensions", "channel"]),
    ({"unexpected": 1}, ["body", "rows", 1, "unexpected"]),
]


@pytest.mark.parametrize(("patch", "loc"), BAD_ROWS)
async def test_one_bad_row_rejects_the_whole_request(
    env: Any, patch: dict[str, Any], loc: list[Any]
) -> None:
    h, keys = env
    before = await h.state_counts()
    body = rows(3)
    body[1].update(patch)
    r = await h.client.post(
        "/v1/stores/acme-shop/metrics", json={"rows": body}, headers=keys["operator"]
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["status"] == 422 and problem["title"] and problem["type"]
    assert problem["errors"][0]["loc"] == loc
    assert problem["errors"][0]["msg"]
    assert await h.state_counts() == before


async def test_custom_metrics_need_the_prefix_and_conflicting_repeats_are_refused(env: Any) -> None:
    h, keys = env
    ok = rows(1, metric="custom.live_viewers", value=12.5)
    r = await h.client.post(
        "/v1/stores/acme-shop/metrics", json={"rows": ok}, headers=keys["operator"]
    )
    assert r.status_code == 202
    before = await h.state_counts()
    twice = rows(1) + rows(1, value=1)
    r = await h.client.post(
        "/v1/stores/acme-shop/metrics", json={"rows": twice}, headers=keys["operator"]
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "rows", 1]
    assert await h.state_counts() == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_are_refused(env: Any, literal: str) -> None:
    h, keys = env
    before = await h.state_counts()
    raw = '{"rows": [{"date": "2026-10-01", "metric": "gmv", "value": ' + literal + "}]}"
    r = await h.client.post(
        "/v1/stores/acme-shop/metrics",
        content=raw.encode(),
        headers={**keys["operator"], "content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["errors"][0]["loc"] == ["body", "rows", 0, "value"]
    assert await h.state_counts() == before


@pytest.mark.parametrize("raw", [b'{"rows": [', b"not json", b'{"rows": [1,]}'])
async def test_malformed_json_is_a_400_problem(env: Any, raw: bytes) -> None:
    h, keys = env
    before = await h.state_counts()
    r = await h.client.post(
        "/v1/stores/acme-shop/metrics",
        content=raw,
        headers={**keys["operator"], "content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["errors"][0]["loc"][0] == "body"
    assert await h.state_counts() == before


@pytest.mark.parametrize("body", [{"rows": "x"}, {"rows": []}, {}, [], {"rows": [5]}])
async def test_wrong_shapes_are_422(env: Any, body: Any) -> None:
    h, keys = env
    before = await h.state_counts()
    r = await h.client.post("/v1/stores/acme-shop/metrics", json=body, headers=keys["operator"])
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"][0] == "body"
    assert await h.state_counts() == before


async def test_body_over_the_limit_is_413(make_harness: Any) -> None:
    async with make_harness(max_body_bytes=20_000) as h:
        keys = await h.tenant_with_keys("acme", ["acme-shop"])
        before = await h.state_counts()
        payload = json.dumps({"rows": rows(400)}).encode()
        assert len(payload) > 20_000
        r = await h.client.post(
            "/v1/stores/acme-shop/metrics",
            content=payload,
            headers={**keys["operator"], "content-type": "application/json"},
        )
        assert r.status_code == 413
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["status"] == 413

        async def chunked() -> Any:  # no Content-Length: the limit is counted while streaming
            for i in range(0, len(payload), 4096):
                yield payload[i : i + 4096]

        r = await h.client.post(
            "/v1/stores/acme-shop/metrics",
            content=chunked(),
            headers={**keys["operator"], "content-type": "application/json"},
        )
        assert r.status_code == 413
        assert await h.state_counts() == before


@pytest.mark.parametrize(
    ("who", "store", "status"),
    [
        (None, "acme-shop", 401),
        ("wrong", "acme-shop", 401),
        ("viewer", "acme-shop", 403),
        ("operator", "nope-shop", 404),
        ("operator", "other-shop", 404),
        ("other_admin", "acme-shop", 404),
        ("scoped", "acme-two", 404),
    ],
)
async def test_auth_rules(env: Any, who: str | None, store: str, status: int) -> None:
    h, keys = env
    before = await h.state_counts()
    headers = (
        {}
        if who is None
        else ({"Authorization": "Bearer ops_not-a-real-key"} if who == "wrong" else keys[who])
    )
    r = await h.client.post(f"/v1/stores/{store}/metrics", json={"rows": rows(1)}, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["status"] == status
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    assert await h.state_counts() == before


async def test_scoped_key_works_on_its_store(env: Any) -> None:
    h, keys = env
    r = await h.client.post(
        "/v1/stores/acme-shop/metrics", json={"rows": rows(1)}, headers=keys["scoped"]
    )
    assert r.status_code == 202


async def test_revoked_key_is_refused(env: Any) -> None:
    h, keys = env
    r = await h.client.post(f"/v1/api-keys/{keys['scoped_id']['id']}/revoke", headers=keys["admin"])
    assert r.status_code == 200 and r.json()["revoked_at"]
    before = await h.state_counts()
    r = await h.client.post(
        "/v1/stores/acme-shop/metrics", json={"rows": rows(1)}, headers=keys["scoped"]
    )
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    assert await h.state_counts() == before


async def test_bootstrap_admin_can_read_but_metrics_need_a_store(env: Any) -> None:
    h, _ = env
    r = await h.client.post("/v1/stores/acme-shop/metrics", json={"rows": rows(1)}, headers=ADMIN)
    assert r.status_code == 404  # acme's store is not the default tenant's
