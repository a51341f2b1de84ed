"""The pure core of the webhooks: signatures (against published vectors and openssl), channel
attribution, and what is kept of a payload."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import date
from pathlib import Path

import pytest

from services.ingest.webhooks import platforms as p

PAYLOADS = Path(__file__).parent / "webhook_payloads"

# The Standard Webhooks specification's published vector (standard-webhooks reference
# libraries, test_sign_function), also the Svix libraries' vector.
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def openssl_b64_hmac(secret: str, body: bytes) -> str:
    """An independent signer: the openssl CLI, not the project's code."""
    out = subprocess.run(
        ["sh", "-c", 'openssl dgst -sha256 -hmac "$SECRET" -binary | base64'],
        input=body,
        capture_output=True,
        check=True,
        env={"SECRET": secret, "PATH": "/usr/bin:/bin"},
    )
    return out.stdout.decode().strip()


def test_standard_webhooks_published_vector() -> None:
    assert p.standard_webhooks_sign(SW_SECRET, SW_ID, SW_TS, SW_BODY) == SW_SIG
    p.verify_standard_webhooks(
        SW_SECRET, SW_BODY, SW_ID, str(SW_TS), SW_SIG, now=SW_TS, tolerance_seconds=300
    )


def test_standard_webhooks_any_of_several_signatures_and_version_prefix() -> None:
    many = f"v1,bm9wZQ== v2,{SW_SIG[3:]} {SW_SIG} v1a,xyz"
    p.verify_standard_webhooks(
        SW_SECRET, SW_BODY, SW_ID, str(SW_TS), many, now=SW_TS, tolerance_seconds=300
    )
    with pytest.raises(p.SignatureError):
        p.verify_standard_webhooks(
            SW_SECRET,
            SW_BODY,
            SW_ID,
            str(SW_TS),
            f"v2,{SW_SIG[3:]}",
            now=SW_TS,
            tolerance_seconds=300,
        )


@pytest.mark.parametrize("skew", [-301, 301, 10_000])
def test_standard_webhooks_timestamp_tolerance_with_an_injected_clock(skew: int) -> None:
    # The clock is a parameter: the vector's own 2021 timestamp is "now" here.
    p.verify_standard_webhooks(
        SW_SECRET, SW_BODY, SW_ID, str(SW_TS), SW_SIG, now=SW_TS + 299, tolerance_seconds=300
    )
    with pytest.raises(p.SignatureError, match="too far"):
        p.verify_standard_webhooks(
            SW_SECRET, SW_BODY, SW_ID, str(SW_TS), SW_SIG, now=SW_TS + skew, tolerance_seconds=300
        )


@pytest.mark.parametrize(
    ("body", "msg_id", "ts", "sig"),
    [
        (SW_BODY + b" ", SW_ID, str(SW_TS), SW_SIG),  # body changed by one byte
        (SW_BODY, "msg_other", str(SW_TS), SW_SIG),
        (SW_BODY, SW_ID, str(SW_TS), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="),
        (SW_BODY, SW_ID, "soon", SW_SIG),
        (SW_BODY, None, str(SW_TS), SW_SIG),
        (SW_BODY, SW_ID, str(SW_TS), None),
    ],
)
def test_standard_webhooks_refuses(
    body: bytes, msg_id: str | None, ts: str, sig: str | None
) -> None:
    with pytest.raises(p.SignatureError):
        p.verify_standard_webhooks(
            SW_SECRET, body, msg_id, ts, sig, now=SW_TS, tolerance_seconds=300
        )


def test_standard_webhooks_signature_matches_openssl_with_the_decoded_key() -> None:
    key_hex = base64.b64decode(SW_SECRET.removeprefix("whsec_")).hex()
    signed = f"{SW_ID}.{SW_TS}.".encode() + SW_BODY
    out = subprocess.run(
        ["sh", "-c", f"openssl dgst -sha256 -mac HMAC -macopt hexkey:{key_hex} -binary | base64"],
        input=signed,
        capture_output=True,
        check=True,
    )
    assert "v1," + out.stdout.decode().strip() == SW_SIG


@pytest.mark.parametrize("name", ["shopify_order_create.json", "woocommerce_order_created.json"])
def test_base64_hmac_against_openssl_over_the_raw_bytes(name: str) -> None:
    body = (PAYLOADS / name).read_bytes()
    secret = "shpss_5f3e0c2a9d7b41e8"
    sig = openssl_b64_hmac(secret, body)
    assert p.verify_base64_hmac(secret, body, sig)
    # Re-serialising the JSON changes the bytes: verification must be over the raw body.
    assert not p.verify_base64_hmac(secret, json.dumps(json.loads(body)).encode() + b" ", sig)
    assert not p.verify_base64_hmac("other-secret", body, sig)
    assert not p.verify_base64_hmac(secret, body, None)


@pytest.mark.parametrize(
    ("source", "medium", "channel"),
    [
        ("google", "cpc", "paid_search"),
        ("bing", "paid", "paid_search"),
        ("baidu", "ppc", "paid_search"),
        ("google", "organic", "search"),
        ("www.google.co.uk", None, "search"),
        ("facebook", "social", "social"),
        ("instagram", None, "social"),
        ("facebook", "cpc", "paid_display"),
        ("facebook", "paid_social", "paid_display"),
        ("tiktok", "paid", "paid_display"),
        ("criteo", "display", "paid_display"),
        ("dv360", "cpm", "paid_display"),
        ("newsletter", "email", "email_sms"),
        ("klaviyo", None, "email_sms"),
        ("attentive", "sms", "email_sms"),
        ("(direct)", "(none)", "direct"),
        ("partner-blog", "referral", "other"),
        (None, None, None),
    ],
)
def test_channel_from_utm(source: str | None, medium: str | None, channel: str | None) -> None:
    assert p.channel_from_utm(source, medium) == channel


def test_shopify_channel_rules() -> None:
    assert p.shopify_channel("web", "/?utm_source=google&utm_medium=cpc", None) == "paid_search"
    assert p.shopify_channel("web", "/products/x", "https://www.bing.com/") == "search"
    assert p.shopify_channel("web", "/", "https://l.facebook.com/") == "social"
    assert p.shopify_channel("web", "/", "") == "direct"
    assert p.shopify_channel("web", None, "https://blog.example.com/") == "other"
    assert p.shopify_channel("pos", "/?utm_source=google&utm_medium=cpc", None) == "other"
    assert p.shopify_channel("instagram", None, None) == "social"
    assert p.shopify_channel("580111", None, None) == "other"


def test_minimize_keeps_no_personal_data_and_a_stable_buyer_key() -> None:
    secret = "s3cret"
    doc = json.loads((PAYLOADS / "shopify_order_create.json").read_bytes())
    kept = p.dumps(p.minimize("shopify", "orders/create", doc, secret))
    for pii in (
        "jon",
        "doe",
        "example.com",
        "1 infinite loop",
        "cupertino",
        "5551212",
        "203.0.113",
    ):
        assert pii not in kept.lower()
    assert "115310627314723954" not in kept  # the customer id is hashed too
    m = json.loads(kept)
    assert m["buyer_key"] == p.buyer_key(secret, "customer", "115310627314723954")
    assert m["buyer_key"] in p.customer_keys(secret, doc["customer"])
    assert m["channel"] == "paid_search" and m["total"] == "100.00"
    woo = json.loads((PAYLOADS / "woocommerce_order_created.json").read_bytes())
    kept = p.dumps(p.minimize("woocommerce", "order.created", woo, secret))
    for pii in ("alice", "liddell", "969 market", "555", "198.51.100"):
        assert pii not in kept.lower()
    assert json.loads(kept)["channel"] == "email_sms"


def test_normalize_dates_on_the_store_calendar() -> None:
    refund = {
        "kind": "refund",
        "refund_id": "1",
        "order_id": "2",
        "created_at": "2026-11-10T17:30:00Z",
        "amount": "30.00",
    }
    assert p.normalize(refund, "Asia/Shanghai", "CNY").refunds[0].local_date == date(2026, 11, 11)
    assert p.normalize(refund, "America/New_York", "USD").refunds[0].local_date == date(
        2026, 11, 10
    )
    woo = json.loads((PAYLOADS / "woocommerce_order_created.json").read_bytes())
    order = p.normalize(
        p.minimize("woocommerce", "order.created", woo, "k"), "America/New_York", "USD"
    )
    # date_created_gmt 2026-11-11T02:30 UTC is 21:30 on the 10th in New York.
    assert order.orders[0].local_date == date(2026, 11, 10)
    assert order.orders[0].gmv == 59.9


@pytest.mark.parametrize(
    "doc",
    [
        {"kind": "order", "order_id": "1", "created_at": None, "total": "1"},
        {"kind": "order", "order_id": "1", "created_at": "2026-11-10T00:00:00", "total": "1"},
        {"kind": "order", "order_id": "1", "created_at": "2026-11-10T00:00:00Z", "total": "x"},
        {"kind": "order", "order_id": "1", "created_at": "2026-11-10T00:00:00Z", "total": "-5"},
        {"kind": "order", "order_id": None, "created_at": "2026-11-10T00:00:00Z", "total": "1"},
        {"kind": "refund", "refund_id": "1", "order_id": None, "created_at": "2026-11-10T00:00Z"},
        {"kind": "invalid", "reason": "not an object"},
    ],
)
def test_normalize_refuses_what_it_cannot_aggregate(doc: dict[str, object]) -> None:
    with pytest.raises(p.PayloadError):
        p.normalize(doc, "UTC", "USD")


def test_woocommerce_ping_detection() -> None:
    assert p.is_woocommerce_ping(b"webhook_id=12", "application/x-www-form-urlencoded")
    assert not p.is_woocommerce_ping(b'{"webhook_id": 12}', "application/json")
    assert not p.is_woocommerce_ping(b"webhook_id=12&x=1", "application/x-www-form-urlencoded")
