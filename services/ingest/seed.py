"""Load the demo tenant and its data through ingest's own use cases (used by `make run`).

Idempotent: a second start finds the demo tenant and only prints its key again. The demo admin
key is kept in var/demo-admin-key.txt so that the printed curl commands keep working; that file
is the demo's only copy of a secret in clear, and lives in the git-ignored var/.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from services.ingest import repository as repo
from services.ingest import service
from services.ingest.demo import generate_demo
from services.ingest.schemas import (
    ApiKeyCreate,
    BenchmarkRowIn,
    BenchmarksIn,
    CompetitorMetricsIn,
    CompetitorRowIn,
    FxRateIn,
    MetricRowIn,
    StoreCreate,
    TenantCreate,
    UserCreate,
)
from shared.auth import BOOTSTRAP_KEY_ID, DEFAULT_TENANT, Principal

# The demo tenant's own rates into its reporting currency (USD), from the demo's first day on:
# triage converts the Taobao and German stores' impacts with them.
DEMO_FX_TO_USD = {"CNY": 0.14, "EUR": 1.08}


@dataclass
class SeedResult:
    created: bool
    api_key: str
    stores: list[str]
    rows: int


async def seed_demo(state: Any, *, end: date | None = None) -> SeedResult:
    key_file = Path(state.settings.var_dir) / "demo-admin-key.txt"
    demo = generate_demo(end=end or datetime.now(UTC).date())
    tenant_id = demo.tenant["id"]
    async with state.db.session() as s:
        exists = await repo.get_tenant(s, tenant_id) is not None
    if exists and key_file.exists():
        return SeedResult(False, key_file.read_text().strip(), [st["id"] for st in demo.stores], 0)

    platform = Principal(
        tenant_id=DEFAULT_TENANT,
        user_id="seed",
        key_id=BOOTSTRAP_KEY_ID,
        role="admin",
        store_ids=None,
    )
    async with state.db.session() as s:
        if not exists:
            await service.create_tenant(
                s,
                platform,
                TenantCreate(
                    id=tenant_id,
                    name=demo.tenant["name"],
                    reporting_currency=demo.tenant["reporting_currency"],
                ),
            )
        user = await repo.get_user_by_email(s, tenant_id, "admin@demo.example")
        user_id = (
            user.id
            if user
            else (
                await service.create_user(
                    s,
                    platform,
                    UserCreate(email="admin@demo.example", name="Demo Admin", tenant_id=tenant_id),
                )
            ).id
        )
        key = await service.create_api_key(
            s, platform, ApiKeyCreate(user_id=user_id, name="demo admin", role="admin"), tenant_id
        )
        await s.commit()
    assert key.key is not None
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key.key + "\n")
    key_file.chmod(0o600)

    admin = Principal(
        tenant_id=tenant_id, user_id=user_id, key_id=key.id, role="admin", store_ids=None
    )
    first = min(date.fromisoformat(str(r["date"])) for rows in demo.rows.values() for r in rows)
    target = demo.tenant["reporting_currency"]
    fx = [
        FxRateIn(date=first, base=cur, quote=target, rate=DEMO_FX_TO_USD[cur])
        for cur in sorted({st["currency"] for st in demo.stores} - {target})
        if target == "USD" and cur in DEMO_FX_TO_USD
    ]
    if fx:
        async with state.db.session() as s:
            await service.ingest_fx_rates(s, admin, fx)
            await s.commit()
    total = 0
    for st in demo.stores:
        async with state.db.session() as s:
            if await repo.get_store(s, tenant_id, st["id"]) is None:
                await service.create_store(s, admin, StoreCreate(**st))
            rows = [MetricRowIn(**r) for r in demo.rows[st["id"]]]
            res = await service.ingest_metrics(s, admin, st["id"], rows, source="import")
            await service.record_delivery(s, tenant_id, st["id"], "import", "delivered")
            total += res.accepted + res.updated
            for comp in demo.competitors.get(st["id"], []):
                await service.ingest_competitor_metrics(
                    s,
                    admin,
                    st["id"],
                    comp["competitor_id"],
                    CompetitorMetricsIn(
                        name=comp["name"], rows=[CompetitorRowIn(**r) for r in comp["rows"]]
                    ),
                )
            await s.commit()
        state.relay.wake()
    for bench in demo.benchmarks:
        async with state.db.session() as s:
            await service.ingest_benchmarks(
                s,
                admin,
                BenchmarksIn(
                    market=bench["market"],
                    category=bench["category"],
                    value_kind=bench["value_kind"],
                    provider="demo",
                    rows=[BenchmarkRowIn(**r) for r in bench["rows"]],
                ),
                source="import",
            )
            await s.commit()
    state.relay.wake()
    return SeedResult(True, key.key, [st["id"] for st in demo.stores], total)
