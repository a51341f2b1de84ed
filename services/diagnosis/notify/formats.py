# ruff: noqa: RUF001, E501
"""Outgoing message formats: pure functions from a notification document to an HTTP request.

A notification document (stored with each delivery) is format-neutral JSON:

    {"kind": "alert",  "owner", "locale", "finding": {...}}
    {"kind": "digest", "owner", "locale", "date", "timezone", "findings": [...], "open_count",
                       "held": [...], "held_count"}
    {"kind": "test",   "owner", "locale", "target_id"}

where a finding is the state carried by diagnosis.finding_* events. The request is built at send
time, because every vendor's signature covers a timestamp that must be fresh.

Vendors' documented shapes and limits (checked against their docs, see docs/notifications.md):
- Standard Webhooks: headers webhook-id / webhook-timestamp / webhook-signature
  "v1,<base64 HMAC-SHA256(key=base64-decoded whsec_ secret, msg=f"{id}.{ts}.{body}")>"; body
  {"type", "timestamp", "data"}.
- Slack incoming webhook: {"text", "blocks"}; text up to 40,000 characters, at most 50 blocks,
  a section's text up to 3,000 characters, a header's up to 150; mrkdwn escapes &, < and >.
- Feishu/Lark custom bot: {"msg_type": "interactive", "card": {...}}, with "timestamp" (seconds)
  and "sign" = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b"")) when a secret is set;
  the request body must stay under 20 KB (the card itself under 30 KB): we keep the body under 20 KB.
- DingTalk custom robot: {"msgtype": "markdown", "markdown": {"title", "text"}}, at most 20,000
  bytes; signing appends &timestamp=<ms>&sign=<urlencoded base64 HMAC-SHA256(key=secret,
  msg=f"{timestamp}\\n{secret}")> to the URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Format = Literal["standard", "slack", "feishu", "dingtalk"]
FORMATS: tuple[Format, ...] = ("standard", "slack", "feishu", "dingtalk")

SLACK_TEXT_MAX = 40_000
SLACK_BLOCKS_MAX = 50
SLACK_SECTION_MAX = 3_000
SLACK_HEADER_MAX = 150
DINGTALK_BYTES_MAX = 20_000
FEISHU_BYTES_MAX = 20 * 1024

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
SEVERITY_MARK = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "⚪"}
FEISHU_TEMPLATE = {"critical": "red", "high": "orange", "medium": "yellow", "low": "grey"}

EVENT_TYPES = {
    "alert": "storeops.finding_alert",
    "digest": "storeops.findings_digest",
    "test": "storeops.test",
}

# --- words ---------------------------------------------------------------------------------------

_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "alert": "New {severity} finding for {owner}",
        "digest": "Daily digest for {owner}, {date}",
        "test": "Test message from storeops",
        "test_body": "This target ({owner}) is set up: alerts and digests will arrive here.",
        "open": "{n} open findings, largest expected impact first",
        "none_open": "No open findings.",
        "more": "and {n} more",
        "held": "{n} alerts held back by the alert budget",
        "action": "Action",
        "impact": "GMV at stake per day",
        "confidence": "confidence",
        "store": "Store",
        "date": "Date",
        "low": "low",
        "medium": "medium",
        "high": "high",
        "critical": "critical",
        "promotion": "promotion",
        "designer": "design",
        "merchandising": "merchandising",
        "customer_service": "customer service",
        "logistics": "logistics",
        "operations": "operations",
    },
    "zh-CN": {
        "alert": "{owner}：新的{severity}问题",
        "digest": "{owner}每日摘要（{date}）",
        "test": "storeops 测试消息",
        "test_body": "该通知目标（{owner}）已配置成功：告警与摘要将发送到这里。",
        "open": "{n} 个未解决问题，按预期影响从大到小排列",
        "none_open": "没有未解决的问题。",
        "more": "还有 {n} 条",
        "held": "{n} 条告警因告警预算被暂缓",
        "action": "建议",
        "impact": "每日涉及 GMV",
        "confidence": "置信度",
        "store": "店铺",
        "date": "日期",
        "low": "低",
        "medium": "中",
        "high": "高",
        "critical": "严重",
        "promotion": "推广",
        "designer": "美工",
        "merchandising": "运营/商品",
        "customer_service": "客服",
        "logistics": "物流",
        "operations": "运营",
    },
    "ja": {
        "alert": "{owner}：新しい{severity}の指摘",
        "digest": "{owner} の日次ダイジェスト（{date}）",
        "test": "storeops からのテストメッセージ",
        "test_body": "この通知先（{owner}）は設定済みです。アラートとダイジェストはここに届きます。",
        "open": "未解決の指摘 {n} 件（想定影響の大きい順）",
        "none_open": "未解決の指摘はありません。",
        "more": "ほか {n} 件",
        "held": "アラート上限により保留された通知 {n} 件",
        "action": "対応",
        "impact": "1日あたりの影響GMV",
        "confidence": "確度",
        "store": "店舗",
        "date": "日付",
        "low": "低",
        "medium": "中",
        "high": "高",
        "critical": "重大",
        "promotion": "広告",
        "designer": "デザイン",
        "merchandising": "MD",
        "customer_service": "カスタマーサービス",
        "logistics": "物流",
        "operations": "運営",
    },
}


def words(locale: str | None) -> dict[str, str]:
    return _WORDS.get(locale or "en", _WORDS["en"])


# --- the finding as lines ------------------------------------------------------------------------


def priority(finding: Mapping[str, Any]) -> float:
    """|expected GMV impact| x confidence: how the digest ranks findings (unknowns count 0)."""
    impact = finding.get("expected_gmv_impact")
    confidence = finding.get("confidence")
    if impact is None:
        return 0.0
    return abs(float(impact)) * (1.0 if confidence is None else float(confidence))


def _money(value: float | None) -> str | None:
    if value is None:
        return None
    return f"{value:+,.0f}"


def _scope(f: Mapping[str, Any]) -> str:
    dims = f.get("dimensions") or {}
    parts = [f"{k}={v}" for k, v in sorted(dims.items())]
    return ", ".join(parts)


def _facts(f: Mapping[str, Any], w: Mapping[str, str]) -> str:
    """One line: store, date, scope, impact and confidence."""
    bits = [f"{w['store']} {f.get('store_id')}", f"{w['date']} {f.get('date')}"]
    scope = _scope(f)
    if scope:
        bits.append(scope)
    impact = _money(f.get("expected_gmv_impact"))
    if impact is not None:
        bits.append(f"{w['impact']} {impact}")
    if f.get("confidence") is not None:
        bits.append(f"{w['confidence']} {float(f['confidence']):.0%}")
    return " · ".join(bits)


def title_of(doc: Mapping[str, Any]) -> str:
    w = words(doc.get("locale"))
    owner = w.get(doc.get("owner", ""), doc.get("owner", ""))
    kind = doc["kind"]
    if kind == "alert":
        sev = doc["finding"]["severity"]
        return w["alert"].format(owner=owner, severity=w.get(sev, sev))
    if kind == "digest":
        return w["digest"].format(owner=owner, date=doc["date"])
    return w["test"]


def _digest_findings(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(doc.get("findings") or [])


def _hidden(doc: Mapping[str, Any], shown: int) -> int:
    """Findings of the digest not shown: those cut here plus those the document left out."""
    return int(doc.get("open_count", len(_digest_findings(doc)))) - shown


def fit(n: int, size: Callable[[int], int], limit: int) -> int:
    """The largest k <= n with size(k) <= limit (size grows with k); 0 if none fits."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Standard Webhooks ---------------------------------------------------------------------------


def standard_webhooks_key(secret: str) -> bytes:
    """A `whsec_` secret is the base64 of the key (the Standard Webhooks convention)."""
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


def standard_webhooks_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_webhooks_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_body(doc: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "type": EVENT_TYPES[doc["kind"]],
        "timestamp": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": dict(doc),
    }


# --- Slack ---------------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Slack's mrkdwn control characters (its "Escaping text" doc)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_finding(f: Mapping[str, Any], w: Mapping[str, str]) -> str:
    mark = SEVERITY_MARK.get(f.get("severity", ""), "")
    return _cut(
        f"{mark} *{slack_escape(str(f.get('title')))}*\n"
        f"{slack_escape(_facts(f, w))}\n"
        f"_{w['action']}:_ {slack_escape(str(f.get('action')))}",
        SLACK_SECTION_MAX,
    )


def slack_message(doc: Mapping[str, Any]) -> dict[str, Any]:
    w = words(doc.get("locale"))
    title = title_of(doc)
    header = {
        "type": "header",
        "text": {"type": "plain_text", "text": _cut(title, SLACK_HEADER_MAX)},
    }
    kind = doc["kind"]
    if kind == "alert":
        f = doc["finding"]
        return {
            "text": _cut(f"{title}: {f.get('title')}", SLACK_TEXT_MAX),
            "blocks": [
                header,
                {"type": "section", "text": {"type": "mrkdwn", "text": _slack_finding(f, w)}},
            ],
        }
    if kind == "test":
        body = w["test_body"].format(owner=w.get(doc.get("owner", ""), doc.get("owner", "")))
        return {
            "text": f"{title}: {body}",
            "blocks": [header, {"type": "section", "text": {"type": "mrkdwn", "text": body}}],
        }
    findings = _digest_findings(doc)
    held_count = int(doc.get("held_count", 0))

    def build(k: int) -> dict[str, Any]:
        intro = (
            w["open"].format(n=doc.get("open_count", len(findings))) if findings else w["none_open"]
        )
        blocks: list[dict[str, Any]] = [
            header,
            {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(intro)}]},
        ]
        lines = [title, intro]
        for f in findings[:k]:
            text = _slack_finding(f, w)
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
            lines.append(text)
        tail = []
        hidden = _hidden(doc, k)
        if hidden > 0:
            tail.append(w["more"].format(n=hidden))
        if held_count:
            tail.append(w["held"].format(n=held_count))
        if tail:
            text = " · ".join(tail)
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
            lines.append(text)
        return {"text": "\n".join(lines), "blocks": blocks}

    def size(k: int) -> int:
        m = build(k)
        # Both limits at once: characters of the text and the number of blocks.
        return max(len(m["text"]) - SLACK_TEXT_MAX, len(m["blocks"]) - SLACK_BLOCKS_MAX)

    return build(fit(len(findings), size, 0))


# --- Feishu / Lark -------------------------------------------------------------------------------


def feishu_sign(timestamp: int, secret: str) -> str:
    """Feishu's custom-bot signature: the key is "{timestamp}\\n{secret}", the message empty."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def _md_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_finding(f: Mapping[str, Any], w: Mapping[str, str]) -> str:
    mark = SEVERITY_MARK.get(f.get("severity", ""), "")
    return (
        f"{mark} **{_md_escape(str(f.get('title')))}**\n"
        f"{_md_escape(_facts(f, w))}\n"
        f"{w['action']}: {_md_escape(str(f.get('action')))}"
    )


def _markdown_parts(doc: Mapping[str, Any], k: int) -> tuple[list[str], list[str]]:
    """(finding paragraphs, tail lines) of a document in markdown, with k digest findings."""
    w = words(doc.get("locale"))
    kind = doc["kind"]
    if kind == "alert":
        return [_md_finding(doc["finding"], w)], []
    if kind == "test":
        owner = w.get(doc.get("owner", ""), doc.get("owner", ""))
        return [w["test_body"].format(owner=owner)], []
    findings = _digest_findings(doc)
    intro = w["open"].format(n=doc.get("open_count", len(findings))) if findings else w["none_open"]
    paras = [intro] + [_md_finding(f, w) for f in findings[:k]]
    tail = []
    hidden = _hidden(doc, k)
    if hidden > 0:
        tail.append(w["more"].format(n=hidden))
    if doc.get("held_count"):
        tail.append(w["held"].format(n=doc["held_count"]))
    return paras, tail


def _body_bytes(message: Mapping[str, Any]) -> int:
    return len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode())


def feishu_message(
    doc: Mapping[str, Any], secret: str | None = None, timestamp: int | None = None
) -> dict[str, Any]:
    title = title_of(doc)
    severity = doc["finding"]["severity"] if doc["kind"] == "alert" else "low"
    template = FEISHU_TEMPLATE.get(severity, "blue") if doc["kind"] == "alert" else "blue"

    def build(k: int) -> dict[str, Any]:
        paras, tail = _markdown_parts(doc, k)
        elements: list[dict[str, Any]] = []
        for p in paras:
            if elements:
                elements.append({"tag": "hr"})
            elements.append({"tag": "div", "text": {"tag": "lark_md", "content": p}})
        if tail:
            elements.append(
                {"tag": "note", "elements": [{"tag": "plain_text", "content": " · ".join(tail)}]}
            )
        message: dict[str, Any] = {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {
                    "title": {"tag": "plain_text", "content": title},
                    "template": template,
                },
                "elements": elements,
            },
        }
        if secret:
            ts = int(timestamp if timestamp is not None else datetime.now(UTC).timestamp())
            # Feishu wants the timestamp in seconds, as a string, beside the sign.
            message = {"timestamp": str(ts), "sign": feishu_sign(ts, secret), **message}
        return message

    n = len(_digest_findings(doc)) if doc["kind"] == "digest" else 0
    return build(fit(n, lambda k: _body_bytes(build(k)), FEISHU_BYTES_MAX))


# --- DingTalk ------------------------------------------------------------------------------------


def dingtalk_sign(timestamp_ms: int, secret: str) -> str:
    """DingTalk's robot signature, base64 (not yet URL-encoded)."""
    msg = f"{timestamp_ms}\n{secret}".encode()
    return base64.b64encode(hmac.new(secret.encode(), msg, hashlib.sha256).digest()).decode()


def dingtalk_url(url: str, secret: str | None, timestamp_ms: int) -> str:
    if not secret:
        return url
    sign = urllib.parse.quote_plus(dingtalk_sign(timestamp_ms, secret))
    sep = "&" if urllib.parse.urlsplit(url).query else "?"
    return f"{url}{sep}timestamp={timestamp_ms}&sign={sign}"


def dingtalk_message(doc: Mapping[str, Any]) -> dict[str, Any]:
    title = title_of(doc)

    def build(k: int) -> dict[str, Any]:
        paras, tail = _markdown_parts(doc, k)
        # DingTalk's markdown needs blank lines between paragraphs and two spaces for a break.
        text = f"#### {title}\n\n" + "\n\n".join(p.replace("\n", "  \n") for p in paras)
        if tail:
            text += "\n\n> " + " · ".join(tail)
        return {"msgtype": "markdown", "markdown": {"title": _cut(title, 64), "text": text}}

    n = len(_digest_findings(doc)) if doc["kind"] == "digest" else 0
    return build(fit(n, lambda k: _body_bytes(build(k)), DINGTALK_BYTES_MAX))


# --- the request ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingRequest:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _dump(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def build_request(
    fmt: str,
    url: str,
    secret: str | None,
    doc: Mapping[str, Any],
    *,
    message_id: str,
    now: datetime,
) -> OutgoingRequest:
    """The POST to send for one delivery attempt, signed with a fresh timestamp."""
    headers = {"Content-Type": "application/json", "User-Agent": "storeops-notifications/1"}
    if fmt == "standard":
        body = _dump(standard_body(doc, now))
        ts = int(now.timestamp())
        headers["webhook-id"] = message_id
        headers["webhook-timestamp"] = str(ts)
        if secret:
            headers["webhook-signature"] = standard_webhooks_signature(secret, message_id, ts, body)
        return OutgoingRequest(url, body, headers)
    if fmt == "slack":
        return OutgoingRequest(url, _dump(slack_message(doc)), headers)
    if fmt == "feishu":
        return OutgoingRequest(
            url, _dump(feishu_message(doc, secret, int(now.timestamp()))), headers
        )
    if fmt == "dingtalk":
        ms = int(now.timestamp() * 1000)
        return OutgoingRequest(dingtalk_url(url, secret, ms), _dump(dingtalk_message(doc)), headers)
    raise ValueError(f"unknown format {fmt!r}")


# --- the vendors' answers ------------------------------------------------------------------------

Outcome = Literal["delivered", "retry", "failed"]

# Vendor codes in a 200 answer that mean "too many messages, try later".
DINGTALK_RETRY_CODES = {130101, -1}
FEISHU_RETRY_CODES = {9499, 11232, 11233}


def classify(fmt: str, status: int, body: bytes) -> tuple[Outcome, str | None]:
    """2xx delivered (unless the vendor's JSON says otherwise), 408/429/5xx retried, any other
    4xx failed for good. DingTalk and Feishu answer 200 with an error code in the body."""
    if 200 <= status < 300:
        if fmt in ("dingtalk", "feishu"):
            code, msg = _vendor_code(fmt, body)
            if code not in (None, 0):
                retry = DINGTALK_RETRY_CODES if fmt == "dingtalk" else FEISHU_RETRY_CODES
                return ("retry" if code in retry else "failed"), f"{fmt} error {code}: {msg}"
        return "delivered", None
    if status in (408, 429) or status >= 500:
        return "retry", f"HTTP {status}"
    return "failed", f"HTTP {status}"


def _vendor_code(fmt: str, body: bytes) -> tuple[int | None, str]:
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return None, ""
    if not isinstance(doc, dict):
        return None, ""
    keys: Sequence[str] = ("errcode",) if fmt == "dingtalk" else ("code", "StatusCode")
    for key in keys:
        value = doc.get(key)
        if isinstance(value, int):
            return value, str(doc.get("errmsg") or doc.get("msg") or doc.get("StatusMessage") or "")
    return None, ""
