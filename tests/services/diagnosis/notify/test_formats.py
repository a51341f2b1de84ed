"""The pure core of notifications: the vendors' shapes and size limits, the signatures (checked
against openssl and against the vendors' formulas written out here), the answer classification
and the retry schedule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.diagnosis.notify import formats as f
from services.diagnosis.notify.delivery import parse_retry_after, retry_delay
from services.diagnosis.notify.service import check_url, mask_url
from services.diagnosis.notify.settings import NotifySettings
from shared.errors import ValidationFailed

NOW = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)

# The Standard Webhooks specification's published vector (its reference libraries' test).
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def finding(i: int = 0, **over: Any) -> dict[str, Any]:
    base = {
        "finding_id": str(uuid.UUID(int=i + 1)),
        "store_id": f"shop-{i}",
        "date": "2026-11-22",
        "code": "ctr_drop",
        "severity": "high",
        "metric": "ctr",
        "dimensions": {"channel": "paid_search"},
        "owner": "designer",
        "title": f"Paid-search click-through down 20.9% (#{i})",
        "action": "Refresh the main image and the ad creative of the top products.",
        "status": "open",
        "expected_gmv_impact": -1850.0 - i,
        "confidence": 0.82,
    }
    base.update(over)
    return base


def alert_doc(**over: Any) -> dict[str, Any]:
    return {"kind": "alert", "owner": "designer", "locale": "en", "finding": finding(**over)}


def digest_doc(n: int, *, held: int = 0, long: int = 0, locale: str = "en") -> dict[str, Any]:
    items = [finding(i, title=("x" * long) or f"Finding number {i}") for i in range(n)]
    return {
        "kind": "digest",
        "owner": "designer",
        "locale": locale,
        "date": "2026-11-23",
        "timezone": "Asia/Shanghai",
        "findings": items,
        "open_count": n,
        "held": [],
        "held_count": held,
    }


def openssl_hmac_b64(key: bytes, message: bytes) -> str:
    """An independent HMAC-SHA256: the openssl CLI with the key given in hex."""
    out = subprocess.run(
        ["sh", "-c", f"openssl dgst -sha256 -mac HMAC -macopt hexkey:{key.hex()} -binary | base64"],
        input=message,
        capture_output=True,
        check=True,
    )
    return out.stdout.decode().strip()


# --- Standard Webhooks ---------------------------------------------------------------------------


def test_standard_webhooks_signer_matches_the_published_vector() -> None:
    assert f.standard_webhooks_signature(SW_SECRET, SW_ID, SW_TS, SW_BODY) == SW_SIG


def test_standard_request_is_signed_over_the_exact_bytes_sent_as_openssl_computes() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    req = f.build_request(
        "standard", "https://example.com/hook", secret, alert_doc(), message_id="msg_1", now=NOW
    )
    h = req.headers
    assert h["webhook-id"] == "msg_1"
    assert h["webhook-timestamp"] == str(int(NOW.timestamp()))
    signed = f"msg_1.{h['webhook-timestamp']}.".encode() + req.body
    assert h["webhook-signature"] == "v1," + openssl_hmac_b64(b"k" * 32, signed)
    body = json.loads(req.body)
    assert body["type"] == "storeops.finding_alert"
    assert body["timestamp"] == "2026-11-23T01:30:00Z"
    assert body["data"]["finding"]["severity"] == "high"
    assert req.url == "https://example.com/hook"


# --- Feishu --------------------------------------------------------------------------------------


def test_feishu_sign_matches_the_vendor_formula_and_openssl() -> None:
    secret, ts = "c2VjcmV0LWZlaXNodQ", 1732320000
    # Feishu's doc: HmacSHA256 keyed with timestamp + "\n" + secret over an empty message.
    string_to_sign = f"{ts}\n{secret}".encode()
    by_hand = base64.b64encode(hmac.new(string_to_sign, b"", hashlib.sha256).digest()).decode()
    assert f.feishu_sign(ts, secret) == by_hand == openssl_hmac_b64(string_to_sign, b"")
    req = f.build_request(
        "feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/abc", secret, alert_doc(),
        message_id="m", now=NOW,
    )  # fmt: skip
    body = json.loads(req.body)
    assert body["timestamp"] == str(int(NOW.timestamp()))
    assert body["sign"] == f.feishu_sign(int(NOW.timestamp()), secret)
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"]["title"]["tag"] == "plain_text"
    assert card["header"]["template"] == "orange"
    assert card["elements"][0]["text"]["tag"] == "lark_md"
    assert "Refresh the main image" in card["elements"][0]["text"]["content"]


def test_feishu_unsigned_without_secret() -> None:
    body = f.feishu_message(alert_doc())
    assert "sign" not in body and "timestamp" not in body


def test_feishu_digest_stays_under_20_kb_and_counts_the_rest() -> None:
    doc = digest_doc(300, long=300)
    body = f.feishu_message(doc, "s", 1)
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(raw) <= f.FEISHU_BYTES_MAX
    shown = sum(1 for e in body["card"]["elements"] if e["tag"] == "div") - 1  # minus the intro
    assert 0 < shown < 300
    note = body["card"]["elements"][-1]
    assert note["tag"] == "note"
    assert f"and {300 - shown} more" in note["elements"][0]["content"]


# --- DingTalk ------------------------------------------------------------------------------------


def test_dingtalk_signed_url_matches_the_vendor_formula_and_openssl() -> None:
    secret = "SEC" + "a1b2c3d4" * 8
    ms = int(NOW.timestamp() * 1000)
    # DingTalk's doc: hmac_sha256(key=secret, msg=timestamp + "\n" + secret), base64, urlencode.
    expected = openssl_hmac_b64(secret.encode(), f"{ms}\n{secret}".encode())
    url = "https://oapi.dingtalk.com/robot/send?access_token=tok123"
    req = f.build_request("dingtalk", url, secret, alert_doc(), message_id="m", now=NOW)
    parts = urllib.parse.urlsplit(req.url)
    query = urllib.parse.parse_qs(parts.query)
    assert query["access_token"] == ["tok123"]
    assert query["timestamp"] == [str(ms)]
    assert query["sign"] == [expected]  # parse_qs undid the URL encoding
    assert f"sign={urllib.parse.quote_plus(expected)}" in req.url
    body = json.loads(req.body)
    assert body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"title", "text"}
    assert "Refresh the main image" in body["markdown"]["text"]


def test_dingtalk_unsigned_url_unchanged() -> None:
    url = "https://oapi.dingtalk.com/robot/send?access_token=t"
    assert f.dingtalk_url(url, None, 1) == url


def test_dingtalk_digest_stays_under_20000_bytes_in_chinese() -> None:
    doc = digest_doc(200, long=200, held=3, locale="zh-CN")
    body = f.dingtalk_message(doc)
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(raw) <= f.DINGTALK_BYTES_MAX
    text = body["markdown"]["text"]
    shown = text.count("**") // 2
    assert 0 < shown < 200
    assert f"还有 {200 - shown} 条" in text
    assert "3 条告警因告警预算被暂缓" in text
    assert body["markdown"]["title"].startswith("美工每日摘要")


# --- Slack ---------------------------------------------------------------------------------------


def test_slack_alert_shape_and_mrkdwn_escaping() -> None:
    msg = f.slack_message(alert_doc(title="CTR <down> & out"))
    assert set(msg) == {"text", "blocks"}
    assert msg["blocks"][0]["type"] == "header"
    assert msg["blocks"][0]["text"]["type"] == "plain_text"
    section = msg["blocks"][1]["text"]
    assert section["type"] == "mrkdwn"
    assert "CTR &lt;down&gt; &amp; out" in section["text"]
    assert "GMV at stake per day -1,850" in section["text"]
    assert "confidence 82%" in section["text"]


def test_slack_digest_within_50_blocks_and_says_how_many_more() -> None:
    msg = f.slack_message(digest_doc(120, held=4))
    blocks = msg["blocks"]
    assert len(blocks) <= f.SLACK_BLOCKS_MAX
    sections = [b for b in blocks if b["type"] == "section"]
    assert len(sections) == f.SLACK_BLOCKS_MAX - 3  # header, intro, tail
    tail = blocks[-1]["elements"][0]["text"]
    assert f"and {120 - len(sections)} more" in tail
    assert "4 alerts held back by the alert budget" in tail
    assert len(msg["text"]) <= f.SLACK_TEXT_MAX


def test_slack_text_limit_with_long_findings() -> None:
    msg = f.slack_message(digest_doc(40, long=5000))
    assert len(msg["text"]) <= f.SLACK_TEXT_MAX
    for b in msg["blocks"]:
        if b["type"] == "section":
            assert len(b["text"]["text"]) <= f.SLACK_SECTION_MAX
    assert "more" in msg["blocks"][-1]["elements"][0]["text"]


def test_digest_ranks_impact_times_confidence() -> None:
    a = finding(1, expected_gmv_impact=-1000.0, confidence=0.9)  # 900
    b = finding(2, expected_gmv_impact=500.0, confidence=1.0)  # 500
    c = finding(3, expected_gmv_impact=None, confidence=0.99)  # 0
    assert sorted([c, b, a], key=f.priority, reverse=True) == [a, b, c]


def test_empty_digest_and_test_message_in_japanese() -> None:
    msg = f.slack_message(digest_doc(0))
    assert "No open findings." in msg["text"]
    test = {"kind": "test", "owner": "logistics", "locale": "ja", "target_id": "t"}
    assert f.dingtalk_message(test)["markdown"]["title"] == "storeops からのテストメッセージ"


# --- answers and retries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "status", "body", "outcome"),
    [
        ("standard", 200, b"", "delivered"),
        ("standard", 204, b"", "delivered"),
        ("slack", 200, b"ok", "delivered"),
        ("standard", 500, b"", "retry"),
        ("standard", 503, b"", "retry"),
        ("standard", 408, b"", "retry"),
        ("slack", 429, b"", "retry"),
        ("standard", 400, b"", "failed"),
        ("slack", 404, b"no_team", "failed"),
        ("standard", 410, b"", "failed"),
        ("standard", 301, b"", "failed"),
        ("dingtalk", 200, b'{"errcode":0,"errmsg":"ok"}', "delivered"),
        ("dingtalk", 200, b'{"errcode":310000,"errmsg":"sign not match"}', "failed"),
        ("dingtalk", 200, b'{"errcode":130101,"errmsg":"send too fast"}', "retry"),
        ("feishu", 200, b'{"code":0,"msg":"success"}', "delivered"),
        ("feishu", 200, b'{"StatusCode":0,"StatusMessage":"success"}', "delivered"),
        ("feishu", 200, b'{"code":19021,"msg":"sign match fail"}', "failed"),
        ("feishu", 200, b'{"code":11232,"msg":"frequency limited"}', "retry"),
    ],
)
def test_classify(fmt: str, status: int, body: bytes, outcome: str) -> None:
    assert f.classify(fmt, status, body)[0] == outcome


def test_retry_schedule_with_jitter_scale_and_retry_after() -> None:
    s = NotifySettings(jitter=0.2)
    assert retry_delay(1, s, rand=lambda: 0.5) == 10.0
    assert retry_delay(2, s, rand=lambda: 0.5) == 30.0
    assert retry_delay(3, s, rand=lambda: 0.0) == pytest.approx(120 * 0.8)
    assert retry_delay(4, s, rand=lambda: 1.0) == pytest.approx(600 * 1.2)
    assert retry_delay(99, s, rand=lambda: 0.5) == 6 * 3600.0  # the last step repeats
    assert retry_delay(1, s, retry_after=90, rand=lambda: 0.5) == 90  # never sooner
    assert retry_delay(1, s, retry_after=10**9, rand=lambda: 0.5) == s.retry_after_max_seconds
    fast = NotifySettings(delay_scale=0.001, jitter=0)
    assert retry_delay(1, fast) == pytest.approx(0.01)


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", NOW) == 120
    later = NOW + timedelta(seconds=45)
    http_date = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(http_date, NOW) == 45
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


# --- target URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.slack.com/services/T0/B0/xyz", True),
        ("http://hooks.slack.com/services/T0/B0/xyz", False),
        ("https://127.0.0.1:9000/hook", False),
        ("https://10.0.0.5/hook", False),
        ("https://169.254.169.254/latest", False),
        ("https://[::1]/hook", False),
        ("https://user:pw@example.com/hook", False),
        ("ftp://example.com/hook", False),
        ("hooks.slack.com/services", False),
    ],
)
def test_check_url_https_only_and_no_internal_addresses(url: str, allowed: bool) -> None:
    settings = NotifySettings()
    if allowed:
        assert check_url(url, settings) == url
    else:
        with pytest.raises(ValidationFailed) as exc:
            check_url(url, settings)
        assert exc.value.errors == [{"loc": ["body", "url"], "msg": exc.value.errors[0]["msg"]}]


def test_loopback_http_only_with_the_setting() -> None:
    loose = NotifySettings(allow_insecure_loopback=True)
    assert check_url("http://127.0.0.1:8080/h", loose) == "http://127.0.0.1:8080/h"
    with pytest.raises(ValidationFailed):
        check_url("http://example.com/h", loose)  # http still only to loopback
    with pytest.raises(ValidationFailed):
        check_url("https://192.168.1.1/h", loose)


def test_mask_url_hides_the_credentials_in_paths_and_queries() -> None:
    assert mask_url("https://hooks.slack.com/services/T0/B0/xyz") == (
        "https://hooks.slack.com/services/…"
    )
    assert mask_url("https://oapi.dingtalk.com/robot/send?access_token=tok") == (
        "https://oapi.dingtalk.com/robot/…"
    )
    assert mask_url("https://example.com/") == "https://example.com/"
