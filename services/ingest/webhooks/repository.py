"""Queries of the webhooks. Repositories flush, never commit; the route or the processor does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, case, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.models import OrderFact, RefundFact, SourceHealth, Store, WebhookDelivery
from services.ingest.webhooks.platforms import Order, Refund, is_older

STORES: Table = Store.__table__  # type: ignore[attr-defined]
DELIVERIES: Table = WebhookDelivery.__table__  # type: ignore[attr-defined]
ORDERS: Table = OrderFact.__table__  # type: ignore[attr-defined]
REFUNDS: Table = RefundFact.__table__  # type: ignore[attr-defined]
SOURCE_HEALTH: Table = SourceHealth.__table__  # type: ignore[attr-defined]

Pair = tuple[dt.date, str]


async def stores_by_id(session: AsyncSession, store_id: str, platforms: Iterable[str]) -> Any:
    """Every tenant's store with this id on these platforms: ids are unique per tenant only,
    so the signature decides which one a delivery belongs to."""
    q = select(
        STORES.c.tenant_id,
        STORES.c.id,
        STORES.c.platform,
        STORES.c.timezone,
        STORES.c.currency,
        STORES.c.webhook_secret,
    ).where(STORES.c.id == store_id, STORES.c.platform.in_(sorted(platforms)))
    return (await session.execute(q)).all()


async def get_store(session: AsyncSession, tenant_id: str, store_id: str) -> Any:
    q = select(STORES).where(STORES.c.tenant_id == tenant_id, STORES.c.id == store_id)
    return (await session.execute(q)).first()


async def insert_delivery(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert unless (tenant, store, platform, delivery id) exists; True if inserted. One
    statement, so a replay racing its original cannot fail on the unique key."""
    dialect = session.bind.dialect.name  # type: ignore[union-attr]
    ins: Any = pg_insert(DELIVERIES) if dialect == "postgresql" else sqlite_insert(DELIVERIES)
    stmt = ins.values(**values).on_conflict_do_nothing(
        index_elements=["tenant_id", "store_id", "platform", "delivery_id"]
    )
    res: Any = await session.execute(stmt)
    return bool(res.rowcount)


IDENTITY = ("tenant_id", "store_id", "platform", "delivery_id")


async def insert_deliveries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[bool]:
    """Insert a batch of deliveries in two statements; per row, True if inserted, False if it
    was already there (a replay) or repeats an earlier row of the batch. On SQLite the writer
    holds the write lock, so the read is exact; elsewhere ON CONFLICT DO NOTHING still keeps a
    racing replay from being written twice."""
    if not rows:
        return []
    existing: set[tuple[Any, ...]] = set()
    by_store: dict[tuple[str, str, str], list[str]] = {}
    for r in rows:
        by_store.setdefault((r["tenant_id"], r["store_id"], r["platform"]), []).append(
            r["delivery_id"]
        )
    for (tenant, store, platform), ids in by_store.items():
        q = select(DELIVERIES.c.delivery_id).where(
            DELIVERIES.c.tenant_id == tenant,
            DELIVERIES.c.store_id == store,
            DELIVERIES.c.platform == platform,
            DELIVERIES.c.delivery_id.in_(sorted(set(ids))),
        )
        existing |= {(tenant, store, platform, d) for (d,) in await session.execute(q)}
    fresh: list[dict[str, Any]] = []
    out: list[bool] = []
    for r in rows:
        key = tuple(r[k] for k in IDENTITY)
        if key in existing:
            out.append(False)
        else:
            existing.add(key)
            fresh.append(r)
            out.append(True)
    if fresh:
        dialect = session.bind.dialect.name  # type: ignore[union-attr]
        ins: Any = pg_insert(DELIVERIES) if dialect == "postgresql" else sqlite_insert(DELIVERIES)
        await session.execute(ins.on_conflict_do_nothing(index_elements=list(IDENTITY)), fresh)
    return out


async def pending_deliveries(session: AsyncSession, limit: int) -> Sequence[Any]:
    q = (
        select(DELIVERIES)
        .where(DELIVERIES.c.status == "pending")
        .order_by(DELIVERIES.c.id)
        .limit(limit)
    )
    return (await session.execute(q)).all()


async def get_delivery(session: AsyncSession, delivery_pk: int) -> Any:
    return (await session.execute(select(DELIVERIES).where(DELIVERIES.c.id == delivery_pk))).first()


async def update_delivery(session: AsyncSession, delivery_pk: int, values: dict[str, Any]) -> None:
    await session.execute(
        DELIVERIES.update().where(DELIVERIES.c.id == delivery_pk).values(**values)
    )


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


async def upsert_orders(
    session: AsyncSession,
    tenant_id: str,
    store_id: str,
    platform: str,
    orders: Sequence[Order],
    now: dt.datetime,
) -> set[Pair]:
    """Write the latest state of each order (ids unique in `orders`) in three statements;
    returns the (date, channel) cells touched, the old one included when an order moved."""
    if not orders:
        return set()
    old = {
        r.order_id: r
        for r in await session.execute(
            select(
                ORDERS.c.id,
                ORDERS.c.order_id,
                ORDERS.c.local_date,
                ORDERS.c.channel,
                ORDERS.c.source_updated_at,
            ).where(
                ORDERS.c.tenant_id == tenant_id,
                ORDERS.c.store_id == store_id,
                ORDERS.c.platform == platform,
                ORDERS.c.order_id.in_([o.order_id for o in orders]),
            )
        )
    }
    pairs: set[Pair] = set()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for o in orders:
        prev = old.get(o.order_id)
        if prev is not None and is_older(o, than=_utc(prev.source_updated_at)):
            continue  # a late delivery of an older state: the stored one is newer
        values = {
            "local_date": o.local_date,
            "channel": o.channel,
            "gmv": o.gmv,
            "currency": o.currency,
            "buyer_key": o.buyer_key,
            "cancelled": o.cancelled,
            "source_updated_at": o.version,
            "updated_at": now,
        }
        if prev is None:
            inserts.append(
                {
                    "tenant_id": tenant_id,
                    "store_id": store_id,
                    "platform": platform,
                    "order_id": o.order_id,
                    **values,
                }
            )
        else:
            pairs.add((prev.local_date, prev.channel))
            updates.append({"_id": prev.id, **values})
        pairs.add((o.local_date, o.channel))
    if inserts:
        await session.execute(ORDERS.insert(), inserts)
    if updates:
        cols = (
            "local_date",
            "channel",
            "gmv",
            "currency",
            "buyer_key",
            "cancelled",
            "source_updated_at",
            "updated_at",
        )
        await session.execute(
            ORDERS.update()
            .where(ORDERS.c.id == bindparam("_id"))
            .values(**{c: bindparam(c) for c in cols}),
            updates,
        )
    return pairs


async def order_channels(
    session: AsyncSession, tenant_id: str, store_id: str, order_ids: Iterable[str]
) -> dict[str, str]:
    ids = sorted(set(order_ids))
    if not ids:
        return {}
    q = select(ORDERS.c.order_id, ORDERS.c.channel).where(
        ORDERS.c.tenant_id == tenant_id, ORDERS.c.store_id == store_id, ORDERS.c.order_id.in_(ids)
    )
    return {r.order_id: r.channel for r in await session.execute(q)}


async def upsert_refunds(
    session: AsyncSession,
    tenant_id: str,
    store_id: str,
    platform: str,
    refunds: Sequence[tuple[Refund, str]],
    now: dt.datetime,
) -> set[Pair]:
    """Refunds (ids unique) with the channel of their order. A refund keeps the date it was
    first given (a WooCommerce refund has none of its own and is dated when first seen)."""
    if not refunds:
        return set()
    old = {
        r.refund_id: r
        for r in await session.execute(
            select(
                REFUNDS.c.id, REFUNDS.c.refund_id, REFUNDS.c.local_date, REFUNDS.c.channel
            ).where(
                REFUNDS.c.tenant_id == tenant_id,
                REFUNDS.c.store_id == store_id,
                REFUNDS.c.platform == platform,
                REFUNDS.c.refund_id.in_([r.refund_id for r, _ in refunds]),
            )
        )
    }
    pairs: set[Pair] = set()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for r, channel in refunds:
        prev = old.get(r.refund_id)
        if prev is None:
            inserts.append(
                {
                    "tenant_id": tenant_id,
                    "store_id": store_id,
                    "platform": platform,
                    "refund_id": r.refund_id,
                    "order_id": r.order_id,
                    "local_date": r.local_date,
                    "channel": channel,
                    "amount": r.amount,
                    "updated_at": now,
                }
            )
            pairs.add((r.local_date, channel))
        else:
            pairs.add((prev.local_date, prev.channel))
            pairs.add((prev.local_date, channel))
            updates.append(
                {"_id": prev.id, "channel": channel, "amount": r.amount, "updated_at": now}
            )
    if inserts:
        await session.execute(REFUNDS.insert(), inserts)
    if updates:
        await session.execute(
            REFUNDS.update()
            .where(REFUNDS.c.id == bindparam("_id"))
            .values(
                channel=bindparam("channel"),
                amount=bindparam("amount"),
                updated_at=bindparam("updated_at"),
            ),
            updates,
        )
    return pairs


async def rechannel_refunds(
    session: AsyncSession,
    tenant_id: str,
    store_id: str,
    channels: dict[str, str],
    now: dt.datetime,
) -> set[Pair]:
    """Refunds that arrived before their order (or whose order moved) follow its channel."""
    pairs: set[Pair] = set()
    if not channels:
        return pairs
    q = select(REFUNDS.c.id, REFUNDS.c.order_id, REFUNDS.c.local_date, REFUNDS.c.channel).where(
        REFUNDS.c.tenant_id == tenant_id,
        REFUNDS.c.store_id == store_id,
        REFUNDS.c.order_id.in_(sorted(channels)),
    )
    for r in (await session.execute(q)).all():
        want = channels[r.order_id]
        if r.channel != want:
            pairs.add((r.local_date, r.channel))
            pairs.add((r.local_date, want))
            await session.execute(
                REFUNDS.update().where(REFUNDS.c.id == r.id).values(channel=want, updated_at=now)
            )
    return pairs


async def mark_processed(
    session: AsyncSession, ids: Sequence[int], now: dt.datetime, *, blank_payload: bool = False
) -> None:
    if not ids:
        return
    values: dict[str, Any] = {
        "status": "processed",
        "processed_at": now,
        "error": None,
        "attempts": DELIVERIES.c.attempts + 1,
    }
    if blank_payload:
        values["payload"] = "{}"
    await session.execute(
        DELIVERIES.update().where(DELIVERIES.c.id.in_(list(ids))).values(**values)
    )


async def bump_delivered(
    session: AsyncSession, tenant_id: str, store_id: str, source: str, n: int, now: dt.datetime
) -> None:
    """Data health for a processed batch in two statements (ingest's record_delivery counts
    one delivery at a time; a batch of hundreds would cost as many round trips)."""
    t = SOURCE_HEALTH
    ins: Any = (
        pg_insert(t) if session.bind.dialect.name == "postgresql" else sqlite_insert(t)  # type: ignore[union-attr]
    )
    await session.execute(
        ins.values(
            tenant_id=tenant_id, store_id=store_id, source=source, delivered=0, failed=0, rejected=0
        ).on_conflict_do_nothing(index_elements=["tenant_id", "store_id", "source"])
    )
    await session.execute(
        t.update()
        .where(t.c.tenant_id == tenant_id, t.c.store_id == store_id, t.c.source == source)
        .values(delivered=t.c.delivered + n, last_delivery_at=now)
    )


async def order_totals(
    session: AsyncSession, tenant_id: str, store_id: str, dates: Iterable[dt.date]
) -> dict[Pair, tuple[int, int, float]]:
    """(orders, distinct buyers, gmv) per (local date, channel); cancelled orders count 0."""
    live = ORDERS.c.cancelled.is_(False)
    q = (
        select(
            ORDERS.c.local_date,
            ORDERS.c.channel,
            func.sum(case((live, 1), else_=0)),
            func.count(func.distinct(case((live, ORDERS.c.buyer_key), else_=None))),
            func.sum(case((live, ORDERS.c.gmv), else_=0.0)),
        )
        .where(
            ORDERS.c.tenant_id == tenant_id,
            ORDERS.c.store_id == store_id,
            ORDERS.c.local_date.in_(sorted(set(dates))),
        )
        .group_by(ORDERS.c.local_date, ORDERS.c.channel)
    )
    return {
        (r[0], r[1]): (int(r[2] or 0), int(r[3] or 0), float(r[4] or 0.0))
        for r in await session.execute(q)
    }


async def refund_totals(
    session: AsyncSession, tenant_id: str, store_id: str, dates: Iterable[dt.date]
) -> dict[Pair, float]:
    q = (
        select(REFUNDS.c.local_date, REFUNDS.c.channel, func.sum(REFUNDS.c.amount))
        .where(
            REFUNDS.c.tenant_id == tenant_id,
            REFUNDS.c.store_id == store_id,
            REFUNDS.c.local_date.in_(sorted(set(dates))),
        )
        .group_by(REFUNDS.c.local_date, REFUNDS.c.channel)
    )
    return {(r[0], r[1]): float(r[2] or 0.0) for r in await session.execute(q)}


async def buyer_keys_of_orders(
    session: AsyncSession,
    tenant_id: str,
    store_id: str,
    keys: Sequence[str],
    order_ids: Sequence[str],
) -> set[str]:
    conds = []
    if keys:
        conds.append(ORDERS.c.buyer_key.in_(list(keys)))
    if order_ids:
        conds.append(ORDERS.c.order_id.in_(list(order_ids)))
    if not conds:
        return set()
    from sqlalchemy import or_

    q = select(ORDERS.c.buyer_key).where(
        ORDERS.c.tenant_id == tenant_id, ORDERS.c.store_id == store_id, or_(*conds)
    )
    return {r[0] for r in await session.execute(q)}


async def replace_buyer_key(
    session: AsyncSession, tenant_id: str, store_id: str, old: str, new: str
) -> None:
    """Swap a buyer key everywhere it is stored: the facts and the kept delivery payloads."""
    await session.execute(
        ORDERS.update()
        .where(
            ORDERS.c.tenant_id == tenant_id,
            ORDERS.c.store_id == store_id,
            ORDERS.c.buyer_key == old,
        )
        .values(buyer_key=new)
    )
    await session.execute(
        DELIVERIES.update()
        .where(
            DELIVERIES.c.tenant_id == tenant_id,
            DELIVERIES.c.store_id == store_id,
            DELIVERIES.c.payload.contains(old),
        )
        .values(payload=func.replace(DELIVERIES.c.payload, old, new))
    )


async def erase_store(session: AsyncSession, tenant_id: str, store_id: str) -> None:
    """Shopify's shop/redact: the store's facts go, its deliveries keep only their ids (so a
    replay is still recognised) and statuses."""
    for t in (ORDERS, REFUNDS):
        await session.execute(
            t.delete().where(t.c.tenant_id == tenant_id, t.c.store_id == store_id)
        )
    await session.execute(
        DELIVERIES.update()
        .where(DELIVERIES.c.tenant_id == tenant_id, DELIVERIES.c.store_id == store_id)
        .values(payload="{}")
    )
