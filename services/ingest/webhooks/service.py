"""Use cases of the webhooks: receive (verify, deduplicate, store minimized) and process
(facts, then the daily rows through ingest's own writer)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest import service as ingest_service
from services.ingest.schemas import MetricRowIn
from services.ingest.webhooks import platforms as p
from services.ingest.webhooks import repository as repo
from services.ingest.webhooks.inbox import Inbox
from shared.auth import Principal
from shared.db import Database
from shared.errors import DomainError, MalformedJson, NotFound, Unavailable, ValidationFailed
from shared.jsonguard import JsonRefused, check_json

log = structlog.get_logger("webhooks")

ENDPOINT_PLATFORMS = {
    p.SHOPIFY: frozenset({p.SHOPIFY}),
    p.WOOCOMMERCE: frozenset({p.WOOCOMMERCE}),
    p.GENERIC: p.GENERIC_PLATFORMS,
}


class SignatureInvalid(DomainError):
    """Webhooks are authenticated by their signature alone (no API key), hence no
    WWW-Authenticate: Bearer here."""

    status, code, title = 401, "invalid-signature", "The webhook signature is not valid"


@dataclass(frozen=True)
class Received:
    status: str  # accepted | duplicate | ping | ignored
    delivery_id: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _body_id(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


class Runtime:
    """Per-app state of the webhooks: the store directory cache, the group-commit writer, the
    embedded mode's inbox, the processor's wake-up, and one in-process write lock so that the
    processor's writes to a SQLite ingest.db take turns instead of colliding on SQLite's busy
    handler (which sleeps in coarse steps)."""

    def __init__(
        self,
        db: Any,
        *,
        store_ttl_seconds: float = 2.0,
        max_batch: int = 500,
        inbox: Inbox | None = None,
    ) -> None:
        self.db = db
        # Embedded mode (a SQLite file): deliveries go to the inbox file, never queued behind
        # ingest.db's other writers; on PostgreSQL straight into webhook_deliveries.
        self.inbox: Inbox | None = inbox or (Inbox.for_database(db.url) if db.sqlite else None)
        self.write_lock = asyncio.Lock()
        self.wake = asyncio.Event()
        # Thread-safe callbacks run on every wake-up (the processor's thread, when it runs one).
        self.on_wake: list[Callable[[], None]] = []
        self.store_ttl = store_ttl_seconds
        self.max_batch = max_batch
        self._stores: dict[tuple[str, str], tuple[float, list[Any]]] = {}
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[bool]]] = asyncio.Queue()
        self.writer_running = False

    async def stores(self, store_id: str, endpoint: str) -> list[Any]:
        """Stores by id for an endpoint, cached briefly: a delivery must not cost a query for
        a registry that changes rarely. Misses are not cached, so a new store works at once;
        a rotated secret is picked up within the TTL (platforms retry a refused delivery)."""
        key = (store_id, endpoint)
        hit = self._stores.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.store_ttl:
            return hit[1]
        async with self.db.session(readonly=True) as s:
            rows = [
                r
                for r in await repo.stores_by_id(s, store_id, ENDPOINT_PLATFORMS[endpoint])
                if r.webhook_secret
            ]
        if rows:
            if len(self._stores) > 10_000:
                self._stores.clear()
            self._stores[key] = (now, rows)
        return rows

    async def store_delivery(self, values: dict[str, Any]) -> bool:
        """Write one delivery; True if new. Through the writer when it runs (group commit: the
        deliveries that arrive while a batch commits share the next transaction)."""
        if not self.writer_running:
            (inserted,) = await self._insert([values])
            return inserted
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((values, fut))
        return await fut

    async def run_writer(self) -> None:
        self.writer_running = True
        try:
            while True:
                batch = [await self._queue.get()]
                while not self._queue.empty() and len(batch) < self.max_batch:
                    batch.append(self._queue.get_nowait())
                try:
                    results = await self._insert([v for v, _ in batch])
                except Exception as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), inserted in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(inserted)
                self.notify()
        finally:
            self.writer_running = False
            while not self._queue.empty():
                _, fut = self._queue.get_nowait()
                if not fut.done():
                    fut.set_exception(Unavailable("The webhook writer stopped; retry"))

    def notify(self) -> None:
        """Wake the processor (deliveries are waiting)."""
        self.wake.set()
        for callback in self.on_wake:
            callback()

    async def _insert(self, rows: list[dict[str, Any]]) -> list[bool]:
        if self.inbox is not None:
            return await self.inbox.insert(rows)
        async with self.write_lock, self.db.session() as s:
            results = await repo.insert_deliveries(s, rows)
            await s.commit()
        return results

    async def move_inbox(self, limit: int) -> int:
        """Move the oldest inbox deliveries into webhook_deliveries (insert-or-ignore on the
        identity, so a move redone after a crash writes nothing twice), then drop them from the
        inbox; returns how many were moved."""
        if self.inbox is None:
            return 0
        rows = await self.inbox.take(limit)
        if not rows:
            return 0
        async with self.write_lock, self.db.session() as s:
            await repo.insert_deliveries(
                s,
                [{k: v for k, v in r.items() if k != "id"} | _UNPROCESSED for r in rows],
            )
            await s.commit()
        await self.inbox.remove([r["id"] for r in rows])
        return len(rows)

    async def backlog(self) -> int:
        """Deliveries received but not yet moved into webhook_deliveries (0 on PostgreSQL)."""
        return 0 if self.inbox is None else await self.inbox.count()

    async def close(self) -> None:
        if self.inbox is not None:
            await self.inbox.close()


_UNPROCESSED = {"error": None, "attempts": 0, "processed_at": None}


def runtime(state: Any) -> Runtime:
    rt = getattr(state, "webhooks", None)
    if rt is None:
        rt = Runtime(state.db)
        state.webhooks = rt
    return rt


async def receive(
    rt: Runtime,
    endpoint: str,
    store_id: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_seconds: int,
) -> Received:
    """Authenticate a delivery by its signature, then store it minimized and committed before
    answering; nothing is written for an unknown store or a bad signature."""
    if endpoint not in ENDPOINT_PLATFORMS:
        raise NotFound(f"No webhook endpoint for {endpoint!r}")
    candidates = await rt.stores(store_id, endpoint)
    if not candidates:
        raise NotFound(f"No {endpoint} store {store_id!r} takes webhooks")

    if endpoint == p.WOOCOMMERCE and p.is_woocommerce_ping(body, headers.get("content-type")):
        # The set-up ping is unsigned; answering it 2xx lets the operator save the webhook.
        return Received("ping")

    store = None
    for c in candidates:
        # Every candidate is checked: the signature, not the order of rows, picks the tenant.
        if _verified(endpoint, c.webhook_secret, headers, body, now, tolerance_seconds):
            store = store or c
    if store is None:
        raise SignatureInvalid("The signature does not match this store's secret")

    if endpoint == p.SHOPIFY:
        delivery_id = (
            _header(headers, "x-shopify-event-id")
            or _header(headers, "x-shopify-webhook-id")
            or _body_id(body)
        )
        topic = _header(headers, "x-shopify-topic") or ""
    elif endpoint == p.WOOCOMMERCE:
        delivery_id = _header(headers, "x-wc-webhook-delivery-id") or _body_id(body)
        topic = _header(headers, "x-wc-webhook-topic") or ""
    else:
        delivery_id = _header(headers, "webhook-id") or _body_id(body)
        topic = ""
    try:
        # Before the (recursive) parser: a signed body nested 100,000 deep is a problem, not a 500.
        check_json(body)
    except JsonRefused as exc:
        async with rt.write_lock, rt.db.session() as s:
            await ingest_service.record_delivery(
                s, store.tenant_id, store.id, f"webhook:{endpoint}", "rejected", exc.message
            )
            await s.commit()
        raise ValidationFailed([{"loc": ["body", *exc.loc], "msg": exc.message}]) from None
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        async with rt.write_lock, rt.db.session() as s:
            await ingest_service.record_delivery(
                s,
                store.tenant_id,
                store.id,
                f"webhook:{endpoint}",
                "rejected",
                "the body is not valid JSON",
            )
            await s.commit()
        raise MalformedJson("The body is not valid JSON") from None
    if endpoint == p.GENERIC:
        topic = p.generic_topic(doc)
    minimized = p.minimize(endpoint, topic, doc, store.webhook_secret)
    ignored = minimized.get("kind") == "ignored"
    inserted = await rt.store_delivery(
        {
            "tenant_id": store.tenant_id,
            "store_id": store.id,
            "platform": endpoint,
            "delivery_id": delivery_id[:255],
            "topic": topic[:100],
            "status": "ignored" if ignored else "pending",
            "payload": "{}" if ignored else p.dumps(minimized),
            "error": None,
            "attempts": 0,
            "received_at": _now(),
            "processed_at": None,
        }
    )
    if not inserted:
        return Received("duplicate", delivery_id)
    if not ignored:
        rt.notify()
    return Received("ignored" if ignored else "accepted", delivery_id)


def _verified(
    endpoint: str,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_seconds: int,
) -> bool:
    if endpoint == p.SHOPIFY:
        return p.verify_base64_hmac(secret, body, headers.get("x-shopify-hmac-sha256"))
    if endpoint == p.WOOCOMMERCE:
        return p.verify_base64_hmac(secret, body, headers.get("x-wc-webhook-signature"))
    try:
        p.verify_standard_webhooks(
            secret,
            body,
            headers.get("webhook-id"),
            headers.get("webhook-timestamp"),
            headers.get("webhook-signature"),
            now=now,
            tolerance_seconds=tolerance_seconds,
        )
    except p.SignatureError:
        return False
    return True


# ---- processing --------------------------------------------------------------------------------


def _principal(tenant_id: str) -> Principal:
    return Principal(
        tenant_id=tenant_id, user_id="webhooks", key_id="webhooks", role="admin", store_ids=None
    )


@dataclass
class _Cells:
    orders: set[repo.Pair]
    refunds: set[repo.Pair]


@dataclass
class _Group:
    """A store's deliveries being processed: the latest state of each order and refund seen,
    written in bulk (a few statements per group, not per delivery)."""

    store: Any
    platform: str
    now: datetime
    cells: _Cells
    orders: dict[str, p.Order]
    refunds: dict[str, p.Refund]

    async def flush(self, session: AsyncSession) -> None:
        tenant, sid = self.store.tenant_id, self.store.id
        if self.orders:
            latest = list(self.orders.values())
            self.cells.orders |= await repo.upsert_orders(
                session, tenant, sid, self.platform, latest, self.now
            )
            self.cells.refunds |= await repo.rechannel_refunds(
                session, tenant, sid, {o.order_id: o.channel for o in latest}, self.now
            )
        if self.refunds:
            known = await repo.order_channels(
                session, tenant, sid, [r.order_id for r in self.refunds.values()]
            )
            self.cells.refunds |= await repo.upsert_refunds(
                session,
                tenant,
                sid,
                self.platform,
                [(r, known.get(r.order_id, "other")) for r in self.refunds.values()],
                self.now,
            )
        self.orders.clear()
        self.refunds.clear()


async def _privacy(session: AsyncSession, g: _Group, kind: str, doc: dict[str, Any]) -> None:
    tenant, sid = g.store.tenant_id, g.store.id
    if kind == "customers/redact":
        keys = await repo.buyer_keys_of_orders(
            session, tenant, sid, doc.get("buyer_keys") or [], doc.get("order_ids") or []
        )
        for old in sorted(keys | set(doc.get("buyer_keys") or [])):
            # One random key per erased key: distinct-buyer counts stay exactly as they were.
            await repo.replace_buyer_key(session, tenant, sid, old, secrets.token_hex(32))
    elif kind == "shop/redact":
        await repo.erase_store(session, tenant, sid)
        # The daily rows already written carry no personal data and stay.
        g.cells.orders.clear()
        g.cells.refunds.clear()
    # customers/data_request: we hold nothing to report beyond keyed hashes that identify
    # nobody without the store's secret; acknowledging it is all there is to do.


async def _write_cells(session: AsyncSession, store: Any, cells: _Cells) -> int:
    """Recompute the touched (date, channel) cells from the facts, so an order updated many
    times counts once and a cancelled one drops out; written by ingest's writer (upsert,
    counts, events)."""
    if not cells.orders and not cells.refunds:
        return 0
    rows: list[MetricRowIn] = []
    if cells.orders:
        totals = await repo.order_totals(
            session, store.tenant_id, store.id, {d for d, _ in cells.orders}
        )
        for d, ch in sorted(cells.orders):
            n, buyers, gmv = totals.get((d, ch), (0, 0, 0.0))
            dims = {"channel": ch}
            rows += [
                MetricRowIn(date=d, metric="orders", value=n, dimensions=dims),
                MetricRowIn(date=d, metric="buyers", value=buyers, dimensions=dims),
                MetricRowIn(date=d, metric="gmv", value=round(gmv, 6), dimensions=dims),
            ]
    if cells.refunds:
        refunds = await repo.refund_totals(
            session, store.tenant_id, store.id, {d for d, _ in cells.refunds}
        )
        for d, ch in sorted(cells.refunds):
            rows.append(
                MetricRowIn(
                    date=d,
                    metric="refunds",
                    value=round(refunds.get((d, ch), 0.0), 6),
                    dimensions={"channel": ch},
                )
            )
    # Dates come from the platform: a delivery days ahead of the local calendar would be a
    # clock problem on its side, not ours; allow a generous margin rather than fail it.
    await ingest_service.ingest_metrics(
        session, _principal(store.tenant_id), store.id, rows, source="webhook", max_future_days=2
    )
    return len(rows)


PROCESS_DEBOUNCE_SECONDS = 0.25
_TRANSIENT = (OperationalError, InterfaceError, ConnectionError, OSError)


async def process_group(session: AsyncSession, deliveries: Sequence[Any]) -> None:
    """Process deliveries of one store in one transaction (the caller commits). A delivery
    whose payload cannot be used is marked failed here; any other error aborts the group."""
    first = deliveries[0]
    store = await repo.get_store(session, first.tenant_id, first.store_id)
    now = _now()
    if store is None:
        for d in deliveries:
            await _mark_failed(session, d, "the store no longer exists", now)
        return
    g = _Group(store, first.platform, now, _Cells(set(), set()), {}, {})
    done: list[int] = []
    privacy: list[int] = []
    for d in deliveries:
        doc = json.loads(d.payload)
        kind = str(doc.get("kind"))
        if kind in p.PRIVACY_TOPICS:
            await g.flush(session)  # in order: what came before the request is affected too
            await _privacy(session, g, kind, doc)
            privacy.append(d.id)
            continue
        try:
            parsed = p.normalize(doc, store.timezone, store.currency)
        except p.PayloadError as exc:
            # Deterministic: retrying the same payload cannot succeed.
            await _mark_failed(session, d, str(exc), now)
            continue
        for o in parsed.orders:
            # Arrival order, unless the platform's timestamps say this state is older.
            if not p.is_older(o, g.orders.get(o.order_id)):
                g.orders[o.order_id] = o
        for r in parsed.refunds:
            g.refunds[r.refund_id] = r
        done.append(d.id)
    await g.flush(session)
    await repo.mark_processed(session, done, now)
    # The hashed keys of a redaction request are not kept once it is honoured.
    await repo.mark_processed(session, privacy, now, blank_payload=True)
    if done or privacy:
        await repo.bump_delivered(
            session,
            store.tenant_id,
            store.id,
            f"webhook:{first.platform}",
            len(done) + len(privacy),
            now,
        )
    await _write_cells(session, store, g.cells)


async def _mark_failed(session: AsyncSession, d: Any, error: str, now: datetime) -> None:
    await repo.update_delivery(
        session,
        d.id,
        {
            "status": "failed",
            "error": error[:2000],
            "attempts": d.attempts + 1,
            "processed_at": now,
        },
    )
    await ingest_service.record_delivery(
        session, d.tenant_id, d.store_id, f"webhook:{d.platform}", "failed", error
    )


async def process_pending(rt: Runtime, *, batch_size: int, max_attempts: int) -> int:
    """One round: the pending deliveries, grouped by store, each group in one transaction; a
    group that fails is redone one delivery at a time, so a poison delivery fails alone (its
    attempts counted, failed after `max_attempts`) and never holds up the others."""
    db = rt.db
    moved = await rt.move_inbox(batch_size)
    async with db.session(readonly=True) as s:
        pending = list(await repo.pending_deliveries(s, batch_size))
    groups: dict[tuple[str, str], list[Any]] = {}
    for d in pending:
        groups.setdefault((d.tenant_id, d.store_id), []).append(d)
    for group in groups.values():
        try:
            async with rt.write_lock, db.session() as s:
                await process_group(s, group)
                await s.commit()
            continue
        except _TRANSIENT:
            raise
        except Exception:
            log.warning("webhook_group_failed", store_id=group[0].store_id, size=len(group))
        for d in group:
            try:
                async with rt.write_lock, db.session() as s:
                    await process_group(s, [d])
                    await s.commit()
            except _TRANSIENT:
                raise
            except Exception as exc:
                log.warning("webhook_delivery_failed", delivery=d.id, error=str(exc))
                async with rt.write_lock, db.session() as s:
                    if d.attempts + 1 >= max_attempts:
                        await _mark_failed(s, d, f"{type(exc).__name__}: {exc}", _now())
                    else:
                        await repo.update_delivery(
                            s, d.id, {"attempts": d.attempts + 1, "error": str(exc)[:2000]}
                        )
                    await s.commit()
    # A full inbox move means more may be waiting: the caller goes on at once.
    return max(moved, len(pending))


async def run_processor(state: Any) -> None:
    """The background side of the webhooks (registered in main.py): the group-commit writer
    and the processor, woken by each accepted delivery, else polling. An unexpected error is
    logged and the loop goes on after a pause.

    In the embedded mode the processor runs on a thread of its own, with its own event loop and
    engine: its work (parsing, facts, daily rows, events) then never holds the event loop that
    answers deliveries for longer than the interpreter's switch interval (5 ms), where on the
    shared loop a round held it for tens of milliseconds at a time."""
    rt = runtime(state)
    writer = asyncio.create_task(rt.run_writer(), name="ingest:webhook-writer")
    try:
        if rt.inbox is not None:
            await _process_in_thread(state, rt)
        else:
            await _process_forever(state.settings, rt, state.relay.wake)
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await rt.close()


async def _process_in_thread(state: Any, rt: Runtime) -> None:
    main_loop = asyncio.get_running_loop()
    started: asyncio.Future[tuple[asyncio.AbstractEventLoop, asyncio.Task[None]]] = (
        main_loop.create_future()
    )
    relay = state.relay

    def wake_relay() -> None:
        with contextlib.suppress(RuntimeError):  # the app's loop closed: it is stopping
            main_loop.call_soon_threadsafe(relay.wake)

    async def serve() -> None:
        db = Database(state.settings)  # an engine bound to this thread's loop
        own = Runtime(db, inbox=rt.inbox)
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def wake_own() -> None:
            with contextlib.suppress(RuntimeError):  # its loop closed: the app is stopping
                loop.call_soon_threadsafe(own.wake.set)

        rt.on_wake.append(wake_own)
        main_loop.call_soon_threadsafe(started.set_result, (loop, task))
        try:
            await _process_forever(state.settings, own, wake_relay)
        finally:
            await db.dispose()

    def body() -> None:
        try:
            asyncio.run(serve())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported to the lifespan task waiting for the start
            log.error("webhook_processor_thread_failed", error=repr(exc))
            if not started.done():
                main_loop.call_soon_threadsafe(started.set_exception, exc)

    thread = threading.Thread(target=body, name="ingest:webhook-processor", daemon=True)
    thread.start()
    try:
        await asyncio.shield(started)
        rt.notify()  # deliveries left in the inbox by a previous run
        await asyncio.Event().wait()  # until the app stops (this task is cancelled)
    finally:
        with contextlib.suppress(Exception):  # a thread that failed to start has ended
            loop, task = await asyncio.shield(started)
            loop.call_soon_threadsafe(task.cancel)
        await asyncio.to_thread(thread.join)
        rt.on_wake.clear()


async def _process_forever(settings: Any, rt: Runtime, wake_relay: Callable[[], None]) -> None:
    while True:
        try:
            while (
                await process_pending(
                    rt,
                    batch_size=settings.webhook_batch_size,
                    max_attempts=settings.webhook_max_attempts,
                )
                >= settings.webhook_batch_size
            ):
                pass
            wake_relay()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("webhook_processor_error", error=str(exc))
            await asyncio.sleep(min(5.0, settings.webhook_poll_seconds * 4))
        # asyncio.timeout rather than wait_for: on 3.11 wait_for can swallow a cancellation
        # that lands as the wait ends, and the app's shutdown would then hang.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(settings.webhook_poll_seconds):
                await rt.wake.wait()
        # Debounce: gather what arrives in the next moment into one round, so processing runs
        # in fewer, bigger transactions and the receive path gets the write lock in between.
        await asyncio.sleep(min(PROCESS_DEBOUNCE_SECONDS, settings.webhook_poll_seconds))
        rt.wake.clear()
