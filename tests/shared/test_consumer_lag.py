"""storeops_consumer_lag on the real broker: what a consumer group has not handled yet, per
partition it owns; the consumer-lag alert and the dashboards read it (deploy/k8s/monitoring)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from shared.bus import KafkaBus, Message
from shared.config import ServiceSettings
from shared.events import Event
from shared.events.ingest import StoreRegisteredV1

TOPIC = "ingest.v1"


def lag(group: str) -> float | None:
    return REGISTRY.get_sample_value(
        "storeops_consumer_lag",
        {"service": "lag-test", "group": group, "topic": TOPIC, "partition": "0"},
    )


async def wait_for(cond: Any, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def event(i: int) -> StoreRegisteredV1:
    return StoreRegisteredV1(
        tenant_id="t",
        store_id="s1",
        name=f"n{i}",
        platform="shopify",
        timezone="UTC",
        currency="USD",
        market="US",
        category="c",
    )


async def test_lag_is_what_the_group_has_not_handled_and_goes_when_it_stops(
    infra: Any, tmp_path: Path
) -> None:
    settings = ServiceSettings(
        service_name="lag-test",
        var_dir=tmp_path,
        kafka_bootstrap_servers=infra.kafka,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        kafka_topic_partitions=1,
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=500,
    )
    producer = KafkaBus(settings)
    await producer.start()
    consumer = KafkaBus(settings)
    gate = asyncio.Event()
    seen: list[Event] = []

    async def handle(e: Event) -> None:
        seen.append(e)
        await gate.wait()

    consumer.subscribe("lagging", [TOPIC], handle)
    try:
        await producer.publish([Message.from_event(event(i)) for i in range(5)])
        await consumer.start()
        await wait_for(lambda: len(seen) == 1)
        # Held at the first of five: all five are still to be handled.
        assert lag("lagging") == 5
        gate.set()
        await wait_for(lambda: len(seen) == 5 and lag("lagging") == 0)
        await producer.publish([Message.from_event(event(i)) for i in range(5, 8)])
        await wait_for(lambda: len(seen) == 8)
        await wait_for(lambda: lag("lagging") == 0)
    finally:
        await consumer.stop()
        await producer.stop()
    # A stopped consumer owns no partition: its series is gone, not frozen at a stale value.
    assert lag("lagging") is None
