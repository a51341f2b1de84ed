"""Use cases of notifications: targets, immediate alerts with a budget, daily digests.

Decisions live here; the formats are pure (formats.py) and the HTTP sending is the worker's
(delivery.py). Everything that must happen once (an alert per finding and severity, a digest per
local day) is claimed by a unique key in the same transaction as what it causes.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import secrets
import urllib.parse
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis.notify import repository as repo
from services.diagnosis.notify.formats import SEVERITY_RANK
from services.diagnosis.notify.schemas import (
    AttemptOut,
    DeliveryOut,
    DeliveryPage,
    TargetCreate,
    TargetOut,
    TargetPage,
    TargetUpdate,
    TestQueued,
)
from services.diagnosis.notify.settings import NotifySettings
from shared.auth import Principal
from shared.errors import NotFound, ValidationFailed
from shared.events.diagnosis import FindingClosedV1, FindingOpenedV1, FindingUpdatedV1

FindingEvent = FindingOpenedV1 | FindingUpdatedV1 | FindingClosedV1
BUDGET_WINDOW = timedelta(hours=24)
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _now() -> datetime:
    return datetime.now(UTC)


def _invalid(loc: list[Any], msg: str) -> ValidationFailed:
    return ValidationFailed([{"loc": loc, "msg": msg}])


# --- cursors -------------------------------------------------------------------------------------


def encode_cursor(after: str | int) -> str:
    raw = json.dumps({"after": after}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: type) -> Any:
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["after"]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError
        return value
    except (ValueError, KeyError, TypeError) as exc:
        raise _invalid(["query", "cursor"], "not a cursor this service issued") from exc


# --- target validation ---------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, settings: NotifySettings) -> str:
    """https only; plain http and loopback hosts only when the setting allows them (tests, a
    local receiver). Literal private, link-local and unspecified addresses are refused: a target
    must not make this service call into its own network."""
    parts = urllib.parse.urlsplit(url.strip())
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise _invalid(["body", "url"], "must be an absolute https:// URL")
    if parts.username or parts.password:
        raise _invalid(["body", "url"], "must not carry user:password")
    loopback = _is_loopback(host)
    if parts.scheme == "http" and not (loopback and settings.allow_insecure_loopback):
        raise _invalid(["body", "url"], "must use https")
    if loopback and not settings.allow_insecure_loopback:
        raise _invalid(["body", "url"], "loopback addresses are not allowed")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and not ip.is_loopback and not ip.is_global:
        raise _invalid(["body", "url"], "private, link-local and reserved addresses are refused")
    return url.strip()


def generate_whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _check_secret(fmt: str, secret: str | None) -> str | None:
    """The secret a format accepts, or a 422 naming body.secret."""
    loc = ["body", "secret"]
    if secret is None:
        return None
    secret = secret.strip()
    if fmt == "slack":
        raise _invalid(loc, "Slack incoming webhooks have no signing secret: leave it out")
    if fmt == "standard":
        if not secret.startswith("whsec_"):
            raise _invalid(loc, "a Standard Webhooks secret starts with whsec_ (or leave it out)")
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except ValueError:
            raise _invalid(loc, "whsec_ must be followed by base64") from None
        if not 24 <= len(key) <= 64:
            raise _invalid(loc, "the key must be 24 to 64 bytes")
        return secret
    if fmt == "dingtalk" and not (secret.startswith("SEC") and len(secret) >= 10):
        raise _invalid(loc, "a DingTalk signing secret starts with SEC (the robot's 加签 secret)")
    if not secret or any(c.isspace() for c in secret):
        raise _invalid(loc, "must be a non-empty secret without spaces")
    return secret


def _check_scope(principal: Principal, store_ids: list[str] | None, loc: list[Any]) -> None:
    """A store-scoped key only manages targets limited to its stores."""
    if principal.store_ids is None:
        return
    if store_ids is None:
        raise _invalid(loc, "a store-scoped key must limit the target to its stores")
    outside = sorted(set(store_ids) - principal.store_ids)
    if outside:
        raise _invalid(loc, f"stores outside the key's scope: {', '.join(outside)}")


async def _check_stores(
    session: AsyncSession, principal: Principal, store_ids: list[str] | None, loc: list[Any]
) -> None:
    """Every store a target names is one of the caller's tenant (another tenant's store, or
    none at all, is not an id to keep)."""
    if not store_ids:
        return
    unknown = sorted(
        set(store_ids) - await repo.known_store_ids(session, principal.tenant_id, store_ids)
    )
    if unknown:
        raise _invalid(loc, f"no such store: {', '.join(unknown)}")


def mask_url(url: str) -> str:
    """Incoming-webhook URLs are credentials (Slack's path, DingTalk's access_token): show the
    host and the first path segment only."""
    parts = urllib.parse.urlsplit(url)
    first = parts.path.strip("/").split("/", 1)[0]
    rest = parts.path.strip("/")[len(first) :] or parts.query
    return f"{parts.scheme}://{parts.netloc}/{first}{'/…' if rest else ''}"


def _visible(principal: Principal, row: Any) -> bool:
    if row is None or row.tenant_id != principal.tenant_id:
        return False
    if principal.store_ids is None:
        return True
    return row.store_ids is not None and set(row.store_ids) <= principal.store_ids


async def _target_out(
    session: AsyncSession, row: Any, now: datetime, secret: str | None = None
) -> TargetOut:
    return TargetOut(
        id=row.id,
        name=row.name,
        owner=row.owner,
        format=row.format,
        url=mask_url(row.url),
        has_secret=row.secret is not None,
        secret=secret,
        min_severity=row.min_severity,
        digest_hour=row.digest_hour,
        timezone=row.timezone,
        alert_budget=row.alert_budget,
        store_ids=row.store_ids,
        locale=row.locale,
        enabled=row.enabled,
        alerts_last_24h=await repo.count_sent_since(session, row.id, now - BUDGET_WINDOW),
        held_alerts=await repo.count_held(session, row.id),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# --- targets -------------------------------------------------------------------------------------


async def create_target(
    session: AsyncSession, principal: Principal, body: TargetCreate, settings: NotifySettings
) -> TargetOut:
    url = check_url(body.url, settings)
    secret = _check_secret(body.format, body.secret.get_secret_value() if body.secret else None)
    shown = None
    if body.format == "standard" and secret is None:
        secret = shown = generate_whsec()
    _check_scope(principal, body.store_ids, ["body", "store_ids"])
    await _check_stores(session, principal, body.store_ids, ["body", "store_ids"])
    now = _now()
    target_id = str(uuid.uuid4())
    await repo.insert_target(
        session,
        {
            "id": target_id,
            "tenant_id": principal.tenant_id,
            "name": body.name,
            "owner": body.owner,
            "format": body.format,
            "url": url,
            "secret": secret,
            "min_severity": body.min_severity,
            "digest_hour": body.digest_hour,
            "timezone": body.timezone,
            "alert_budget": body.alert_budget,
            "store_ids": sorted(set(body.store_ids)) if body.store_ids else None,
            "locale": body.locale,
            "enabled": body.enabled,
            "created_at": now,
            "updated_at": now,
        },
    )
    row = await repo.get_target(session, principal.tenant_id, target_id)
    return await _target_out(session, row, now, shown)


async def _get_visible(session: AsyncSession, principal: Principal, target_id: str) -> Any:
    row = await repo.get_target(session, principal.tenant_id, target_id)
    if not _visible(principal, row):
        raise NotFound(f"Notification target {target_id!r} not found")
    return row


async def get_target(session: AsyncSession, principal: Principal, target_id: str) -> TargetOut:
    return await _target_out(session, await _get_visible(session, principal, target_id), _now())


async def list_targets(
    session: AsyncSession,
    principal: Principal,
    owner: str | None,
    limit: int,
    cursor: str | None,
) -> TargetPage:
    after = decode_cursor(cursor, str)
    items: list[TargetOut] = []
    now = _now()
    # Scoped keys skip targets they may not see, so read on until the page is full.
    while len(items) <= limit:
        rows = await repo.list_targets(session, principal.tenant_id, owner, after, 200)
        if not rows:
            break
        for row in rows:
            after = row.id
            if _visible(principal, row):
                items.append(await _target_out(session, row, now))
                if len(items) > limit:
                    break
        if len(rows) < 200:
            break
    nxt = encode_cursor(items[limit - 1].id) if len(items) > limit else None
    return TargetPage(items=items[:limit], next_cursor=nxt)


async def update_target(
    session: AsyncSession,
    principal: Principal,
    target_id: str,
    body: TargetUpdate,
    settings: NotifySettings,
) -> TargetOut:
    row = await _get_visible(session, principal, target_id)
    given = body.model_fields_set
    values: dict[str, Any] = {}
    for name in ("name", "min_severity", "digest_hour", "timezone", "alert_budget", "locale"):
        if name in given:
            value = getattr(body, name)
            if value is None and name != "name":
                raise _invalid(["body", name], "may not be null")
            values[name] = value
    for name in ("owner", "enabled"):
        if name in given:
            if getattr(body, name) is None:
                raise _invalid(["body", name], "may not be null")
            values[name] = getattr(body, name)
    if "url" in given:
        if body.url is None:
            raise _invalid(["body", "url"], "may not be null")
        values["url"] = check_url(body.url, settings)
    if "store_ids" in given:
        _check_scope(principal, body.store_ids, ["body", "store_ids"])
        await _check_stores(session, principal, body.store_ids, ["body", "store_ids"])
        values["store_ids"] = sorted(set(body.store_ids)) if body.store_ids else None
    shown = None
    if body.rotate_secret:
        if row.format != "standard":
            raise _invalid(
                ["body", "rotate_secret"], "only standard targets have a generated secret"
            )
        if "secret" in given:
            raise _invalid(["body", "secret"], "give a secret or rotate_secret, not both")
        values["secret"] = shown = generate_whsec()
    elif "secret" in given:
        raw = body.secret.get_secret_value() if body.secret else None
        if raw is None and row.format == "standard":
            raise _invalid(["body", "secret"], "a standard target is always signed")
        values["secret"] = _check_secret(row.format, raw)
    now = _now()
    values["updated_at"] = now
    await repo.update_target(session, row.id, values)
    fresh = await repo.get_target(session, principal.tenant_id, row.id)
    return await _target_out(session, fresh, now, shown)


async def delete_target(session: AsyncSession, principal: Principal, target_id: str) -> None:
    row = await _get_visible(session, principal, target_id)
    await repo.delete_target(session, row.id)


# --- deliveries ----------------------------------------------------------------------------------


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex


async def enqueue(
    session: AsyncSession,
    target: Any,
    kind: str,
    document: Mapping[str, Any],
    now: datetime,
    finding_id: str | None = None,
    message_id: str | None = None,
) -> int:
    """Queue a message, due at once. `now` is the decision's time (a digest's may be a test's
    chosen instant); the delivery is due by the wall clock, which the worker reads."""
    now = min(now, _now())
    return await repo.insert_delivery(
        session,
        {
            "tenant_id": target.tenant_id,
            "target_id": target.id,
            "kind": kind,
            "message_id": message_id or new_message_id(),
            "document": dict(document),
            "finding_id": finding_id,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        },
    )


async def queue_test(session: AsyncSession, principal: Principal, target_id: str) -> TestQueued:
    row = await _get_visible(session, principal, target_id)
    doc = {"kind": "test", "owner": row.owner, "locale": row.locale, "target_id": row.id}
    message_id = new_message_id()
    delivery_id = await enqueue(session, row, "test", doc, _now(), message_id=message_id)
    return TestQueued(delivery_id=delivery_id, message_id=message_id)


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    target_id: str,
    limit: int,
    cursor: str | None,
) -> DeliveryPage:
    row = await _get_visible(session, principal, target_id)
    before = decode_cursor(cursor, int)
    rows = await repo.list_deliveries(session, row.id, before, limit + 1)
    page = rows[:limit]
    by_delivery: dict[int, list[AttemptOut]] = {}
    for a in await repo.attempts_of(session, [d.id for d in page]):
        by_delivery.setdefault(a.delivery_id, []).append(
            AttemptOut(
                attempt=a.attempt,
                at=a.at,
                outcome=a.outcome,
                status_code=a.status_code,
                error=a.error,
                duration_ms=a.duration_ms,
                retry_in_seconds=a.retry_in_seconds,
            )
        )
    items = [
        DeliveryOut(
            id=d.id,
            kind=d.kind,
            message_id=d.message_id,
            finding_id=d.finding_id,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            created_at=d.created_at,
            delivered_at=d.delivered_at,
            attempt_log=by_delivery.get(d.id, []),
        )
        for d in page
    ]
    nxt = encode_cursor(page[-1].id) if len(rows) > limit else None
    return DeliveryPage(items=items, next_cursor=nxt)


# --- findings and immediate alerts ---------------------------------------------------------------


def finding_state(event: FindingEvent) -> dict[str, Any]:
    """The finding as notifications show it (JSON-ready)."""
    return {
        "finding_id": str(event.finding_id),
        "store_id": event.store_id,
        "date": event.date.isoformat(),
        "code": event.code,
        "severity": event.severity,
        "metric": event.metric,
        "dimensions": dict(event.dimensions),
        "owner": event.owner,
        "title": event.title,
        "action": event.action,
        "status": event.status,
        "expected_gmv_impact": event.expected_gmv_impact,
        "confidence": event.confidence,
    }


def _row_state(row: Any) -> dict[str, Any]:
    return {
        "finding_id": row.finding_id,
        "store_id": row.store_id,
        "date": row.date.isoformat(),
        "code": row.code,
        "severity": row.severity,
        "metric": row.metric,
        "dimensions": dict(row.dimensions or {}),
        "owner": row.owner,
        "title": row.title,
        "action": row.action,
        "status": row.status,
        "expected_gmv_impact": row.expected_gmv_impact,
        "confidence": row.confidence,
    }


def _in_scope(target: Any, store_id: str) -> bool:
    return target.store_ids is None or store_id in target.store_ids


async def on_finding(
    session: AsyncSession, event: FindingEvent, now: datetime | None = None
) -> int:
    """Project the finding, then alert every matching target once per (finding, severity).

    An alert goes out when the finding is open with a severity at or above the target's
    min_severity, and higher than any severity already alerted (or held) for it on that target:
    a replayed event, or an update at the same or a lower severity, alerts nobody. Beyond the
    target's budget of alerts in the last 24 h the alert is held for the next digest.
    Returns the number of alerts decided (sent or held)."""
    now = now or _now()
    state = finding_state(event)
    applied = await repo.upsert_finding(
        session,
        {
            **{k: v for k, v in state.items() if k != "date"},
            "tenant_id": event.tenant_id,
            "date": event.date,
            "as_of": event.occurred_at,
        },
    )
    # An event older than the state we hold (redelivered out of order) decides nothing.
    if not applied or isinstance(event, FindingClosedV1) or event.status != "open":
        return 0
    rank = SEVERITY_RANK[event.severity]
    decided = 0
    for target in await repo.targets_of_owner(session, event.tenant_id, event.owner):
        if not _in_scope(target, event.store_id) or rank < SEVERITY_RANK[target.min_severity]:
            continue
        before = await repo.alerted_severities(session, target.id, state["finding_id"])
        if before and max(SEVERITY_RANK[s] for s in before) >= rank:
            continue
        used = await repo.count_sent_since(session, target.id, now - BUDGET_WINDOW)
        held = used >= target.alert_budget
        alert_id = await repo.insert_alert(
            session,
            {
                "target_id": target.id,
                "tenant_id": event.tenant_id,
                "finding_id": state["finding_id"],
                "severity": event.severity,
                "state": "held" if held else "sent",
                "created_at": now,
            },
        )
        if alert_id is None:  # decided concurrently by another consumer
            continue
        decided += 1
        if not held:
            doc = {
                "kind": "alert",
                "owner": target.owner,
                "locale": target.locale,
                "finding": state,
            }
            delivery_id = await enqueue(session, target, "alert", doc, now, state["finding_id"])
            await repo.set_alert_delivery(session, alert_id, delivery_id)
    return decided


# --- digests -------------------------------------------------------------------------------------


def digest_due(target: Any, now: datetime) -> dt.date | None:
    """The local date whose digest is due for this target at `now`, if any: from digest_hour
    local time on. A target created after today's digest time waits for tomorrow's."""
    zone = ZoneInfo(target.timezone)
    local = now.astimezone(zone)
    at = datetime.combine(local.date(), dt.time(target.digest_hour), tzinfo=zone)
    if local < at or target.created_at > at:
        return None
    return local.date()


async def send_digest(
    session: AsyncSession, target: Any, local_date: dt.date, now: datetime, settings: NotifySettings
) -> bool:
    """Compose and queue one target's digest for one local date; False if already claimed."""
    claimed = await repo.claim_digest(
        session,
        {
            "target_id": target.id,
            "local_date": local_date,
            "tenant_id": target.tenant_id,
            "created_at": now,
            "open_count": 0,
            "held_count": 0,
        },
    )
    if not claimed:
        return False
    rows, total = await repo.open_findings(
        session, target.tenant_id, target.owner, target.store_ids, settings.digest_max_findings
    )
    held = await repo.held_alerts(session, target.id)
    held_ids = {h.finding_id for h in held}
    findings = [{**_row_state(r), "held": r.finding_id in held_ids} for r in rows]
    delivery_id = None
    if findings or held or settings.send_empty_digest:
        doc = {
            "kind": "digest",
            "owner": target.owner,
            "locale": target.locale,
            "date": local_date.isoformat(),
            "timezone": target.timezone,
            "findings": findings,
            "open_count": total,
            "held": [
                {
                    "finding_id": h.finding_id,
                    "severity": h.severity,
                    "held_at": h.created_at.isoformat(),
                    "store_id": h.store_id,
                    "date": h.date.isoformat() if h.date else None,
                    "title": h.title,
                    "status": h.status,
                }
                for h in held
            ],
            "held_count": len(held),
        }
        delivery_id = await enqueue(session, target, "digest", doc, now)
    await repo.mark_digested(session, [h.id for h in held], local_date, delivery_id)
    await repo.update_digest(
        session,
        target.id,
        local_date,
        {"delivery_id": delivery_id, "open_count": total, "held_count": len(held)},
    )
    return True
