"""The Bus port and its two adapters: KafkaBus (aiokafka) and LocalBus (in-process, durable).

Delivery rules (DESIGN.md): consumers commit their position only after their handler's transaction;
a message that can never succeed (undecodable, invalid against its schema, a handler bug that keeps
failing) goes to "<topic>.dlq" with the error; a transient failure (database or broker down) is
retried forever and never dead-lettered.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

from shared.config import ServiceSettings
from shared.db import create_engine
from shared.events import Event, UndecodableEvent, decode, dlq_topic
from shared.observability import (
    CONSUMER_LAG,
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
    EVENTS_FAILED,
    EVENTS_PUBLISHED,
)

log = structlog.get_logger("bus")

Handler = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True)
class Message:
    topic: str
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_event(cls, event: Event) -> Message:
        return cls(
            topic=event.topic,
            key=event.key,
            value=event.to_bytes(),
            headers={"event_type": event.type, "event_id": str(event.event_id)},
        )


@dataclass
class Subscription:
    group: str
    topics: list[str]
    handler: Handler


class PermanentError(Exception):
    """Raised by a handler for a message that can never succeed: it goes to the DLQ at once."""


_TRANSIENT_NAMES = {
    "ConnectionDoesNotExistError",
    "CannotConnectNowError",
    "PostgresConnectionError",
    "ConnectionFailureError",
    "AdminShutdownError",
    "CrashShutdownError",
    "InterfaceError",
    "KafkaConnectionError",
    "KafkaTimeoutError",
}


def is_transient(exc: BaseException) -> bool:
    """Failures of the world (database or broker unreachable), not of the message.

    Walks the cause chain: SQLAlchemy wraps asyncpg's errors (e.g. "the database system is
    shutting down" arrives as a plain DBAPIError caused by CannotConnectNowError).
    """
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, OperationalError | InterfaceError | DisconnectionError):
            return True
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, ConnectionError | TimeoutError | OSError):
            return True
        if type(seen).__name__ in _TRANSIENT_NAMES:
            return True
        # SQLSTATE class 08 (connection exception) and 57P01-57P03 (server shutting down).
        state = str(getattr(seen, "sqlstate", "") or "")
        if state.startswith("08") or state in {"57P01", "57P02", "57P03"}:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def backoff(attempt: int, base: float, cap: float) -> float:
    return min(cap, base * 2 ** min(attempt, 16)) * (0.5 + random.random() / 2)


class Bus(abc.ABC):
    """The port: publish messages, subscribe handlers by consumer group, report health."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.service = settings.service_name
        self.subscriptions: list[Subscription] = []
        self._stopping = asyncio.Event()

    def subscribe(self, group: str, topics: Sequence[str], handler: Handler) -> None:
        """Register before start(). A group sees every message of its topics once (at least)."""
        self.subscriptions.append(Subscription(group, list(topics), handler))

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def publish(self, messages: Sequence[Message]) -> None:
        """Return only once every message is durably accepted; raise otherwise."""

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    async def ensure_topics(self, topics: Sequence[str]) -> None:  # noqa: B027
        """Create topics (and their DLQs) where the adapter needs them created."""

    async def deliver(self, sub: Subscription, topic: str, value: bytes, where: str) -> None:
        """Run one message through a handler under the delivery rules."""
        try:
            event = decode(value)
        except UndecodableEvent as exc:
            EVENTS_FAILED.labels(self.service, topic, sub.group, "undecodable").inc()
            await self.dead_letter(sub, topic, value, exc, where)
            return
        attempt = 0
        while True:
            try:
                await sub.handler(event)
            except asyncio.CancelledError:
                raise
            except PermanentError as exc:
                EVENTS_FAILED.labels(self.service, topic, sub.group, "permanent").inc()
                await self.dead_letter(sub, topic, value, exc, where)
                return
            except Exception as exc:
                if is_transient(exc):
                    EVENTS_FAILED.labels(self.service, topic, sub.group, "transient").inc()
                    delay = backoff(
                        min(attempt, 6),
                        self.settings.consumer_retry_base_seconds,
                        self.settings.consumer_retry_max_seconds,
                    )
                    log.warning(
                        "handler_transient_failure",
                        topic=topic,
                        group=sub.group,
                        event_type=event.type,
                        error=str(exc)[:300],
                        retry_in=delay,
                    )
                else:
                    attempt += 1
                    EVENTS_FAILED.labels(self.service, topic, sub.group, "error").inc()
                    log.error(
                        "handler_failed",
                        topic=topic,
                        group=sub.group,
                        event_type=event.type,
                        attempt=attempt,
                        error=repr(exc)[:500],
                    )
                    if attempt >= self.settings.consumer_max_attempts:
                        await self.dead_letter(sub, topic, value, exc, where)
                        return
                    delay = backoff(
                        attempt,
                        self.settings.consumer_retry_base_seconds,
                        self.settings.consumer_retry_max_seconds,
                    )
                if self._stopping.is_set():
                    # Not handled: the position is not committed, another run redelivers it.
                    raise asyncio.CancelledError from exc
                await asyncio.sleep(delay)
                continue
            EVENTS_CONSUMED.labels(self.service, topic, sub.group).inc()
            return

    async def dead_letter(
        self, sub: Subscription, topic: str, value: bytes, exc: BaseException, where: str
    ) -> None:
        headers = {
            "error": f"{type(exc).__name__}: {exc}"[:2000],
            "source_topic": topic,
            "group": sub.group,
            "source_position": where,
            "failed_at": datetime.now(UTC).isoformat(),
        }
        log.error("dead_lettered", topic=topic, group=sub.group, error=headers["error"][:300])
        while True:
            try:
                await self.publish([Message(dlq_topic(topic), "", value, headers)])
                break
            except Exception as pub_exc:  # the DLQ itself unreachable: transient, keep trying
                if self._stopping.is_set():
                    raise asyncio.CancelledError from pub_exc
                await asyncio.sleep(1)
        EVENTS_DEAD_LETTERED.labels(self.service, topic, sub.group).inc()


# --------------------------------------------------------------------------------------------
# LocalBus: the embedded adapter. A durable append-only log in one SQLite file with a cursor per
# consumer group and topic, so nothing published is lost in a crash and every group resumes
# where it stopped. SQLite serialises writers, so ids are assigned in commit order and a cursor
# never skips a row (the PostgreSQL outbox pitfall does not arise here).
# --------------------------------------------------------------------------------------------

_local_md = MetaData()
bus_log = Table(
    "bus_log",
    _local_md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", String(255), nullable=False, index=True),
    Column("key", String(255), nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("headers", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
)
bus_cursor = Table(
    "bus_cursor",
    _local_md,
    Column("grp", String(255), primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("position", Integer, nullable=False),
)


class LocalBus(Bus):
    def __init__(self, settings: ServiceSettings, path: Path | None = None) -> None:
        super().__init__(settings)
        self.path = path or settings.resolved_local_bus_path()
        self._engine = create_engine(f"sqlite+aiosqlite:///{self.path}")
        self._tasks: list[asyncio.Task[None]] = []
        self._new = asyncio.Condition()
        self._started = False

    async def start(self) -> None:
        async with self._engine.begin() as conn:
            await conn.run_sync(_local_md.create_all)
        self._stopping.clear()
        for sub in self.subscriptions:
            self._tasks.append(asyncio.create_task(self._consume(sub), name=f"local:{sub.group}"))
        self._started = True

    async def stop(self) -> None:
        self._stopping.set()
        async with self._new:
            self._new.notify_all()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._engine.dispose()
        self._started = False

    async def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        now = datetime.now(UTC).isoformat()
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(bus_log),
                [
                    {
                        "topic": m.topic,
                        "key": m.key,
                        "value": m.value,
                        "headers": json.dumps(m.headers),
                        "created_at": now,
                    }
                    for m in messages
                ],
            )
        for m in messages:
            EVENTS_PUBLISHED.labels(self.service, m.topic).inc()
        async with self._new:
            self._new.notify_all()

    async def ping(self) -> bool:
        try:
            async with self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def read(self, topic: str, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Messages of a topic, for tests and tools (e.g. looking into a DLQ)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(bus_log)
                .where(bus_log.c.topic == topic, bus_log.c.id > after)
                .order_by(bus_log.c.id)
                .limit(limit)
            )
            return [
                {"id": r.id, "key": r.key, "value": r.value, "headers": json.loads(r.headers)}
                for r in rows
            ]

    async def _positions(self, sub: Subscription) -> dict[str, int]:
        async with self._engine.begin() as conn:
            pos = {}
            for topic in sub.topics:
                value = await conn.scalar(
                    select(bus_cursor.c.position).where(
                        bus_cursor.c.grp == sub.group, bus_cursor.c.topic == topic
                    )
                )
                if value is None:
                    value = 0
                    await conn.execute(
                        insert(bus_cursor).values(grp=sub.group, topic=topic, position=0)
                    )
                pos[topic] = value
            return pos

    async def _commit(self, sub: Subscription, topic: str, position: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(bus_cursor)
                .where(bus_cursor.c.grp == sub.group, bus_cursor.c.topic == topic)
                .values(position=position)
            )

    async def _consume(self, sub: Subscription) -> None:
        positions: dict[str, int] | None = None
        while not self._stopping.is_set():
            try:
                if positions is None:
                    positions = await self._positions(sub)
                got = 0
                for topic in sub.topics:
                    batch = await self.read(topic, positions[topic], 200)
                    for row in batch:
                        await self.deliver(sub, topic, row["value"], f"local:{row['id']}")
                        positions[topic] = row["id"]
                        await self._commit(sub, topic, row["id"])
                    got += len(batch)
                if got:
                    continue
                async with self._new:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._new.wait(), timeout=1.0)
            except asyncio.CancelledError:
                return
            except Exception as exc:
                log.warning("local_consumer_error", group=sub.group, error=repr(exc)[:300])
                await asyncio.sleep(0.5)

    async def max_position(self) -> int:
        async with self._engine.connect() as conn:
            return int(await conn.scalar(select(func.coalesce(func.max(bus_log.c.id), 0))) or 0)


# --------------------------------------------------------------------------------------------
# KafkaBus: acks=all with the idempotent producer; consumers without auto-commit that commit a
# partition's offset only after its messages were handled.
# --------------------------------------------------------------------------------------------


class KafkaBus(Bus):
    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__(settings)
        self.bootstrap = settings.kafka_bootstrap_servers
        self._producer: Any = None
        self._producer_lock = asyncio.Lock()
        self._consumers: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._known_topics: set[str] = set()
        self.prefix = settings.kafka_topic_prefix

    def physical(self, topic: str) -> str:
        return self.prefix + topic

    def logical(self, topic: str) -> str:
        return topic[len(self.prefix) :] if topic.startswith(self.prefix) else topic

    async def _new_producer(self) -> Any:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=15_000,
            max_request_size=2 * 1024 * 1024,
            client_id=f"storeops-{self.service}",
        )
        await producer.start()
        return producer

    async def start(self) -> None:
        self._stopping.clear()
        topics = {t for s in self.subscriptions for t in s.topics}
        await self.ensure_topics(sorted(topics))
        async with self._producer_lock:
            self._producer = await self._new_producer()
        for sub in self.subscriptions:
            self._tasks.append(asyncio.create_task(self._consume(sub), name=f"kafka:{sub.group}"))

    async def stop(self) -> None:
        self._stopping.set()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._producer is not None:
            try:
                await self._producer.stop()
            except Exception as exc:
                log.warning("producer_stop_failed", error=repr(exc)[:200])
            self._producer = None

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        wanted = set()
        for t in topics:
            wanted.add(t)
            if not t.endswith(".dlq"):
                wanted.add(dlq_topic(t))
        wanted = {self.physical(t) for t in wanted} - self._known_topics
        if not wanted:
            return
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, client_id=f"storeops-{self.service}-admin"
        )
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = sorted(wanted - existing)
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [
                            NewTopic(
                                name=t,
                                num_partitions=self.settings.kafka_topic_partitions,
                                replication_factor=self.settings.kafka_replication_factor,
                            )
                            for t in missing
                        ]
                    )
                log.info("topics_created", topics=missing)
            self._known_topics |= wanted
        finally:
            await admin.close()

    async def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        await self.ensure_topics(sorted({m.topic for m in messages}))
        async with self._producer_lock:
            if self._producer is None:
                self._producer = await self._new_producer()
            producer = self._producer
            try:
                futures = [
                    await producer.send(
                        self.physical(m.topic),
                        value=m.value,
                        key=m.key.encode(),
                        headers=[(k, v.encode()) for k, v in m.headers.items()],
                    )
                    for m in messages
                ]
                await asyncio.gather(*futures)
            except Exception:
                # A producer that failed mid-batch may hold a broken sequence state: start anew.
                self._producer = None
                try:
                    await producer.stop()
                except Exception as exc:
                    log.warning("producer_stop_failed", error=repr(exc)[:200])
                raise
        for m in messages:
            EVENTS_PUBLISHED.labels(self.service, m.topic).inc()

    async def ping(self) -> bool:
        producer = self._producer
        if producer is None:
            return False
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout=3)
            return True
        except Exception:
            return False

    async def _consume(self, sub: Subscription) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.errors import CommitFailedError, KafkaError

        consumer = AIOKafkaConsumer(
            *[self.physical(t) for t in sub.topics],
            bootstrap_servers=self.bootstrap,
            group_id=self.prefix + sub.group,
            client_id=f"storeops-{self.service}-{sub.group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_heartbeat_interval_ms,
            max_poll_interval_ms=600_000,
        )
        while not self._stopping.is_set():
            try:
                await consumer.start()
                break
            except KafkaError as exc:
                log.warning("consumer_start_failed", group=sub.group, error=repr(exc)[:200])
                await asyncio.sleep(1)
        # Next offset to handle per owned partition, for storeops_consumer_lag.
        next_offset: dict[Any, int] = {}
        lag = _LagReporter(self.service, sub.group, self.logical)
        try:
            while not self._stopping.is_set():
                try:
                    batches = await consumer.getmany(timeout_ms=500, max_records=500)
                except KafkaError as exc:
                    log.warning("consumer_fetch_failed", group=sub.group, error=repr(exc)[:200])
                    await asyncio.sleep(1)
                    continue
                for tp, records in batches.items():
                    if records:
                        next_offset[tp] = records[0].offset
                await lag.report(consumer, next_offset)
                for tp, records in batches.items():
                    for record in records:
                        await self.deliver(
                            sub,
                            self.logical(tp.topic),
                            record.value or b"",
                            f"{tp.topic}/{tp.partition}@{record.offset}",
                        )
                    if records:
                        try:
                            await consumer.commit(
                                {TopicPartition(tp.topic, tp.partition): records[-1].offset + 1}
                            )
                        except (CommitFailedError, KafkaError) as exc:
                            # Rebalanced away or broker gone: the new owner redelivers;
                            # handlers are idempotent.
                            log.warning("commit_failed", group=sub.group, error=repr(exc)[:200])
                        next_offset[tp] = records[-1].offset + 1
                        lag.set(tp, consumer, next_offset[tp])
        except asyncio.CancelledError:
            pass
        finally:
            lag.clear()
            try:
                await consumer.stop()
            except Exception as exc:
                log.warning("consumer_stop_failed", error=repr(exc)[:200])


class _LagReporter:
    """storeops_consumer_lag of one consumer: for each partition it owns, the partition's end
    (its highwater, as of the last fetch) minus the next offset to handle. Partitions given
    away in a rebalance are dropped, so that summing over pods counts each partition once."""

    def __init__(self, service: str, group: str, logical: Callable[[str], str]) -> None:
        self.service = service
        self.group = group
        self.logical = logical
        self.labelled: set[Any] = set()

    def set(self, tp: Any, consumer: Any, position: int) -> None:
        try:
            end = consumer.highwater(tp)
        except AssertionError:  # no longer assigned
            return
        if end is None:
            return
        labels = (self.service, self.group, self.logical(tp.topic), str(tp.partition))
        CONSUMER_LAG.labels(*labels).set(max(0, end - position))
        self.labelled.add(tp)

    async def report(self, consumer: Any, next_offset: dict[Any, int]) -> None:
        from aiokafka.errors import KafkaError

        assigned = consumer.assignment()
        for tp in list(next_offset):
            if tp not in assigned:
                del next_offset[tp]
        for tp in self.labelled - assigned:
            self._remove(tp)
        for tp in assigned:
            position = next_offset.get(tp)
            if position is None:
                try:
                    if consumer.highwater(tp) is None:
                        continue  # nothing fetched yet: no end known
                    position = int(await asyncio.wait_for(consumer.position(tp), timeout=1))
                except (AssertionError, TimeoutError, KafkaError):  # reassigned meanwhile
                    continue
            if position is not None:
                self.set(tp, consumer, position)

    def _remove(self, tp: Any) -> None:
        with contextlib.suppress(KeyError):
            CONSUMER_LAG.remove(self.service, self.group, self.logical(tp.topic), str(tp.partition))
        self.labelled.discard(tp)

    def clear(self) -> None:
        for tp in list(self.labelled):
            self._remove(tp)


def make_bus(settings: ServiceSettings) -> Bus:
    return KafkaBus(settings) if settings.kafka_bootstrap_servers else LocalBus(settings)
