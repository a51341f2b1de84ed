"""API keys: stored hashed, compared in constant time, revocable; and every service learns keys
and revocations from ingest's events and authenticates on its own."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from support import ADMIN, Harness

from shared import auth
from shared.auth import AuthKey, authenticate, ensure_bootstrap_key, key_sync_subscription
from shared.bus import LocalBus
from shared.config import ServiceSettings
from shared.db import Database
from shared.errors import Unauthorized
from shared.outbox import ProcessedEvent


async def test_keys_are_stored_only_as_hashes(ingest: Harness) -> None:
    keys = await ingest.tenant_with_keys("acme", ["acme-a"])
    token = keys["operator"]["Authorization"].split()[1]
    assert token.startswith("ops_") and len(token) > 40
    async with ingest.app.state.db.session(readonly=True) as s:
        rows = (await s.execute(select(AuthKey.__table__))).all()
    dump = repr(rows)
    assert token not in dump
    lookup, digest = auth.hash_token(token)
    assert any(r.secret_hash == digest and r.lookup == lookup for r in rows)


def test_comparison_is_constant_time() -> None:
    # The full hash is compared with hmac.compare_digest, whatever the lookup index matched.
    assert "hmac.compare_digest" in inspect.getsource(auth.authenticate)


async def test_bootstrap_key_is_idempotent_and_rotates(tmp_path: Path) -> None:
    from services.ingest.main import MIGRATIONS
    from shared.db import migrate

    db = Database(ServiceSettings(service_name="authprobe", var_dir=tmp_path))
    await migrate(db.engine, MIGRATIONS)
    async with db.session() as s:
        assert await ensure_bootstrap_key(s, "first-secret-key")
        assert not await ensure_bootstrap_key(s, "first-secret-key")
        p = await authenticate(s, "Bearer first-secret-key")
        assert (p.tenant_id, p.role, p.is_platform_admin) == ("default", "admin", True)
        assert await ensure_bootstrap_key(s, "second-secret-key")
        with pytest.raises(Unauthorized):
            await authenticate(s, "Bearer first-secret-key")
        for bad in (None, "", "Bearer", "Basic abc", "Bearer " + "x" * 600):
            with pytest.raises(Unauthorized):
                await authenticate(s, bad)
    await db.dispose()


async def test_other_services_learn_keys_and_revocations_from_events(
    ingest: Harness, tmp_path: Path
) -> None:
    """A second service on the same LocalBus keeps its own auth_keys table from the events."""
    keys = await ingest.tenant_with_keys("acme", ["acme-a"])
    token = keys["scoped"]["Authorization"]
    probe_settings = ServiceSettings(
        service_name="probe", var_dir=tmp_path / "probe", local_bus_path=str(tmp_path / "bus.db")
    )
    db = Database(probe_settings)
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda c: AuthKey.__table__.create(c))
        await conn.run_sync(lambda c: ProcessedEvent.__table__.create(c))
    bus = LocalBus(probe_settings)
    group, topics, factory = key_sync_subscription("probe")
    bus.subscribe(group, topics, factory(SimpleNamespace(db=db)))
    await bus.start()
    try:

        async def principal() -> Any:
            async with db.session(readonly=True) as s:
                return await authenticate(s, token)

        for _ in range(200):
            try:
                p = await principal()
                break
            except Unauthorized:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the key never reached the other service")
        assert p.tenant_id == "acme" and p.store_ids == frozenset({"acme-a"})
        assert p.role == "operator"
        r = await ingest.client.post(
            f"/v1/api-keys/{keys['scoped_id']['id']}/revoke", headers=keys["admin"]
        )
        assert r.status_code == 200
        for _ in range(200):
            try:
                await principal()
                await asyncio.sleep(0.05)
            except Unauthorized:
                break
        else:
            raise AssertionError("the revocation never reached the other service")
    finally:
        await bus.stop()
        await db.dispose()


async def test_revoked_key_cannot_be_revived_by_a_replayed_creation(tmp_path: Path) -> None:
    from shared.events.examples import EXAMPLE_API_TOKEN
    from shared.events.ingest import ApiKeyCreatedV1, ApiKeyRevokedV1

    db = Database(ServiceSettings(service_name="replay", var_dir=tmp_path))
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda c: AuthKey.__table__.create(c))
    created = ApiKeyCreatedV1.example()
    revoked = ApiKeyRevokedV1(
        tenant_id=created.tenant_id, key_id=created.key_id, revoked_at=created.created_at
    )
    async with db.session() as s:
        await auth.revoke_key(s, revoked)  # revocation seen first
        await auth.upsert_key(s, created)
        await s.commit()
        with pytest.raises(Unauthorized):
            await authenticate(s, f"Bearer {EXAMPLE_API_TOKEN}")
    await db.dispose()


async def test_user_and_key_admin_validation(ingest: Harness) -> None:
    c = ingest.client
    r = await c.post(
        "/v1/api-keys", json={"user_id": "nobody", "name": "k", "role": "admin"}, headers=ADMIN
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "user_id"]
    r = await c.post(
        "/v1/api-keys", json={"user_id": "x", "name": "k", "role": "root"}, headers=ADMIN
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "role"]
    r = await c.post("/v1/users", json={"email": "not-an-email", "name": "x"}, headers=ADMIN)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "email"]
    r = await c.post("/v1/api-keys/00000000-0000-0000-0000-000000000000/revoke", headers=ADMIN)
    assert r.status_code == 404
