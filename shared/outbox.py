"""The transactional outbox: stage(session, event) in the same transaction as the change, and a
relay that publishes staged rows to the bus with retry, forever.

The relay polls rows that are not yet published instead of remembering "the last id": on
PostgreSQL ids are allocated before commit, so a later-committed row can carry a smaller id.
One relay per database runs at a time, under an advisory lock on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Text,
    func,
    select,
    text,
)
from sqlalchemy import update as sa_update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from shared.bus import Bus, Message, backoff
from shared.db import Database, UTCDateTime
from shared.events import Event
from shared.observability import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISH_ERRORS

log = structlog.get_logger("outbox")

RELAY_LOCK_KEY = 0x5701_0B0C  # advisory lock id: one relay per database
MAX_BATCH_BYTES = 8 * 1024 * 1024
# Encoded events handed over by committed units of work, kept until published; above this the
# relay stops accepting more and reads them back from the table instead.
MAX_OFFERED_BYTES = 64 * 1024 * 1024
STAGED = "storeops.outbox.staged"


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    event_id: str = Field(sa_column=Column(String(36), nullable=False, unique=True))
    event_type: str = Field(sa_column=Column(String(128), nullable=False))
    topic: str = Field(sa_column=Column(String(255), nullable=False))
    key: str = Field(sa_column=Column(String(255), nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    published_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))


def _row(event: Event, payload: str | None = None) -> dict[str, Any]:
    return {
        "event_id": str(event.event_id),
        "event_type": event.type,
        "topic": event.topic,
        "key": event.key,
        # warnings=False: bulk producers may assemble an event from rows they validated
        # themselves (model_construct); the contract tests decode what they stage.
        "payload": payload if payload is not None else event.model_dump_json(warnings=False),
        "created_at": datetime.now(UTC),
        "attempts": 0,
    }


async def stage(session: AsyncSession, *events: Event) -> None:
    """Write events in the caller's transaction; they leave only if it commits."""
    await stage_many(session, events)


async def stage_many(
    session: AsyncSession,
    events: Iterable[Event],
    payloads: Sequence[str | None] | None = None,
) -> None:
    """Stage events; `payloads[i]`, when given, is event i's JSON already encoded by the
    producer (a bulk producer that serialized the rows once), else the event is serialized
    here."""
    events = list(events)
    given = payloads if payloads is not None else [None] * len(events)
    rows = [_row(e, p) for e, p in zip(events, given, strict=True)]
    if not rows:
        return
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    ids = (
        await session.execute(
            table.insert().returning(table.c.id, sort_by_parameter_order=True), rows
        )
    ).scalars()
    # The encoded events stay on the session: a unit of work that commits hands them to the
    # relay (OutboxRelay.offer), which then need not read them back. Anything else (rolled
    # back, never offered) is found by the relay's poll as before.
    staged = session.info.setdefault(STAGED, [])
    staged.extend(
        (row_id, Message(r["topic"], r["key"], r["payload"].encode(), _headers(r)))
        for row_id, r in zip(ids, rows, strict=True)
    )


def take_staged(session: AsyncSession) -> list[tuple[int, Message]]:
    """The events staged in this session so far, forgotten by it (see stage_many)."""
    staged: list[tuple[int, Message]] = session.info.pop(STAGED, [])
    return staged


def _headers(r: Any) -> dict[str, str]:
    return {"event_type": r["event_type"], "event_id": r["event_id"]}


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        bus: Bus,
        *,
        service: str,
        batch_size: int = 500,
        poll_seconds: float = 0.5,
    ) -> None:
        self.db = db
        self.bus = bus
        self.service = service
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.failures = 0
        self._gauges_at = 0.0
        self._offered: dict[int, Message] = {}
        self._offered_bytes = 0
        self._drained = False  # the last fetch saw every unpublished row

    def wake(self) -> None:
        self._wake.set()

    def offer(self, staged: Iterable[tuple[int, Message]]) -> None:
        """Committed rows' encoded events (from take_staged, after the commit), so that
        publishing them costs no read of their payloads; then wake. Only a cache: the rows
        are still selected, ordered, locked and marked in the table exactly as polled ones,
        an entry is used only if its event id matches the row's, and whatever is not offered
        (or no longer fits) is read back from the table."""
        for row_id, message in staged:
            if self._offered_bytes + len(message.value) > MAX_OFFERED_BYTES:
                break
            self._offered[row_id] = message
            self._offered_bytes += len(message.value)
        self._wake.set()

    def _forget(self, row_id: int) -> None:
        message = self._offered.pop(row_id, None)
        if message is not None:
            self._offered_bytes -= len(message.value)

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay:{self.service}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                sent = await self.publish_once()
                attempt = 0
                if sent >= self.batch_size:
                    continue
            except asyncio.CancelledError:
                return
            except Exception as exc:
                # Broker or database unreachable: keep the rows, retry forever with backoff.
                attempt += 1
                self.failures += 1
                OUTBOX_PUBLISH_ERRORS.labels(self.service).inc()
                delay = backoff(attempt, 0.2, 5.0)
                log.warning("outbox_publish_failed", error=repr(exc)[:300], retry_in=delay)
                await asyncio.sleep(delay)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            self._wake.clear()

    async def publish_once(self) -> int:
        """Publish one batch of unpublished rows; returns how many were published."""
        table = OutboxMessage.__table__  # type: ignore[attr-defined]
        if self.db.sqlite:
            # Read outside a write transaction so that writers are not blocked while publishing.
            async with self.db.session(readonly=True) as s:
                messages = await self._fetch(s)
            if messages:
                await self.bus.publish([m for _, m in messages])
                async with self.db.session() as s:
                    await s.execute(
                        sa_update(table)
                        .where(table.c.id.in_([i for i, _ in messages]))
                        .values(published_at=datetime.now(UTC))
                    )
                    await s.commit()
        else:
            async with self.db.session() as s:
                locked = await s.scalar(select(func.pg_try_advisory_xact_lock(RELAY_LOCK_KEY)))
                if not locked:
                    return 0
                messages = await self._fetch(s)
                if messages:
                    await self.bus.publish([m for _, m in messages])
                    await s.execute(
                        sa_update(table)
                        .where(table.c.id.in_([i for i, _ in messages]))
                        .values(published_at=datetime.now(UTC))
                    )
                await s.commit()
        for row_id, _ in messages:
            self._forget(row_id)
        if self._drained:
            # This round saw every unpublished row and published them all: nothing to count.
            OUTBOX_BACKLOG.labels(self.service).set(0)
            OUTBOX_OLDEST_AGE.labels(self.service).set(0)
        else:
            now = asyncio.get_running_loop().time()
            if now - self._gauges_at >= 1.0:  # two count queries: at most once a second
                self._gauges_at = now
                await self.refresh_gauges()
        return len(messages)

    async def _fetch(self, s: AsyncSession) -> list[tuple[int, Message]]:
        """The next unpublished rows in id order, at most batch_size of them and about
        MAX_BATCH_BYTES of payload, so that a backlog of large events never loads at once.
        Payloads already offered in memory are not read back."""
        table = OutboxMessage.__table__  # type: ignore[attr-defined]
        known = set(self._offered)  # offered before this read: committed before it
        head = (
            await s.execute(
                select(table.c.id, func.length(table.c.payload), table.c.event_id)
                .where(table.c.published_at.is_(None))
                .order_by(table.c.id)
                .limit(self.batch_size)
            )
        ).all()
        self._drained = False
        if len(head) < self.batch_size:
            # Every unpublished row was seen: an offered id not among them was published
            # (or its transaction did not commit after all): drop it.
            unpublished = {row_id for row_id, _, _ in head}
            for row_id in known - unpublished:
                self._forget(row_id)
        ids: list[int] = []
        cached: dict[int, Message] = {}
        total = 0
        for row_id, size, event_id in head:
            if ids and total + (size or 0) > MAX_BATCH_BYTES:
                break
            ids.append(row_id)
            total += size or 0
            message = self._offered.get(row_id)
            if message is not None and message.headers.get("event_id") == event_id:
                cached[row_id] = message
        self._drained = len(head) < self.batch_size and len(ids) == len(head)
        if not ids:
            return []
        missing = [i for i in ids if i not in cached]
        if missing:
            q = (
                select(
                    table.c.id,
                    table.c.topic,
                    table.c.key,
                    table.c.payload,
                    table.c.event_type,
                    table.c.event_id,
                )
                .where(table.c.id.in_(missing))
                .order_by(table.c.id)
            )
            for r in (await s.execute(q)).all():
                cached[r.id] = self._message(r)
        return [(i, cached[i]) for i in ids]

    @staticmethod
    def _message(r: object) -> Message:
        return Message(
            topic=r.topic,  # type: ignore[attr-defined]
            key=r.key,  # type: ignore[attr-defined]
            value=r.payload.encode(),  # type: ignore[attr-defined]
            headers={"event_type": r.event_type, "event_id": r.event_id},  # type: ignore[attr-defined]
        )

    async def backlog(self) -> int:
        table = OutboxMessage.__table__  # type: ignore[attr-defined]
        async with self.db.session(readonly=True) as s:
            return int(
                await s.scalar(
                    select(func.count()).select_from(table).where(table.c.published_at.is_(None))
                )
                or 0
            )

    async def refresh_gauges(self) -> None:
        table = OutboxMessage.__table__  # type: ignore[attr-defined]
        async with self.db.session(readonly=True) as s:
            row = (
                await s.execute(
                    select(func.count(), func.min(table.c.created_at)).where(
                        table.c.published_at.is_(None)
                    )
                )
            ).one()
        OUTBOX_BACKLOG.labels(self.service).set(row[0] or 0)
        oldest = row[1]
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        OUTBOX_OLDEST_AGE.labels(self.service).set(
            (datetime.now(UTC) - oldest).total_seconds() if oldest else 0
        )


class ProcessedEvent(SQLModel, table=True):
    """Consumer-side deduplication: one row per (consumer group, event id) handled."""

    __tablename__ = "processed_events"

    consumer_group: str = Field(sa_column=Column(String(128), primary_key=True))
    event_id: str = Field(sa_column=Column(String(36), primary_key=True))
    processed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


async def claim_event(session: AsyncSession, group: str, event: Event) -> bool:
    """True if this group has not handled the event yet; the claim commits with the handler's
    transaction, so a crash before commit leaves the event to be handled again."""
    table = ProcessedEvent.__table__  # type: ignore[attr-defined]
    exists = await session.scalar(
        select(table.c.event_id).where(
            table.c.consumer_group == group, table.c.event_id == str(event.event_id)
        )
    )
    if exists is not None:
        return False
    await session.execute(
        table.insert().values(
            consumer_group=group, event_id=str(event.event_id), processed_at=datetime.now(UTC)
        )
    )
    return True
