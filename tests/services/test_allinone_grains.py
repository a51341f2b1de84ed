"""The embedded mode (SQLite, LocalBus, one process): random mixes of levels of detail posted
to ingest read back with the same store totals from ingest and in diagnosis's reports, and a
deletion in ingest reaches diagnosis's copy (the day is redone with the new totals)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import httpx
from grain_mixes import as_api, check_store_totals_agree, grain_mix

from services.allinone import AllInOne

KEY = "aio-grains-admin-key-123456"
AUTH = {"Authorization": f"Bearer {KEY}"}
DAY = date(2026, 11, 20)


async def test_ingest_and_diagnosis_show_one_total_embedded(tmp_path: Path) -> None:
    aio = AllInOne(
        {
            "var_dir": tmp_path,
            "database_url": "",
            "kafka_bootstrap_servers": "",
            "log_level": "WARNING",
            "ops_bootstrap_api_key": KEY,
            "outbox_poll_seconds": 0.05,
        }
    )
    async with aio.lifespan():
        transport = httpx.ASGITransport(app=aio)
        async with httpx.AsyncClient(transport=transport, base_url="http://aio", timeout=60) as c:
            for seed in (1, 2, 3, 4):
                sid = f"mix-{seed}"
                r = await c.post(
                    "/v1/stores",
                    headers=AUTH,
                    json={
                        "id": sid,
                        "name": sid,
                        "platform": "taobao",
                        "timezone": "Asia/Shanghai",
                        "currency": "CNY",
                        "market": "CN",
                    },
                )
                assert r.status_code == 201, r.text
                rows = grain_mix(seed, DAY, days=15)
                r = await c.post(
                    f"/v1/stores/{sid}/metrics", json={"rows": as_api(rows)}, headers=AUTH
                )
                assert r.status_code == 202, r.text
                await check_store_totals_agree(c, c, AUTH, sid, rows, DAY)
            # a correction in ingest: the day's store-level rows go; diagnosis follows, and
            # the total falls back to the channel x device rows
            rows = grain_mix(1, DAY, days=15)
            r = await c.delete(
                "/v1/stores/mix-1/metrics",
                params={"start": DAY.isoformat(), "end": DAY.isoformat(), "grain": "store"},
                headers=AUTH,
            )
            assert r.status_code == 200 and r.json()["deleted"] == 2, r.text
            left = [x for x in rows if not (x["date"] == DAY and not x["dimensions"])]
            report = await check_store_totals_agree(c, c, AUTH, "mix-1", left, DAY)
            assert report["version"] >= 2
