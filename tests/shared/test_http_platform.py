"""Idempotency-Key, rate limits, problem+json for unknown routes, health, metrics and logs."""

from __future__ import annotations

import json
from typing import Any

from support import ADMIN, Harness, store_body

from services.ingest.models import Store


async def test_idempotency_key_replays_the_first_answer(ingest: Harness) -> None:
    keys = await ingest.tenant_with_keys("acme", ["acme-a"])
    h = {**keys["operator"], "Idempotency-Key": "create-acme-gen-1"}
    body = store_body("acme-gen", platform="generic")
    first = await ingest.client.post("/v1/stores", json=body, headers=h)
    assert first.status_code == 201
    again = await ingest.client.post("/v1/stores", json=body, headers=h)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()  # same secret, shown to the retry that lost the answer
    assert again.headers["location"] == "/v1/stores/acme-gen"
    assert await ingest.count(Store, id="acme-gen") == 1
    other = await ingest.client.post("/v1/stores", json=store_body("acme-zzz"), headers=h)
    assert other.status_code == 422
    assert other.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await ingest.count(Store, id="acme-zzz") == 0
    # Without the key, the same creation is a plain conflict.
    plain = await ingest.client.post("/v1/stores", json=body, headers=keys["operator"])
    assert plain.status_code == 409
    # A failed request is not remembered: fixing the body and retrying with the key works.
    h2 = {**keys["operator"], "Idempotency-Key": "k2"}
    bad = await ingest.client.post("/v1/stores", json=store_body("acme-q", market="XX"), headers=h2)
    assert bad.status_code == 422
    good = await ingest.client.post("/v1/stores", json=store_body("acme-q"), headers=h2)
    assert good.status_code == 201
    # Keys are per API key: another key may use the same string independently.
    h3 = {**keys["admin"], "Idempotency-Key": "create-acme-gen-1"}
    r = await ingest.client.post("/v1/stores", json=store_body("acme-r"), headers=h3)
    assert r.status_code == 201


async def test_rate_limit_per_tenant_with_retry_after(make_harness: Any) -> None:
    async with make_harness(rate_limit_per_second=0.01, rate_limit_burst=40) as h:
        keys = await h.tenant_with_keys("acme", ["acme-a"])
        other = await h.tenant_with_keys("beta", ["beta-a"])
        statuses = []
        for _ in range(45):
            r = await h.client.get("/v1/stores", headers=keys["viewer"])
            statuses.append(r.status_code)
            if r.status_code == 429:
                break
        assert statuses[-1] == 429
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["content-type"] == "application/problem+json"
        r = await h.client.get("/v1/stores", headers=other["viewer"])
        assert r.status_code == 200  # another tenant is not throttled


async def test_unknown_routes_and_methods_are_problems(ingest: Harness) -> None:
    r = await ingest.client.get("/v1/nowhere", headers=ADMIN)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await ingest.client.delete("/v1/stores", headers=ADMIN)
    assert r.status_code == 405 and r.json()["status"] == 405


async def test_health_and_metrics_by_route_template(ingest: Harness) -> None:
    c = ingest.client
    assert (await c.get("/healthz")).json() == {"status": "ok"}
    ready = await c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": True, "bus": True}
    keys = await ingest.tenant_with_keys("acme", ["acme-a", "acme-b"])
    await c.get("/v1/stores/acme-a", headers=keys["viewer"])
    await c.get("/v1/stores/acme-b", headers=keys["viewer"])
    await c.get("/v1/stores/nope", headers=keys["viewer"])
    text = (await c.get("/metrics")).text
    assert 'route="/v1/stores/{store_id}"' in text
    assert "acme-a" not in text  # raw paths never become labels
    assert (
        'storeops_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/v1/stores/{store_id}",service="ingest"}'
        in text
    )
    assert (
        'storeops_http_requests_total{method="GET",route="/v1/stores/{store_id}",service="ingest",status="404"}'
        in text
    )
    assert 'storeops_outbox_backlog{service="ingest"}' in text
    assert "storeops_events_published_total" in text


async def test_readyz_fails_when_the_database_is_gone(ingest: Harness) -> None:
    db = ingest.app.state.db

    async def down() -> bool:
        return False

    real = db.ping
    db.ping = down
    try:
        r = await ingest.client.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["database"] is False
    finally:
        db.ping = real


async def test_logs_are_json_with_request_id_and_no_secrets(ingest: Harness, capsys: Any) -> None:
    from shared.observability import configure_logging

    configure_logging("INFO", json=True)
    keys = await ingest.tenant_with_keys("acme", ["acme-gen0"])
    r = await ingest.client.post(
        "/v1/stores",
        json=store_body("acme-gen", platform="generic"),
        headers={**keys["operator"], "X-Request-ID": "req-12345"},
    )
    secret = r.json()["webhook_secret"]
    assert r.headers["x-request-id"] == "req-12345"
    import structlog

    structlog.get_logger("t").info("probe", authorization="Bearer leaked", webhook_secret="s3")
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert any(
        line.get("request_id") == "req-12345" and line["route"] == "/v1/stores" for line in requests
    )
    token = keys["operator"]["Authorization"].split()[1]
    assert token not in err and secret not in err and ADMIN["Authorization"] not in err
    probe = next(line for line in lines if line.get("event") == "probe")
    assert probe["authorization"] == "[redacted]" and probe["webhook_secret"] == "[redacted]"
