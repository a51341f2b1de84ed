"""Use cases of the webhooks: receive (verify, deduplicate, store minimized) and process
(facts, then the daily rows through ingest's own writer)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
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
from shared.auth import Principal
from shared.errors import DomainError, NotFound

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
    rejected: str | None = None  # signed but unreadable: counted in data health, then 400


def _now() -> datetime:
    return datetime.now(UTC)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _body_id(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


async def receive(
    session: AsyncSession,
    endpoint: str,
    store_id: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_seconds: int,
) -> Received:
    """Authenticate a delivery by its signature, then store it minimized; nothing is written
    for an unknown store or a bad signature. The caller commits."""
    if endpoint not in ENDPOINT_PLATFORMS:
        raise NotFound(f"No webhook endpoint for {endpoint!r}")
    candidates = await repo.stores_by_id(session, store_id, ENDPOINT_PLATFORMS[endpoint])
    candidates = [c for c in candidates if c.webhook_secret]
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
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        await ingest_service.record_delivery(
            session,
            store.tenant_id,
            store.id,
            f"webhook:{endpoint}",
            "rejected",
            "the body is not valid JSON",
        )
        return Received("rejected", delivery_id, rejected="The body is not valid JSON")
    if endpoint == p.GENERIC:
        topic = p.generic_topic(doc)
    minimized = p.minimize(endpoint, topic, doc, store.webhook_secret)
    ignored = minimized.get("kind") == "ignored"
    inserted = await repo.insert_delivery(
        session,
        {
            "tenant_id": store.tenant_id,
            "store_id": store.id,
            "platform": endpoint,
            "delivery_id": delivery_id[:255],
            "topic": topic[:100],
            "status": "ignored" if ignored else "pending",
            "payload": "{}" if ignored else p.dumps(minimized),
            "attempts": 0,
            "received_at": _now(),
        },
    )
    if not inserted:
        return Received("duplicate", delivery_id)
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


async def _apply(
    session: AsyncSession, store: Any, delivery: Any, cells: _Cells, now: datetime
) -> None:
    """One delivery's effect on the facts (the caller recomputes the touched cells)."""
    doc = json.loads(delivery.payload)
    kind = doc.get("kind")
    tenant, sid = store.tenant_id, store.id
    if kind == "customers/redact":
        keys = await repo.buyer_keys_of_orders(
            session, tenant, sid, doc.get("buyer_keys") or [], doc.get("order_ids") or []
        )
        for old in sorted(keys | set(doc.get("buyer_keys") or [])):
            # One random key per erased key: distinct-buyer counts stay exactly as they were.
            await repo.replace_buyer_key(session, tenant, sid, old, secrets.token_hex(32))
        return
    if kind == "shop/redact":
        await repo.erase_store(session, tenant, sid)
        cells.orders.clear()
        cells.refunds.clear()
        return
    if kind == "customers/data_request":
        # We hold no personal data to report: only keyed hashes that identify nobody alone.
        return
    parsed = p.normalize(doc, store.timezone, store.currency)
    latest = {o.order_id: o for o in parsed.orders}
    touched = await repo.upsert_orders(
        session, tenant, sid, delivery.platform, list(latest.values()), now
    )
    cells.orders |= touched
    channels = {o.order_id: o.channel for o in latest.values()}
    cells.refunds |= await repo.rechannel_refunds(session, tenant, sid, channels, now)
    refunds = {r.refund_id: r for r in parsed.refunds}
    if refunds:
        known = await repo.order_channels(
            session, tenant, sid, [r.order_id for r in refunds.values()]
        )
        cells.refunds |= await repo.upsert_refunds(
            session,
            tenant,
            sid,
            delivery.platform,
            [(r, known.get(r.order_id, "other")) for r in refunds.values()],
            now,
        )


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


_TRANSIENT = (OperationalError, InterfaceError, ConnectionError, OSError)


async def process_group(session: AsyncSession, deliveries: Sequence[Any]) -> None:
    """Process deliveries of one store in one transaction (the caller commits). A delivery
    whose payload cannot be used is marked failed here; any other error aborts the group."""
    first = deliveries[0]
    store = await repo.get_store(session, first.tenant_id, first.store_id)
    now = _now()
    source = f"webhook:{first.platform}"
    if store is None:
        for d in deliveries:
            await _mark_failed(session, d, "the store no longer exists", now)
        return
    cells = _Cells(set(), set())
    for d in deliveries:
        try:
            # A PayloadError comes from normalize(), before this delivery wrote anything.
            await _apply(session, store, d, cells, now)
        except p.PayloadError as exc:
            # Deterministic: retrying the same payload cannot succeed.
            await _mark_failed(session, d, str(exc), now)
            continue
        done: dict[str, Any] = {"status": "processed", "processed_at": now, "error": None}
        if d.topic in p.PRIVACY_TOPICS:
            done["payload"] = "{}"  # the hashed keys of a redaction request are not kept
        await repo.update_delivery(session, d.id, {**done, "attempts": d.attempts + 1})
        await ingest_service.record_delivery(
            session, store.tenant_id, store.id, source, "delivered"
        )
    await _write_cells(session, store, cells)


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


async def process_pending(db: Any, *, batch_size: int, max_attempts: int) -> int:
    """One round: the pending deliveries, grouped by store, each group in one transaction; a
    group that fails is redone one delivery at a time, so a poison delivery fails alone (its
    attempts counted, failed after `max_attempts`) and never holds up the others."""
    async with db.session(readonly=True) as s:
        pending = list(await repo.pending_deliveries(s, batch_size))
    groups: dict[tuple[str, str], list[Any]] = {}
    for d in pending:
        groups.setdefault((d.tenant_id, d.store_id), []).append(d)
    for group in groups.values():
        try:
            async with db.session() as s:
                await process_group(s, group)
                await s.commit()
            continue
        except _TRANSIENT:
            raise
        except Exception:
            log.warning("webhook_group_failed", store_id=group[0].store_id, size=len(group))
        for d in group:
            try:
                async with db.session() as s:
                    await process_group(s, [d])
                    await s.commit()
            except _TRANSIENT:
                raise
            except Exception as exc:
                log.warning("webhook_delivery_failed", delivery=d.id, error=str(exc))
                async with db.session() as s:
                    if d.attempts + 1 >= max_attempts:
                        await _mark_failed(s, d, f"{type(exc).__name__}: {exc}", _now())
                    else:
                        await repo.update_delivery(
                            s, d.id, {"attempts": d.attempts + 1, "error": str(exc)[:2000]}
                        )
                    await s.commit()
    return len(pending)


async def run_processor(state: Any) -> None:
    """The background loop (registered in main.py): woken by each accepted delivery, else
    polling. A database outage is waited out without counting attempts against deliveries."""
    settings = state.settings
    wake = asyncio.Event()
    state.webhook_wake = wake
    while True:
        try:
            while (
                await process_pending(
                    state.db,
                    batch_size=settings.webhook_batch_size,
                    max_attempts=settings.webhook_max_attempts,
                )
                >= settings.webhook_batch_size
            ):
                pass
            state.relay.wake()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("webhook_processor_error", error=str(exc))
            await asyncio.sleep(min(5.0, settings.webhook_poll_seconds * 4))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=settings.webhook_poll_seconds)
        wake.clear()
