"""Hostile JSON at ingest's boundary (issue 16): deep nesting and lone surrogates are problems
naming the line or the field, never a 500; an import keeps every good line around a bad one."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from typing import Any

import pytest
from support import Harness, store_body

from services.ingest.models import MetricRow

DEEP = "[" * 5000 + "]" * 5000


@pytest.fixture
async def env(ingest: Harness) -> tuple[Harness, dict[str, dict[str, str]]]:
    keys = await ingest.tenant_with_keys("acme", ["acme-us"])
    return ingest, keys


async def _finished(h: Harness, keys: Any, job_id: str) -> dict[str, Any]:
    for _ in range(400):
        r = await h.client.get(f"/v1/imports/{job_id}", headers=keys["viewer"])
        if r.json()["status"] in ("succeeded", "failed"):
            return dict(r.json())
        await asyncio.sleep(0.05)
    raise AssertionError("the import did not finish")


async def test_a_pathological_ndjson_line_is_a_line_problem_and_the_rest_goes_in(
    env: Any,
) -> None:
    h, keys = env
    good = '{{"date": "2026-10-{d:02d}", "metric": "orders", "value": {d}}}\n'
    text = (
        good.format(d=1)
        + good.format(d=2)
        + '{"date": "2026-10-03", "metric": "orders", "value": 3, "x": '
        + DEEP
        + "}\n"
        + '{"date": "2026-10-04", "metric": "orders", "value": 4, "dimensions": '
        '{"channel": "x\\ud800"}}\n' + good.format(d=5)
    )
    r = await h.client.post(
        "/v1/stores/acme-us/metrics/import",
        content=text.encode(),
        headers={**keys["operator"], "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 202, r.text
    job = await _finished(h, keys, r.json()["id"])
    assert job["status"] == "succeeded", job
    assert (job["rows_accepted"], job["rows_rejected"]) == (3, 2)
    assert await h.count(MetricRow) == 3
    problems = await h.client.get(f"/v1/imports/{job['id']}/problems", headers=keys["viewer"])
    assert problems.status_code == 200
    body = problems.text
    assert "nested deeper" in body and "surrogate" in body


async def test_a_lone_surrogate_in_a_json_body_is_a_422_naming_the_field(env: Any) -> None:
    h, keys = env
    raw = (
        '{"rows": [{"date": "2026-10-01", "metric": "orders", "value": 1, '
        '"dimensions": {"channel": "x\\ud800"}}]}'
    )
    r = await h.client.post(
        "/v1/stores/acme-us/metrics",
        content=raw.encode(),
        headers={**keys["operator"], "content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["loc"] == ["body", "rows", 0, "dimensions", "channel"]


async def test_a_deep_json_body_is_a_422_not_a_500(env: Any) -> None:
    h, keys = env
    r = await h.client.post(
        "/v1/stores",
        content=('{"id": "x", "name": ' + "[" * 100_000 + "]" * 100_000 + "}").encode(),
        headers={**keys["admin"], "content-type": "application/json"},
    )
    assert r.status_code == 422 and "nested deeper" in r.json()["detail"]


async def test_a_correctly_signed_deep_webhook_is_refused_not_a_500(env: Any) -> None:
    h, keys = env
    r = await h.client.post(
        "/v1/stores",
        json=store_body("acme-shop", webhook_secret="shpss_test_secret"),
        headers=keys["admin"],
    )
    assert r.status_code == 201, r.text
    body = ('{"id": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
    sig = base64.b64encode(hmac.new(b"shpss_test_secret", body, hashlib.sha256).digest())
    headers = {
        "X-Shopify-Hmac-Sha256": sig.decode(),
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": "w-1",
    }
    for ctype in ("application/json", "text/plain"):
        r = await h.client.post(
            "/v1/webhooks/shopify/acme-shop",
            content=body,
            headers={**headers, "content-type": ctype},
        )
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"])
def test_webhook_timestamps_outside_the_supported_dates_are_payload_errors(ts: str) -> None:
    from services.ingest.webhooks.platforms import PayloadError, local_date

    # Before: OverflowError from astimezone, which aborts the store's whole delivery group.
    with pytest.raises(PayloadError):
        local_date(ts, "Asia/Shanghai")
