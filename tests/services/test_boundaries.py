"""The input boundary across every service (issue 16), through the embedded app: dates outside
the supported range, lenient types, hostile JSON and references to another tenant's ids are
problems (4xx, problem+json), never a 500 and never stored."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ADMIN, ADMIN_KEY, store_body, wait_until

from services.allinone import AllInOne

PROBLEM = "application/problem+json"


class Env:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.c = client
        self.keys: dict[str, dict[str, str]] = {}

    async def tenant(self, tenant: str, stores: list[str]) -> None:
        c = self.c
        r = await c.post("/v1/tenants", json={"id": tenant, "name": tenant}, headers=ADMIN)
        assert r.status_code == 201, r.text
        r = await c.post(
            "/v1/users",
            json={"email": f"a@{tenant}.test", "name": "A", "tenant_id": tenant},
            headers=ADMIN,
        )
        user = r.json()["id"]
        r = await c.post(
            f"/v1/api-keys?tenant_id={tenant}",
            json={"user_id": user, "name": "admin", "role": "admin"},
            headers=ADMIN,
        )
        key = {"Authorization": f"Bearer {r.json()['key']}"}
        self.keys[tenant] = key
        for sid in stores:
            r = await c.post("/v1/stores", json=store_body(sid), headers=key)
            assert r.status_code == 201, r.text

        async def everywhere() -> bool:
            # The key and the stores reach every service as events.
            a = await c.get("/v1/calendar/settings", headers=key)
            b = await c.get("/v1/copies", headers=key)
            d = await c.get(f"/v1/stores/{stores[0]}/diagnoses", headers=key)
            return all(r.status_code == 200 for r in (a, b, d))

        await wait_until(everywhere, timeout=20)

    async def post(self, path: str, body: Any, tenant: str = "acme") -> httpx.Response:
        return await self.c.post(path, json=body, headers=self.keys[tenant])


@pytest.fixture(scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("boundaries")
    aio = AllInOne(
        {
            "var_dir": tmp,
            "database_url": "",
            "kafka_bootstrap_servers": "",
            "log_level": "WARNING",
            "outbox_poll_seconds": 0.05,
            "ops_bootstrap_api_key": ADMIN_KEY,
        }
    )
    async with aio.lifespan():
        transport = httpx.ASGITransport(app=aio)
        async with httpx.AsyncClient(transport=transport, base_url="http://aio") as c:
            e = Env(c)
            await e.tenant("acme", ["acme-1", "acme-2"])
            await e.tenant("rival", ["rival-1"])
            yield e


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == PROBLEM
    return dict(r.json())


# ---- 1. dates, strict types, hostile JSON ----------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"), [("0001-01-01", "0001-12-31"), ("9999-01-01", "9999-12-31")]
)
async def test_calendar_outside_the_supported_range_is_422(env: Env, start: str, end: str) -> None:
    r = await env.c.get(f"/v1/calendar?market=CN&start={start}&end={end}", headers=env.keys["acme"])
    assert "2000-01-01..2100-12-31" in _problem(r, 422)["errors"][0]["msg"]


async def test_diagnosis_and_campaign_dates_outside_the_range_are_422(env: Env) -> None:
    r = await env.post("/v1/stores/acme-1/diagnoses", {"date": "0001-01-01"})
    assert _problem(r, 422)["errors"][0]["loc"] == ["body", "date"]
    for start, end in (("9999-12-01", "9999-12-31"), ("0001-01-01", "0001-01-31")):
        r = await env.post("/v1/stores/acme-1/campaigns", {"name": "x", "start": start, "end": end})
        assert _problem(r, 422)["errors"][0]["loc"][:2] == ["body", "start"]
    r = await env.c.get("/v1/stores/acme-1/diagnoses/0001-01-01", headers=env.keys["acme"])
    _problem(r, 422)


async def test_a_date_time_is_not_a_metric_date(env: Env) -> None:
    row = {"date": "2026-10-01T00:00:00", "metric": "orders", "value": 1}
    r = await env.post("/v1/stores/acme-1/metrics", {"rows": [row]})
    assert _problem(r, 422)["errors"][0]["loc"] == ["body", "rows", 0, "date"]


async def test_booleans_and_integers_are_strict(env: Env) -> None:
    r = await env.post(
        "/v1/slots", {"name": "s", "capacity": 3, "rules": {"window_close_days": False}}
    )
    assert _problem(r, 422)["errors"][0]["loc"] == ["body", "rules", "window_close_days"]
    r = await env.post("/v1/slots", {"name": "s", "capacity": "3"})
    _problem(r, 422)
    r = await env.post("/v1/lint", {"body": "hello", "marketing": 0})
    assert _problem(r, 422)["errors"][0]["loc"] == ["body", "marketing"]
    assert (await env.post("/v1/lint", {"body": "hello", "marketing": False})).status_code == 200


async def test_nan_timestamps_are_refused_not_echoed_as_null(env: Env) -> None:
    raw = '{"points": [{"timestamp": NaN, "value": 1}, {"timestamp": 2, "value": 2}]}'
    r = await env.c.post(
        "/v1/anomalies",
        content=raw,
        headers={**env.keys["acme"], "content-type": "application/json"},
    )
    assert _problem(r, 422)["errors"][0]["loc"][:4] == ["body", "points", 0, "timestamp"]


async def test_a_lone_surrogate_in_rca_is_a_422_naming_the_field(env: Env) -> None:
    raw = (
        '{"dimensions": ["channel"], "rows": [{"channel": "x\\ud800", "real": 1, "predict": 2},'
        ' {"channel": "y", "real": 3, "predict": 3}]}'
    )
    r = await env.c.post(
        "/v1/rca", content=raw, headers={**env.keys["acme"], "content-type": "application/json"}
    )
    assert _problem(r, 422)["errors"][0]["loc"] == ["body", "rows", 0, "channel"]


# Every route family that takes a JSON body, driven with hostile text (property test).
JSON_ROUTES = [
    "/v1/stores",
    "/v1/stores/acme-1/metrics",
    "/v1/benchmarks",
    "/v1/stores/acme-1/diagnoses",
    "/v1/rca",
    "/v1/anomalies",
    "/v1/stores/acme-1/campaigns",
    "/v1/slots",
    "/v1/copies",
    "/v1/lint",
    "/v1/notification-targets",
]
_scalar = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["x\ud800", "\udfff", "2000-01-01", "9999-12-31", "0001-01-01"]),
    st.integers(),
    st.booleans(),
    st.none(),
)
_json = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=st.sampled_from(JSON_ROUTES), doc=_json, depth=st.sampled_from([0, 0, 70, 5000]))
async def test_hostile_json_bodies_never_reach_a_500(
    env: Env, path: str, doc: Any, depth: int
) -> None:
    text = json.dumps(doc)  # ensure_ascii: lone surrogates become \ud800 escapes
    if depth:
        text = '{"x": ' + "[" * depth + text + "]" * depth + "}"
    r = await env.c.post(
        path,
        content=text.encode(),
        headers={**env.keys["acme"], "content-type": "application/json"},
    )
    assert r.status_code < 500, (path, text[:200], r.text[:300])
    if r.status_code >= 400:
        assert r.headers["content-type"] == PROBLEM
    r.content.decode("utf-8")  # the answer is always encodable


# ---- 3. references stay inside the tenant ---------------------------------------------------


async def test_a_copy_refers_only_to_a_campaign_of_its_tenant_and_store(env: Env) -> None:
    mine = await env.post(
        "/v1/stores/acme-1/campaigns", {"name": "Mine", "event": "black_friday", "year": 2027}
    )
    assert mine.status_code == 201, mine.text
    theirs = await env.post(
        "/v1/stores/rival-1/campaigns",
        {"name": "Theirs", "event": "black_friday", "year": 2027},
        tenant="rival",
    )
    assert theirs.status_code == 201, theirs.text
    copy = {"store_id": "acme-1", "type": "banner", "locale": "en", "body": "Sale now"}
    for foreign in (theirs.json()["id"], str(uuid.uuid4())):
        r = await env.post("/v1/copies", {**copy, "campaign_id": foreign})
        assert _problem(r, 422)["errors"][0]["loc"] == ["body", "campaign_id"]
    # Another store of the same tenant: not this copy's campaign either.
    r = await env.post(
        "/v1/copies", {**copy, "store_id": "acme-2", "campaign_id": mine.json()["id"]}
    )
    _problem(r, 422)

    async def accepted() -> bool:
        r = await env.post("/v1/copies", {**copy, "campaign_id": mine.json()["id"]})
        return r.status_code == 201

    await wait_until(accepted, timeout=20)  # once content heard of the campaign


async def test_a_copy_refers_only_to_a_store_and_brief_of_its_tenant(env: Env) -> None:
    copy = {"type": "banner", "locale": "en", "body": "Sale now"}
    r = await env.post("/v1/copies", {**copy, "store_id": "rival-1"})
    _problem(r, 404)
    r = await env.post("/v1/copies", {**copy, "store_id": "acme-1", "brief_id": str(uuid.uuid4())})
    assert _problem(r, 422)["errors"][0]["loc"] == ["body", "brief_id"]


async def test_a_notification_target_names_only_stores_of_its_tenant(env: Env) -> None:
    target = {"owner": "designer", "format": "slack", "url": "https://example.com/hook"}
    for stores in (["rival-1"], ["no-such-store"], ["acme-1", "rival-1"]):
        r = await env.post("/v1/notification-targets", {**target, "store_ids": stores})
        assert _problem(r, 422)["errors"][0]["loc"] == ["body", "store_ids"], stores
    r = await env.post("/v1/notification-targets", {**target, "store_ids": ["acme-1"]})
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    r = await env.c.patch(
        f"/v1/notification-targets/{tid}", json={"store_ids": ["rival-1"]}, headers=env.keys["acme"]
    )
    _problem(r, 422)
    # Another tenant's target is not found at all.
    r = await env.c.get(f"/v1/notification-targets/{tid}", headers=env.keys["rival"])
    _problem(r, 404)


async def test_slots_keys_users_and_findings_of_another_tenant_are_404(env: Env) -> None:
    r = await env.post("/v1/slots", {"name": "home", "capacity": 2}, tenant="rival")
    assert r.status_code == 201, r.text
    slot = r.json()["id"]
    r = await env.post(f"/v1/slots/{slot}/bookings", {"store_id": "acme-1", "day": "2026-11-01"})
    _problem(r, 404)
    r = await env.c.get("/v1/api-keys", headers=env.keys["rival"])
    rival_key = r.json()[0]["id"]
    r = await env.c.delete(f"/v1/api-keys/{rival_key}", headers=env.keys["acme"])
    _problem(r, 404)
    r = await env.c.get(f"/v1/findings/{uuid.uuid4()}", headers=env.keys["acme"])
    _problem(r, 404)
    r = await env.c.get(f"/v1/briefs/{uuid.uuid4()}", headers=env.keys["acme"])
    _problem(r, 404)


# ---- 4. the API contract --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("OPTIONS", "/v1/api-keys"), ("TRACE", "/v1/stores"), ("PUT", "/v1/stores/acme-1/campaigns")],
)
async def test_undeclared_methods_answer_405_with_every_method_of_the_path(
    env: Env, method: str, path: str
) -> None:
    r = await env.c.request(method, path, headers=env.keys["acme"])
    _problem(r, 405)
    assert {"GET", "POST"} <= set(r.headers["allow"].split(", "))


async def test_openapi_documents_problems_servers_and_the_merged_app(env: Env) -> None:
    merged = (await env.c.get("/openapi.json")).json()
    assert merged["servers"] == [{"url": "/"}]
    for service in ("ingest", "diagnosis", "campaigns", "content"):
        doc = (await env.c.get(f"/{service}/openapi.json")).json()
        assert [s["url"] for s in doc["servers"]] == ["/"]
        for path, item in doc["paths"].items():
            assert path in merged["paths"]
            if not path.startswith("/v1/"):
                continue
            for method, op in item.items():
                for code in ("401", "403", "404", "422", "429"):
                    content = op["responses"][code]["content"]
                    assert "application/problem+json" in content, (service, method, path, code)
    r = await env.c.get("/docs")
    assert r.status_code == 200 and "/openapi.json" in r.text
    rollup = merged["paths"]["/v1/metrics/rollup"]["get"]["parameters"]
    assert next(p for p in rollup if p["name"] == "metric")["required"] is True


# ---- 5. request lines, headers, locales -----------------------------------------------------


async def test_oversized_request_targets_and_headers_answer_problem_json(env: Env) -> None:
    r = await env.c.get("/v1/stores?cursor=" + "a" * 60_000, headers=env.keys["acme"])
    _problem(r, 414)
    r = await env.c.get("/v1/stores", headers={**env.keys["acme"], "x-big": "b" * 20_000})
    _problem(r, 431)


@pytest.mark.parametrize(
    ("tag", "expect"),
    [
        ("en-US", "en"),
        ("zh-Hans-CN", "zh-CN"),
        ("zh-CN", "zh-CN"),
        ("zh_TW", "zh-TW"),
        ("ja-JP", "ja"),
    ],
)
async def test_locales_accept_bcp47_tags_with_fallback(env: Env, tag: str, expect: str) -> None:
    r = await env.post("/v1/lint", {"body": "hello", "locale": tag})
    assert r.status_code == 200, r.text
    r = await env.post(
        "/v1/copies", {"store_id": "acme-1", "type": "banner", "locale": tag, "body": "Sale"}
    )
    assert r.status_code == 201 and r.json()["locale"] == expect, r.text
    r = await env.post("/v1/lint", {"body": "hello", "locale": "fr-FR"})
    _problem(r, 422)


def test_bcp47_negotiation() -> None:
    from shared.locales import negotiate

    supported = ("en", "zh-CN", "ja")
    assert negotiate("zh-Hant-HK", ("en", "zh-CN", "zh-TW")) == "zh-TW"
    assert negotiate("zh-Hant-HK", supported) == "zh-CN"
    assert negotiate("EN-gb", supported) == "en"
    assert negotiate("x", supported) is None and negotiate("", supported) is None
