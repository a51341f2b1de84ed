"""One contract suite for both Bus adapters: LocalBus (embedded) and KafkaBus (the real broker).

The delivery rules under test (DESIGN.md): every message reaches each consumer group; a store's
messages stay in order; a message that can never succeed goes to "<topic>.dlq" with the error and
the consumer goes on; a transient failure is retried, never dead-lettered; a restarted consumer
resumes after what it committed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from shared.bus import Bus, KafkaBus, LocalBus, Message, PermanentError
from shared.config import ServiceSettings
from shared.events import Event, dlq_topic
from shared.events.ingest import StoreRegisteredV1

TOPIC = "ingest.v1"


def settings(tmp_path: Path, kafka: str = "", prefix: str = "") -> ServiceSettings:
    return ServiceSettings(
        service_name="bus-test",
        var_dir=tmp_path,
        kafka_bootstrap_servers=kafka,
        kafka_topic_prefix=prefix,
        consumer_retry_base_seconds=0.01,
        consumer_retry_max_seconds=0.05,
        consumer_max_attempts=3,
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=500,
    )


@pytest.fixture(params=["local", "kafka"])
def make_bus(request: Any, tmp_path: Path) -> Callable[[], Bus]:
    if request.param == "local":
        return lambda: LocalBus(settings(tmp_path))
    infra = request.getfixturevalue("infra")
    prefix = f"t{uuid.uuid4().hex[:8]}."
    return lambda: KafkaBus(settings(tmp_path, infra.kafka, prefix))


def sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, {"service": "bus-test", **labels}) or 0.0


def store_event(i: int, store: str = "s1") -> StoreRegisteredV1:
    return StoreRegisteredV1(
        tenant_id="t",
        store_id=store,
        name=f"n{i}",
        platform="shopify",
        timezone="UTC",
        currency="USD",
        market="US",
        category="c",
    )


async def wait_for(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def dlq_messages(
    bus: Bus, topic: str, expect: int, timeout: float = 30.0
) -> list[dict[str, Any]]:
    if isinstance(bus, LocalBus):
        out: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            out = await bus.read(dlq_topic(topic))
            if len(out) >= expect or asyncio.get_running_loop().time() > deadline:
                return out
            await asyncio.sleep(0.05)
    assert isinstance(bus, KafkaBus)
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bus.physical(dlq_topic(topic)),
        bootstrap_servers=bus.bootstrap,
        group_id=f"reader-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    got: list[dict[str, Any]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < expect and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    got.append({"value": r.value, "headers": {k: v.decode() for k, v in r.headers}})
    finally:
        await consumer.stop()
    return got


@pytest.fixture
async def running() -> AsyncIterator[list[Bus]]:
    buses: list[Bus] = []
    yield buses
    for b in buses:
        await b.stop()


async def test_every_message_reaches_each_group_in_order(make_bus: Any, running: list[Bus]) -> None:
    seen: dict[str, list[str]] = {"a": [], "b": []}

    def collector(group: str) -> Any:
        async def handle(e: Event) -> None:
            seen[group].append(e.name)  # type: ignore[attr-defined]

        return handle

    bus = make_bus()
    bus.subscribe("a", [TOPIC], collector("a"))
    bus.subscribe("b", [TOPIC], collector("b"))
    await bus.ensure_topics([TOPIC])
    await bus.start()
    running.append(bus)
    await bus.publish([Message.from_event(store_event(i)) for i in range(20)])
    await wait_for(lambda: len(seen["a"]) == 20 and len(seen["b"]) == 20)
    assert seen["a"] == [f"n{i}" for i in range(20)]
    assert seen["b"] == seen["a"]
    assert await bus.ping()


async def test_poison_goes_to_dlq_and_consumer_goes_on(make_bus: Any, running: list[Bus]) -> None:
    handled: list[str] = []

    async def handle(e: Event) -> None:
        if e.name == "n1":  # type: ignore[attr-defined]
            raise PermanentError("cannot apply n1")
        handled.append(e.name)  # type: ignore[attr-defined]

    dead_before = sample("storeops_events_dead_lettered_total", topic=TOPIC, group="g")
    consumed_before = sample("storeops_events_consumed_total", topic=TOPIC, group="g")
    bus = make_bus()
    bus.subscribe("g", [TOPIC], handle)
    await bus.ensure_topics([TOPIC])
    await bus.start()
    running.append(bus)
    await bus.publish(
        [
            Message.from_event(store_event(0)),
            Message(TOPIC, "s1", b"\x00not json at all"),
            Message.from_event(store_event(1)),
            Message(
                TOPIC,
                "s1",
                json.dumps(
                    {"type": "ingest.store_registered", "version": 1, "tenant_id": "t"}
                ).encode(),
            ),
            Message.from_event(store_event(2)),
        ]
    )
    await wait_for(lambda: handled == ["n0", "n2"])
    dead = await dlq_messages(bus, TOPIC, 3)
    assert len(dead) == 3
    errors = [d["headers"]["error"] for d in dead]
    assert "UndecodableEvent" in errors[0] and "not JSON" in errors[0]
    assert "PermanentError" in errors[1] and "cannot apply n1" in errors[1]
    assert "UndecodableEvent" in errors[2]
    assert {d["headers"]["source_topic"] for d in dead} == {TOPIC}
    assert dead[0]["value"] == b"\x00not json at all"
    assert sample("storeops_events_dead_lettered_total", topic=TOPIC, group="g") == dead_before + 3
    assert sample("storeops_events_consumed_total", topic=TOPIC, group="g") == consumed_before + 2
    assert sample("storeops_events_failed_total", topic=TOPIC, group="g", kind="undecodable") >= 2


async def test_transient_failures_are_retried_not_dead_lettered(
    make_bus: Any, running: list[Bus]
) -> None:
    attempts: list[int] = []
    handled: list[str] = []

    async def handle(e: Event) -> None:
        attempts.append(1)
        if len(attempts) <= 6:  # more than consumer_max_attempts: transient has no cap
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("db down"))
        handled.append(e.name)  # type: ignore[attr-defined]

    bus = make_bus()
    bus.subscribe("g", [TOPIC], handle)
    await bus.ensure_topics([TOPIC])
    await bus.start()
    running.append(bus)
    await bus.publish([Message.from_event(store_event(0))])
    await wait_for(lambda: handled == ["n0"])
    assert len(attempts) == 7
    assert await dlq_messages(bus, TOPIC, 1, timeout=2) == []


async def test_a_bug_is_retried_then_dead_lettered(make_bus: Any, running: list[Bus]) -> None:
    attempts: list[str] = []
    handled: list[str] = []

    async def handle(e: Event) -> None:
        name = e.name  # type: ignore[attr-defined]
        if name == "n0":
            attempts.append(name)
            raise ZeroDivisionError("a bug")
        handled.append(name)

    bus = make_bus()
    bus.subscribe("g", [TOPIC], handle)
    await bus.ensure_topics([TOPIC])
    await bus.start()
    running.append(bus)
    await bus.publish([Message.from_event(store_event(0)), Message.from_event(store_event(1))])
    await wait_for(lambda: handled == ["n1"])
    assert len(attempts) == 3
    dead = await dlq_messages(bus, TOPIC, 1)
    assert "ZeroDivisionError" in dead[0]["headers"]["error"]


async def test_restarted_consumer_resumes_after_its_commits(
    make_bus: Any, running: list[Bus]
) -> None:
    first: list[str] = []
    second: list[str] = []

    async def h1(e: Event) -> None:
        first.append(e.name)  # type: ignore[attr-defined]

    async def h2(e: Event) -> None:
        second.append(e.name)  # type: ignore[attr-defined]

    bus = make_bus()
    bus.subscribe("g", [TOPIC], h1)
    await bus.ensure_topics([TOPIC])
    await bus.start()
    await bus.publish([Message.from_event(store_event(i)) for i in range(5)])
    await wait_for(lambda: len(first) == 5)
    await bus.stop()

    bus2 = make_bus()
    bus2.subscribe("g", [TOPIC], h2)
    await bus2.start()
    running.append(bus2)
    await bus2.publish([Message.from_event(store_event(i)) for i in range(5, 8)])
    await wait_for(lambda: len(second) >= 3)
    await asyncio.sleep(0.5)
    assert second == ["n5", "n6", "n7"]
