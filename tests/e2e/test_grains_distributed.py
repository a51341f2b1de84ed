"""The distributed mode (ingest and diagnosis as processes, each on its own PostgreSQL database,
events over the real Kafka broker): random mixes of levels of detail read back with one store
total from ingest's SQL and in diagnosis's reports, and a deletion in ingest reaches diagnosis's
copy over the broker (the day is redone with the new totals)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from grain_mixes import as_api, check_store_totals_agree, grain_mix
from processes import Platform
from support import Infra

DAY = date(2026, 11, 20)


async def test_ingest_and_diagnosis_show_one_total_distributed(
    infra: Infra, tmp_path: Path
) -> None:
    p = Platform(infra.pg_dsn, infra.kafka, tmp_path / "platform", names=("ingest", "diagnosis"))
    try:
        await p.start()
        async with p.client("ingest") as ingest, p.client("diagnosis") as diagnosis:
            for seed in (1, 2, 3, 4):
                sid = f"mix-{seed}"
                r = await ingest.post(
                    "/v1/stores",
                    headers=p.auth,
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
                r = await ingest.post(
                    f"/v1/stores/{sid}/metrics", json={"rows": as_api(rows)}, headers=p.auth
                )
                assert r.status_code == 202, r.text
                await check_store_totals_agree(ingest, diagnosis, p.auth, sid, rows, DAY)
            rows = grain_mix(1, DAY, days=15)
            r = await ingest.delete(
                "/v1/stores/mix-1/metrics",
                params={"start": DAY.isoformat(), "end": DAY.isoformat(), "grain": "store"},
                headers=p.auth,
            )
            assert r.status_code == 200 and r.json()["deleted"] == 2, r.text
            left = [x for x in rows if not (x["date"] == DAY and not x["dimensions"])]
            report = await check_store_totals_agree(ingest, diagnosis, p.auth, "mix-1", left, DAY)
            assert report["version"] >= 2
    finally:
        await p.close()
