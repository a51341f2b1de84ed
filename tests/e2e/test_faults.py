"""Faults across processes on the real broker and PostgreSQL. Each test asserts that nothing
accepted was lost and nothing was applied twice: content's copy of the metric rows that carry a
copy_id (and diagnosis's copy of the series where it runs) must equal, row for row and value for
value, what ingest accepted, and each event is claimed once per consumer group."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from e2e import journey_data as jd
from processes import Platform
from prometheus_client.parser import text_string_to_metric_families
from support import Infra, read_topic, services_script, wait_until

CONTENT_GROUP = "content.events"
DIAGNOSIS_GROUP = "diagnosis.events"
NAMES = ("ingest", "diagnosis", "content")
DAY0 = date(2026, 9, 1)


def batch(j: int, days: int = 10) -> list[dict[str, Any]]:
    """Request j: copy `copy-j` over `days` days, impressions and clicks: 2 x days rows."""
    return [
        {
            "date": (DAY0 + timedelta(days=k)).isoformat(),
            "metric": metric,
            "value": value,
            "dimensions": {"copy_id": f"copy-{j}"},
        }
        for k in range(days)
        for metric, value in (("impressions", 1000 + j + k), ("clicks", 10 + (j + k) % 7))
    ]


def expected(requests: list[int], days: int = 10) -> tuple[int, float]:
    rows = [r for j in requests for r in batch(j, days)]
    return len(rows), float(sum(r["value"] for r in rows))


async def counter(svc_url: str, name: str, **labels: str) -> float:
    async with httpx.AsyncClient(base_url=svc_url, timeout=10) as c:
        text = (await c.get("/metrics")).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def content_rows(p: Platform) -> tuple[int, float]:
    row = (await p.query("content", "SELECT count(*), coalesce(sum(value), 0) FROM copy_metrics"))[
        0
    ]
    return int(row[0]), float(row[1])


async def diagnosis_rows(p: Platform) -> tuple[int, float]:
    sql = "SELECT count(*), coalesce(sum(value), 0) FROM diag_series WHERE store_id = $1"
    row = (await p.query("diagnosis", sql, jd.STORE_ID))[0]
    return int(row[0]), float(row[1])


async def ingest_rows(p: Platform) -> tuple[int, float]:
    sql = "SELECT count(*), coalesce(sum(value), 0) FROM metric_rows WHERE store_id = $1"
    row = (await p.query("ingest", sql, jd.STORE_ID))[0]
    return int(row[0]), float(row[1])


async def claims(p: Platform, service: str, group: str) -> int:
    sql = "SELECT count(*) FROM processed_events WHERE consumer_group = $1"
    return int((await p.query(service, sql, group))[0][0])


async def register(p: Platform) -> None:
    async with p.client("ingest") as c:
        r = await c.post("/v1/stores", json=jd.store_body(), headers=p.auth)
        assert r.status_code == 201, r.text

    async def known_to_content() -> bool:
        async with p.client("content") as c:
            r = await c.get("/v1/copies", params={"store_id": jd.STORE_ID}, headers=p.auth)
            return r.status_code == 200

    await wait_until(known_to_content, 60, 0.3)


@pytest.fixture
async def shop(infra: Infra, tmp_path: Any) -> AsyncIterator[Platform]:
    """Ingest, diagnosis and content as processes, the journey's store registered."""
    p = Platform(infra.pg_dsn, infra.kafka, tmp_path / "pl", names=NAMES)
    try:
        await p.start()
        await register(p)
        yield p
    finally:
        await p.close()


async def post_until_accepted(c: httpx.AsyncClient, p: Platform, j: int) -> None:
    """A client that retries what was not accepted (503 while a dependency is down, a refused
    connection), as platforms and our CLI do; an answered 202 is final."""
    while True:
        try:
            r = await c.post(
                f"/v1/stores/{jd.STORE_ID}/metrics", json={"rows": batch(j)}, headers=p.auth
            )
        except httpx.HTTPError:
            await asyncio.sleep(0.3)
            continue
        if r.status_code == 202:
            return
        assert r.status_code in (503, 500, 429), r.text
        await asyncio.sleep(0.3)


async def post_all(c: httpx.AsyncClient, p: Platform, requests: range, clients: int = 4) -> None:
    """Post the requests from a few concurrent clients, each retrying until accepted."""
    todo = list(requests)

    async def client() -> None:
        while todo:
            await post_until_accepted(c, p, todo.pop(0))

    await asyncio.gather(*(client() for _ in range(clients)))


async def all_arrived(p: Platform, n_requests: int, timeout: float = 120) -> None:
    want = expected(list(range(n_requests)))

    async def done() -> bool:
        if await content_rows(p) != want:
            return False
        return "diagnosis" not in p.names or await diagnosis_rows(p) == want

    await wait_until(done, timeout, 0.5)
    assert await ingest_rows(p) == want


async def assert_claimed_once(p: Platform, events: int) -> None:
    """Each consumer group claimed each event once (the primary key forbids more; fewer would
    mean a lost event) - the store's registration included."""
    assert await claims(p, "content", CONTENT_GROUP) == events
    if "diagnosis" in p.names:
        assert await claims(p, "diagnosis", DIAGNOSIS_GROUP) == events


async def test_a_consumer_killed_in_the_middle_of_a_batch(shop: Platform) -> None:
    p = shop
    p.services["content"].stop()
    p.services["diagnosis"].stop()
    n = 200
    async with p.client("ingest") as c:
        await post_all(c, p, range(n))
    p.services["content"].start()
    p.services["diagnosis"].start()
    # Kill them while it works through the backlog: some events handled, their offsets not
    # yet committed (the consumer commits after each fetched batch).
    killed_at: list[int] = []
    for _ in range(6000):
        rows, _ = await content_rows(p)
        if rows >= 1000:
            p.services["content"].kill()
            p.services["diagnosis"].kill()
            killed_at.append(rows)
            break
        await asyncio.sleep(0.005)
    assert killed_at and killed_at[0] < expected(list(range(n)))[0], killed_at
    claimed_before = await claims(p, "content", CONTENT_GROUP)
    for name in ("content", "diagnosis"):
        p.services[name].start()
    await asyncio.gather(*(p.services[n].wait_ready() for n in ("content", "diagnosis")))
    await all_arrived(p, n)
    # Every metrics event claimed once, plus the store's registration.
    await assert_claimed_once(p, n + 1)
    # The restarted process was handed again events the killed one had already applied:
    # the dedupe really worked (not a lucky kill between two commits).
    consumed = await counter(
        p.url("content"), "storeops_events_consumed_total", group=CONTENT_GROUP
    )
    assert consumed > (n + 1) - claimed_before, (consumed, claimed_before)


async def test_the_broker_restarted_mid_flow(shop: Platform) -> None:
    p = shop
    n = 120
    async with p.client("ingest") as c:
        await post_all(c, p, range(40))
        services_script("stop-kafka")
        try:
            # Writes keep being accepted while the broker is away: the outbox holds them.
            for j in range(40, 80):
                r = await c.post(
                    f"/v1/stores/{jd.STORE_ID}/metrics",
                    json={"rows": batch(j)},
                    headers=p.auth,
                )
                assert r.status_code == 202, r.text
            backlog = await p.query(
                "ingest", "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            assert backlog[0][0] >= 40
        finally:
            services_script("start-kafka")
        await post_all(c, p, range(80, n))
    await all_arrived(p, n, timeout=180)
    await assert_claimed_once(p, n + 1)
    left = await p.query("ingest", "SELECT count(*) FROM outbox WHERE published_at IS NULL")
    assert left[0][0] == 0


async def test_postgres_restarted_under_load(shop: Platform) -> None:
    p = shop
    n = 160
    async with p.client("ingest") as c:
        queue = list(range(n))

        async def writer() -> None:
            while queue:
                await post_until_accepted(c, p, queue.pop(0))

        writers = [asyncio.create_task(writer()) for _ in range(4)]
        await asyncio.sleep(1.0)
        services_script("stop-pg")
        await asyncio.sleep(2.0)
        services_script("start-pg")
        await asyncio.gather(*writers)
    await all_arrived(p, n, timeout=180)
    await assert_claimed_once(p, n + 1)


async def test_a_poison_message_goes_to_the_dlq_and_consumers_go_on(
    shop: Platform, infra: Infra
) -> None:
    p = shop
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka, acks="all")
    await producer.start()
    try:
        poison = [b'{"type": 42', b"\xff\xfe not json", b'{"type": "ingest.metrics_ingested"}']
        for value in poison:
            await producer.send_and_wait(p.prefix + "ingest.v1", value, key=jd.STORE_ID.encode())
    finally:
        await producer.stop()
    async with p.client("ingest") as c:
        await post_all(c, p, range(20))
    await all_arrived(p, 20)
    dead = await read_topic(
        infra,
        p.prefix + "ingest.v1.dlq",
        until=lambda recs: (
            sum(1 for r in recs if dict(r.headers).get("group") == CONTENT_GROUP.encode()) >= 3
        ),
    )
    mine = [r for r in dead if dict(r.headers).get("group") == CONTENT_GROUP.encode()]
    assert sorted(r.value for r in mine) == sorted(poison)
    assert all(dict(r.headers).get("error") for r in mine)
    await assert_claimed_once(p, 20 + 1)


async def test_the_same_events_replayed_change_nothing(shop: Platform, infra: Infra) -> None:
    p = shop
    n = 30
    async with p.client("ingest") as c:
        await post_all(c, p, range(n))
    await all_arrived(p, n)

    async def state() -> tuple[Any, ...]:
        return (
            await content_rows(p),
            await claims(p, "content", CONTENT_GROUP),
            await diagnosis_rows(p),
            await claims(p, "diagnosis", DIAGNOSIS_GROUP),
        )

    async def consumed() -> tuple[float, float]:
        return (
            await counter(p.url("content"), "storeops_events_consumed_total", group=CONTENT_GROUP),
            await counter(
                p.url("diagnosis"), "storeops_events_consumed_total", group=DIAGNOSIS_GROUP
            ),
        )

    before = await state()
    consumed0 = await consumed()
    records = await read_topic(infra, p.prefix + "ingest.v1", until=lambda rs: len(rs) >= n + 1)
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka, acks="all")
    await producer.start()
    try:
        for r in records:  # the very same bytes, keys and event ids, a second time
            await producer.send_and_wait(r.topic, r.value, key=r.key)
    finally:
        await producer.stop()

    async def replay_consumed() -> bool:
        now = await consumed()
        return all(b >= a + len(records) for a, b in zip(consumed0, now, strict=True))

    await wait_until(replay_consumed, 60, 0.3)
    assert await state() == before
