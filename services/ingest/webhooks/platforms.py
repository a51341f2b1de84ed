"""Pure core of the webhooks: signature checks over the raw body, and payload parsing.

Two steps, so that no personal data is ever written: `minimize` runs when a delivery is
received and keeps only what aggregation needs (the buyer reduced to a keyed hash); `normalize`
runs in the background processor and turns that into order and refund facts on the store's local
date and channel. Nothing here touches the database or the clock (the caller passes `now`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from shared.jsonguard import MAX_DATE, MIN_DATE, SUPPORTED_DATES

SHOPIFY = "shopify"
WOOCOMMERCE = "woocommerce"
GENERIC = "generic"
# Stores of these platforms deliver through the generic (Standard Webhooks) endpoint.
GENERIC_PLATFORMS = frozenset({"generic", "bigcommerce", "taobao", "jd", "shopee"})

ORDER_TOPICS = {
    SHOPIFY: {"orders/create", "orders/updated", "orders/cancelled", "orders/paid"},
    WOOCOMMERCE: {"order.created", "order.updated", "order.deleted", "order.restored"},
    GENERIC: {"order.created", "order.updated"},
}
REFUND_TOPICS = {SHOPIFY: {"refunds/create"}, WOOCOMMERCE: set(), GENERIC: {"refund.created"}}
PRIVACY_TOPICS = {"customers/data_request", "customers/redact", "shop/redact"}


class SignatureError(Exception):
    """The delivery is not signed by the store's secret (or its timestamp is out of range)."""


class PayloadError(Exception):
    """The payload lacks what aggregation needs (a poison delivery)."""


# ---- signatures ------------------------------------------------------------------------------


def hmac_sha256_b64(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def verify_base64_hmac(secret: str, body: bytes, signature: str | None) -> bool:
    """Shopify (X-Shopify-Hmac-Sha256) and WooCommerce (X-WC-Webhook-Signature): base64 of the
    HMAC-SHA256 of the raw body, keyed by the secret as text. Compared in constant time."""
    if not signature or not secret:
        return False
    expected = hmac_sha256_b64(secret.encode(), body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def standard_webhooks_key(secret: str) -> bytes:
    """A `whsec_` secret is the base64 of the key; anything else is used as raw text."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def standard_webhooks_sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + hmac_sha256_b64(standard_webhooks_key(secret), signed)


def verify_standard_webhooks(
    secret: str,
    body: bytes,
    msg_id: str | None,
    timestamp: str | None,
    signatures: str | None,
    *,
    now: float,
    tolerance_seconds: int,
) -> None:
    """Standard Webhooks: `webhook-signature` is a space-separated list of `v1,<base64>`; any
    match over "{id}.{timestamp}.{body}" with the base64-decoded secret passes. A timestamp more
    than `tolerance_seconds` away from now (either way) is refused: it bounds replays."""
    if not msg_id or not timestamp or not signatures or not secret:
        raise SignatureError("webhook-id, webhook-timestamp and webhook-signature are required")
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise SignatureError("webhook-timestamp is not an integer") from exc
    if abs(now - ts) > tolerance_seconds:
        raise SignatureError("webhook-timestamp is too far from the current time")
    expected = standard_webhooks_sign(secret, msg_id, ts, body).encode()
    ok = False
    for candidate in signatures.split(" "):
        # Check every candidate (no early exit), each in constant time.
        if hmac.compare_digest(expected, candidate.strip().encode()):
            ok = True
    if not ok:
        raise SignatureError("no signature matches")


def is_woocommerce_ping(body: bytes, content_type: str | None) -> bool:
    """WooCommerce checks a new webhook's URL with a form-encoded `webhook_id=<n>` POST."""
    if content_type and "json" in content_type.lower():
        return False
    form = parse_qs(body.decode("latin-1"), keep_blank_values=True)
    return set(form) == {"webhook_id"}


# ---- buyer keys ------------------------------------------------------------------------------


def buyer_key(secret: str, kind: str, value: str) -> str:
    """A keyed hash of the customer: the same customer gives the same key in one store, and
    without the store's secret the key cannot be tied back to an id or an e-mail."""
    norm = value.strip().lower() if kind == "email" else value.strip()
    return hmac.new(secret.encode(), f"{kind}:{norm}".encode(), hashlib.sha256).hexdigest()


def _buyer_key_of(secret: str, customer_id: Any, email: Any, order_id: Any) -> str:
    if customer_id not in (None, "", 0, "0"):
        return buyer_key(secret, "customer", str(customer_id))
    if isinstance(email, str) and email.strip():
        return buyer_key(secret, "email", email)
    # A guest without any identity: the order is its own buyer.
    return buyer_key(secret, "order", str(order_id))


def customer_keys(secret: str, customer: dict[str, Any]) -> list[str]:
    """Every key a customer may have been counted under (by id, by e-mail)."""
    keys = []
    if customer.get("id") not in (None, ""):
        keys.append(buyer_key(secret, "customer", str(customer["id"])))
    if isinstance(customer.get("email"), str) and customer["email"].strip():
        keys.append(buyer_key(secret, "email", customer["email"]))
    return keys


# ---- channels --------------------------------------------------------------------------------

SEARCH_ENGINES = frozenset(
    {
        "google",
        "bing",
        "baidu",
        "yahoo",
        "duckduckgo",
        "yandex",
        "naver",
        "sogou",
        "so",
        "360",
        "ecosia",
        "seznam",
        "daum",
    }
)
SOCIAL = frozenset(
    {
        "facebook",
        "fb",
        "instagram",
        "ig",
        "tiktok",
        "twitter",
        "x",
        "t",
        "pinterest",
        "linkedin",
        "youtube",
        "snapchat",
        "reddit",
        "weibo",
        "wechat",
        "douyin",
        "xiaohongshu",
        "line",
        "threads",
        "whatsapp",
    }
)
EMAIL_SOURCES = frozenset(
    {"email", "newsletter", "klaviyo", "mailchimp", "omnisend", "sms", "attentive", "postscript"}
)
SEARCH_PAID_MEDIUMS = frozenset({"cpc", "ppc", "paid_search", "paidsearch", "sem", "search_ads"})
DISPLAY_MEDIUMS = frozenset(
    {"display", "banner", "cpm", "expandable", "interstitial", "programmatic", "native", "video"}
)
PAID_MEDIUMS = SEARCH_PAID_MEDIUMS | DISPLAY_MEDIUMS | {"paid", "paid_social", "paidsocial", "ads"}
EMAIL_MEDIUMS = frozenset({"email", "e-mail", "e_mail", "newsletter", "sms", "mms", "text"})
SOCIAL_MEDIUMS = frozenset(
    {"social", "social-network", "social_network", "social-media", "social_media", "sm"}
)
ORGANIC_MEDIUMS = frozenset({"organic"})
DIRECT_VALUES = frozenset({"(direct)", "direct", "(none)", "none"})
# Shopify `source_name` values that are not the online store: staff, point of sale, apps.
SHOPIFY_OFFLINE_SOURCES = frozenset({"pos", "shopify_draft_order", "iphone", "android"})


def _site_name(value: str) -> str:
    """'www.google.co.uk' / 'https://l.facebook.com/x' / 'google' -> 'google' / 'facebook'."""
    v = value.strip().lower()
    if "//" in v:
        v = urlsplit(v).hostname or ""
    parts = [p for p in v.split(".") if p not in ("www", "m", "l", "lm", "com", "co", "")]
    if not parts:
        return v
    if len(parts) >= 2 and len(parts[-1]) <= 3:
        parts = parts[:-1]
    return parts[-1]


def channel_from_utm(source: str | None, medium: str | None) -> str | None:
    """The channel a utm_source / utm_medium pair stands for (None: no UTM at all).

    Order of the rules (first match wins): e-mail/SMS; a paid medium is paid display when the
    source is a social network or the medium a display one (paid social is a paid placement
    outside search), paid search when the medium is a search one (cpc, ppc...) or the source a
    search engine, paid display otherwise; then social; organic search; direct; other."""
    s = _site_name(source) if source else ""
    m = (medium or "").strip().lower()
    if not s and not m:
        return None
    if m in EMAIL_MEDIUMS or s in EMAIL_SOURCES:
        return "email_sms"
    if m in PAID_MEDIUMS:
        if s in SOCIAL or m in DISPLAY_MEDIUMS:
            return "paid_display"
        if m in SEARCH_PAID_MEDIUMS or s in SEARCH_ENGINES:
            return "paid_search"
        return "paid_display"
    if m in SOCIAL_MEDIUMS or s in SOCIAL:
        return "social"
    if m in ORGANIC_MEDIUMS or s in SEARCH_ENGINES:
        return "search"
    if s in DIRECT_VALUES or m in DIRECT_VALUES:
        return "direct"
    return "other"


def channel_from_referrer(referrer: str | None) -> str:
    """No UTM: the referring site decides; none at all is direct."""
    if not referrer or not referrer.strip():
        return "direct"
    site = _site_name(referrer)
    if site in SEARCH_ENGINES:
        return "search"
    if site in SOCIAL:
        return "social"
    if site in EMAIL_SOURCES or site in {"mail", "outlook", "gmail"}:
        return "email_sms"
    return "other"


def _utm_of(url: str | None) -> tuple[str | None, str | None]:
    if not url:
        return None, None
    query = parse_qs(urlsplit(url).query)
    src = query.get("utm_source", [None])[0]
    med = query.get("utm_medium", [None])[0]
    return src, med


def shopify_channel(source_name: Any, landing_site: Any, referring_site: Any) -> str:
    src = str(source_name or "").strip().lower()
    if src in SHOPIFY_OFFLINE_SOURCES:
        return "other"
    utm = channel_from_utm(*_utm_of(landing_site if isinstance(landing_site, str) else None))
    if utm is not None:
        return utm
    if src in ("", "web"):
        return channel_from_referrer(referring_site if isinstance(referring_site, str) else None)
    # A sales-channel app named after a social network (facebook, instagram, tiktok...).
    if _site_name(src) in SOCIAL:
        return "social"
    return "other"


def woocommerce_channel(meta: dict[str, str], created_via: Any) -> str:
    """WooCommerce's order attribution (8.5+) stores `_wc_order_attribution_*` meta."""
    source_type = meta.get("_wc_order_attribution_source_type", "").lower()
    source = meta.get("_wc_order_attribution_utm_source")
    medium = meta.get("_wc_order_attribution_utm_medium")
    if source_type == "typein":
        return "direct"
    if source_type == "organic":
        return "search"
    if source_type in ("admin", "mobile_app", "pos"):
        return "other"
    if source_type == "referral":
        return channel_from_referrer(source)
    utm = channel_from_utm(source, medium)
    if utm is not None:
        return utm
    if str(created_via or "") in ("admin", "rest-api"):
        return "other"
    return "direct"


# ---- minimize (at receive time) ----------------------------------------------------------------


def _money(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    return str(value)


def _shop_money(obj: dict[str, Any], key: str) -> str | None:
    """Shopify amounts in the shop's currency (`*_set.shop_money`), else the plain field."""
    money = obj.get(f"{key}_set")
    if isinstance(money, dict) and isinstance(money.get("shop_money"), dict):
        return _money(money["shop_money"].get("amount"))
    return _money(obj.get(key))


def _shopify_refund(r: dict[str, Any]) -> dict[str, Any]:
    amount = 0.0
    found = False
    for t in r.get("transactions") or []:
        if isinstance(t, dict) and t.get("kind") == "refund" and t.get("status") == "success":
            amount += float(_shop_money(t, "amount") or 0)
            found = True
    if not found:
        for li in r.get("refund_line_items") or []:
            if isinstance(li, dict):
                amount += float(_shop_money(li, "subtotal") or 0)
                amount += float(_shop_money(li, "total_tax") or 0)
    return {
        "refund_id": _id(r.get("id")),
        "order_id": _id(r.get("order_id")),
        "created_at": r.get("created_at") or r.get("processed_at"),
        "amount": round(amount, 6),
    }


def _id(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def _minimize_shopify(topic: str, doc: dict[str, Any], secret: str) -> dict[str, Any]:
    if topic in ORDER_TOPICS[SHOPIFY]:
        customer = doc.get("customer") if isinstance(doc.get("customer"), dict) else {}
        return {
            "kind": "order",
            "order_id": _id(doc.get("id")),
            "created_at": doc.get("created_at"),
            "total": _shop_money(doc, "total_price"),
            "currency": doc.get("currency"),
            "buyer_key": _buyer_key_of(
                secret,
                customer.get("id") if customer else None,
                doc.get("email") or (customer or {}).get("email"),
                doc.get("id"),
            ),
            "channel": shopify_channel(
                doc.get("source_name"), doc.get("landing_site"), doc.get("referring_site")
            ),
            "cancelled": bool(
                doc.get("cancelled_at")
                or doc.get("financial_status") == "voided"
                or doc.get("test") is True
            ),
            # The platform's own clock of this order state: an older state arriving late
            # (webhooks are not delivered in order) must not overwrite a newer one.
            "updated_at": doc.get("updated_at"),
            "refunds": [
                _shopify_refund(r) for r in doc.get("refunds") or [] if isinstance(r, dict)
            ],
        }
    if topic in REFUND_TOPICS[SHOPIFY]:
        return {"kind": "refund", **_shopify_refund(doc)}
    if topic in PRIVACY_TOPICS:
        customer = doc.get("customer") if isinstance(doc.get("customer"), dict) else {}
        orders = doc.get("orders_to_redact") or doc.get("orders_requested") or []
        # Only keyed hashes and order ids: the request itself must not store who asked.
        return {
            "kind": topic,
            "buyer_keys": customer_keys(secret, customer or {}),
            "order_ids": [str(o) for o in orders if o is not None],
        }
    return {"kind": "ignored"}


def _minimize_woocommerce(topic: str, doc: dict[str, Any], secret: str) -> dict[str, Any]:
    if topic not in ORDER_TOPICS[WOOCOMMERCE]:
        return {"kind": "ignored"}
    billing = doc.get("billing") if isinstance(doc.get("billing"), dict) else {}
    meta = {
        str(m.get("key")): str(m.get("value"))
        for m in doc.get("meta_data") or []
        if isinstance(m, dict) and str(m.get("key", "")).startswith("_wc_order_attribution_")
    }
    status = str(doc.get("status") or "")
    created = doc.get("date_created_gmt")
    if isinstance(created, str) and created and not created.endswith("Z") and "+" not in created:
        created += "+00:00"  # WooCommerce's *_gmt fields are UTC without an offset
    modified = doc.get("date_modified_gmt")
    if (
        isinstance(modified, str)
        and modified
        and not modified.endswith("Z")
        and "+" not in modified
    ):
        modified += "+00:00"
    return {
        "kind": "order",
        "order_id": _id(doc.get("id")),
        "created_at": created,
        "total": _money(doc.get("total")),
        "currency": doc.get("currency"),
        "buyer_key": _buyer_key_of(
            secret, doc.get("customer_id"), (billing or {}).get("email"), doc.get("id")
        ),
        "channel": woocommerce_channel(meta, doc.get("created_via")),
        "cancelled": topic == "order.deleted"
        or status in ("cancelled", "failed", "pending", "checkout-draft", "trash"),
        "updated_at": modified,
        # WooCommerce's refunds carry no date: they land on the day they are first seen.
        "refunds": [
            {
                "refund_id": _id(r.get("id")),
                "order_id": _id(doc.get("id")),
                "created_at": modified,
                "amount": abs(float(r.get("total") or 0)),
            }
            for r in doc.get("refunds") or []
            if isinstance(r, dict)
        ],
    }


def _minimize_generic(topic: str, doc: dict[str, Any], secret: str) -> dict[str, Any]:
    data = doc.get("data") if isinstance(doc.get("data"), dict) else {}
    data = data or {}
    if topic in ORDER_TOPICS[GENERIC]:
        channel = data.get("channel")
        if channel is None:
            utm = channel_from_utm(data.get("utm_source"), data.get("utm_medium"))
            if utm is None:
                utm = channel_from_utm(*_utm_of(data.get("landing_site")))
            channel = utm or channel_from_referrer(data.get("referring_site"))
        return {
            "kind": "order",
            "order_id": _id(data.get("id")),
            "created_at": data.get("created_at"),
            "total": _money(data.get("total")),
            "currency": data.get("currency"),
            "buyer_key": _buyer_key_of(
                secret, data.get("customer_id"), data.get("email"), data.get("id")
            ),
            "channel": channel,
            "cancelled": bool(data.get("cancelled")),
            "updated_at": data.get("updated_at"),
            "refunds": [
                {
                    "refund_id": _id(r.get("id")),
                    "order_id": _id(data.get("id")),
                    "created_at": r.get("created_at"),
                    "amount": r.get("amount"),
                }
                for r in data.get("refunds") or []
                if isinstance(r, dict)
            ],
        }
    if topic in REFUND_TOPICS[GENERIC]:
        return {
            "kind": "refund",
            "refund_id": _id(data.get("id")),
            "order_id": _id(data.get("order_id")),
            "created_at": data.get("created_at"),
            "amount": data.get("amount"),
        }
    return {"kind": "ignored"}


def generic_topic(doc: Any) -> str:
    return str(doc.get("type") or "") if isinstance(doc, dict) else ""


def minimize(platform: str, topic: str, doc: Any, secret: str) -> dict[str, Any]:
    """What is stored of a delivery: the fields aggregation needs, the buyer as a keyed hash.
    Names, addresses, e-mails, phones and line items are dropped here, before anything is
    written. Tolerant: checking the fields is `normalize`'s job, in the processor."""
    if not isinstance(doc, dict):
        return {"kind": "invalid", "reason": "the payload is not a JSON object"}
    if platform == SHOPIFY:
        return _minimize_shopify(topic, doc, secret)
    if platform == WOOCOMMERCE:
        return _minimize_woocommerce(topic, doc, secret)
    return _minimize_generic(topic, doc, secret)


# ---- normalize (in the processor) --------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    order_id: str
    local_date: date
    channel: str
    gmv: float
    currency: str
    buyer_key: str
    cancelled: bool
    # When the platform last changed the order (UTC), if the payload says: orders are kept at
    # their newest state, whatever order the deliveries arrive in.
    version: datetime | None = None


@dataclass(frozen=True)
class Refund:
    refund_id: str
    order_id: str
    local_date: date
    amount: float


@dataclass
class Parsed:
    orders: list[Order] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)


def parse_instant(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise PayloadError("missing timestamp")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PayloadError(f"bad timestamp {value!r}") from exc
    if ts.tzinfo is None:
        raise PayloadError(f"timestamp {value!r} has no offset")
    # Outside the supported dates, shifting to UTC or the store's timezone can overflow.
    if not MIN_DATE <= ts.date() <= MAX_DATE:
        raise PayloadError(f"timestamp {value!r} is outside {SUPPORTED_DATES}")
    return ts.astimezone(UTC)


def local_date(value: Any, tz: str) -> date:
    """The calendar day an instant falls on in the store's timezone (its business day)."""
    return parse_instant(value).astimezone(ZoneInfo(tz)).date()


def _version(value: Any) -> datetime | None:
    """The order state's timestamp, or None when absent or unusable (then arrival order
    decides, as for platforms that send none)."""
    if value in (None, ""):
        return None
    try:
        return parse_instant(value).astimezone(UTC)
    except PayloadError:
        return None


def is_older(new: Order, old: Order | None = None, *, than: datetime | None = None) -> bool:
    """True if `new` is a strictly older state than `old` (or than the timestamp `than`); an
    unknown timestamp on either side is never older (arrival order decides)."""
    ref = old.version if old is not None else than
    return new.version is not None and ref is not None and new.version < ref


def _amount(value: Any, what: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{what} is not a number: {value!r}") from exc
    if not math.isfinite(x) or x < 0:
        raise PayloadError(f"{what} must be a finite non-negative number")
    return x


CHANNELS = frozenset(
    {
        "search",
        "recommendation",
        "paid_search",
        "paid_display",
        "social",
        "live",
        "direct",
        "email_sms",
        "other",
    }
)


def normalize(minimized: dict[str, Any], tz: str, store_currency: str) -> Parsed:
    """Orders and refunds of a minimized delivery, dated on the store's local calendar."""
    kind = minimized.get("kind")
    out = Parsed()
    if kind == "order":
        order_id = minimized.get("order_id")
        if not order_id:
            raise PayloadError("order without an id")
        channel = str(minimized.get("channel") or "other")
        if channel not in CHANNELS:
            channel = "other"
        out.orders.append(
            Order(
                order_id=str(order_id),
                local_date=local_date(minimized.get("created_at"), tz),
                channel=channel,
                gmv=_amount(minimized.get("total"), "order total"),
                currency=str(minimized.get("currency") or store_currency)[:3].upper(),
                buyer_key=str(minimized.get("buyer_key")),
                cancelled=bool(minimized.get("cancelled")),
                version=_version(minimized.get("updated_at")),
            )
        )
        refunds = minimized.get("refunds") or []
    elif kind == "refund":
        refunds = [minimized]
    elif kind == "invalid":
        raise PayloadError(str(minimized.get("reason")))
    else:
        refunds = []
    for r in refunds:
        if not r.get("refund_id") or not r.get("order_id"):
            raise PayloadError("refund without an id or an order id")
        out.refunds.append(
            Refund(
                refund_id=str(r["refund_id"]),
                order_id=str(r["order_id"]),
                local_date=local_date(r.get("created_at"), tz),
                amount=_amount(r.get("amount"), "refund amount"),
            )
        )
    return out


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)
