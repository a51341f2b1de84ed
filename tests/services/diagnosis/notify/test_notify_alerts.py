"""Immediate alerts, end to end: finding events on the bus -> the notifications' consumer ->
queued deliveries -> the worker -> a real HTTP receiver. Signatures checked with openssl."""

from __future__ import annotations

import base64
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.diagnosis.notify.models import NotificationAlert

BASE = "/v1/notification-targets"


def openssl_standard_signature(secret: str, msg_id: str, ts: str, body: bytes) -> str:
    key_hex = base64.b64decode(secret.removeprefix("whsec_")).hex()
    out = subprocess.run(
        ["sh", "-c", f"openssl dgst -sha256 -mac HMAC -macopt hexkey:{key_hex} -binary | base64"],
        input=f"{msg_id}.{ts}.".encode() + body,
        capture_output=True,
        check=True,
    )
    return "v1," + out.stdout.decode().strip()


async def test_alert_is_sent_signed_and_a_replay_never_alerts_twice(
    notify: Any, finding: Any
) -> None:
    t = await notify.target(notify.keys["acme:admin"])
    event = finding(severity="high")
    await notify.publish(event)
    await notify.delivered(1)
    req = notify.receiver.on("/hook")[0]
    # Standard Webhooks headers, signature recomputed by openssl over the bytes received.
    assert req.headers["webhook-id"].startswith("msg_")
    ts = req.headers["webhook-timestamp"]
    assert abs(int(ts) - datetime.now(UTC).timestamp()) < 60
    assert req.headers["webhook-signature"] == openssl_standard_signature(
        t["secret"], req.headers["webhook-id"], ts, req.body
    )
    doc = req.json()
    assert doc["type"] == "storeops.finding_alert"
    assert doc["data"]["finding"]["finding_id"] == str(event.finding_id)
    assert doc["data"]["finding"]["severity"] == "high"

    # The same event again, and a new event with the same finding and severity: no alert.
    await notify.publish(event)
    await notify.publish(
        finding("updated", finding_id=event.finding_id, severity="high", title="Re-rated")
    )
    await notify.settle()
    assert len(notify.receiver.on("/hook")) == 1
    assert await notify.count(NotificationAlert) == 1
    # Raised to critical: that is news, alerted once.
    await notify.publish(finding("updated", finding_id=event.finding_id, severity="critical"))
    await notify.delivered(2)
    await notify.publish(finding("updated", finding_id=event.finding_id, severity="high"))
    await notify.settle()
    assert len(notify.receiver.on("/hook")) == 2
    assert notify.receiver.on("/hook")[1].json()["data"]["finding"]["severity"] == "critical"


async def test_only_matching_owner_severity_status_and_store_scope_alert(
    notify: Any, finding: Any
) -> None:
    admin = notify.keys["acme:admin"]
    await notify.target(admin, url=notify.receiver.url("/all"), min_severity="high")
    await notify.target(admin, url=notify.receiver.url("/shop2"), store_ids=["shop-2"])
    await notify.target(admin, url=notify.receiver.url("/medium"), min_severity="medium")
    await notify.target(admin, url=notify.receiver.url("/off"), enabled=False)
    await notify.publish(
        finding(severity="medium"),  # below /all's threshold, /medium takes it
        finding(severity="high", owner="logistics"),  # nobody listens for logistics
        finding("updated", severity="critical", status="acknowledged"),  # owner knows
        finding(severity="critical", store="shop-1"),  # /all, /medium, not /shop2
    )
    await notify.delivered(1, "/all")
    await notify.settle()
    assert len(notify.receiver.on("/all")) == 1
    assert len(notify.receiver.on("/medium")) == 2
    assert notify.receiver.on("/shop2") == [] and notify.receiver.on("/off") == []
    await notify.publish(finding(severity="high", store="shop-2"))
    await notify.delivered(1, "/shop2")


async def test_a_stale_event_after_the_close_alerts_nobody(notify: Any, finding: Any) -> None:
    await notify.target(notify.keys["acme:admin"])
    fid = uuid.uuid4()
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    await notify.publish(finding("closed", finding_id=fid, occurred_at=t0))
    await notify.publish(finding("opened", finding_id=fid, occurred_at=t0 - timedelta(1)))
    await notify.settle()
    assert notify.receiver.requests == []
    assert await notify.count(NotificationAlert) == 0


async def test_tenant_isolation(notify: Any, finding: Any) -> None:
    await notify.target(notify.keys["acme:admin"], url=notify.receiver.url("/acme"))
    await notify.target(notify.keys["globex:admin"], url=notify.receiver.url("/globex"))
    await notify.publish(finding(tenant="acme", severity="critical", title="Acme only"))
    await notify.delivered(1, "/acme")
    await notify.settle()
    assert notify.receiver.on("/globex") == []
    # Globex's digest does not list Acme's finding either.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=10)  # after 09:00 UTC
    await notify.notifier.run_digests(tomorrow)
    await notify.settle()
    acme_digest = [r for r in notify.receiver.on("/acme") if r.json()["type"].endswith("digest")]
    assert [f["title"] for f in acme_digest[0].json()["data"]["findings"]] == ["Acme only"]
    assert notify.receiver.on("/globex") == []  # nothing open for globex: no digest


async def test_budget_holds_the_eleventh_alert_and_the_digest_carries_it(
    notify: Any, finding: Any
) -> None:
    admin = notify.keys["acme:admin"]
    t = await notify.target(admin, alert_budget=10, timezone="Asia/Shanghai", digest_hour=9)
    events = [
        finding(severity="high", title=f"Finding {i}", impact=-100.0 * (i + 1)) for i in range(11)
    ]
    await notify.publish(*events)
    await notify.delivered(10)
    await notify.settle()
    assert len(notify.receiver.on("/hook")) == 10
    r = await notify.client.get(f"{BASE}/{t['id']}", headers=admin)
    assert (r.json()["alerts_last_24h"], r.json()["held_alerts"]) == (10, 1)
    held = await notify.count(NotificationAlert, state="held")
    assert held == 1

    # The next digest (09:00 Shanghai tomorrow) lists the held alert and counts it.
    at = (datetime.now(UTC) + timedelta(days=1)).replace(hour=1, minute=5)  # 09:05 in +08:00
    assert await notify.notifier.run_digests(at) == 1
    await notify.delivered(11)
    digest = notify.receiver.on("/hook")[10].json()
    assert digest["type"] == "storeops.findings_digest"
    data = digest["data"]
    assert data["held_count"] == 1
    assert data["held"][0]["title"] == "Finding 10"
    assert data["open_count"] == 11
    # Ranked by |impact| x confidence: the largest loss first.
    assert [f["title"] for f in data["findings"]][:3] == ["Finding 10", "Finding 9", "Finding 8"]
    assert [f["held"] for f in data["findings"]][:2] == [True, False]
    r = await notify.client.get(f"{BASE}/{t['id']}", headers=admin)
    assert r.json()["held_alerts"] == 0
    assert await notify.count(NotificationAlert, state="digested") == 1


async def test_test_message_for_each_format_with_its_signature(notify: Any, finding: Any) -> None:
    admin = notify.keys["acme:admin"]
    slack = await notify.target(admin, format="slack", url=notify.receiver.url("/slack"))
    ding = await notify.target(
        admin,
        format="dingtalk",
        url=notify.receiver.url("/ding") + "?access_token=tok",
        secret="SEC" + "0f" * 32,
    )
    feishu = await notify.target(
        admin,
        format="feishu",
        url=notify.receiver.url("/feishu"),
        secret="fs-secret",
        locale="zh-CN",
    )
    for t in (slack, ding, feishu):
        r = await notify.client.post(f"{BASE}/{t['id']}/test", headers=notify.keys["acme:operator"])
        assert r.status_code == 202, r.text
    await notify.delivered(1, "/slack")
    await notify.delivered(1, "/ding")
    await notify.delivered(1, "/feishu")
    s = notify.receiver.on("/slack")[0].json()
    assert s["blocks"][0]["type"] == "header" and "Test message" in s["text"]
    d = notify.receiver.on("/ding")[0]
    assert d.query["access_token"] == ["tok"] and d.query["timestamp"] and d.query["sign"]
    assert d.json()["msgtype"] == "markdown"
    fbody = notify.receiver.on("/feishu")[0].json()
    assert fbody["msg_type"] == "interactive" and fbody["sign"] and fbody["timestamp"]
    assert fbody["card"]["header"]["title"]["content"] == "storeops 测试消息"
    r = await notify.client.get(f"{BASE}/{slack['id']}/deliveries", headers=admin)
    item = r.json()["items"][0]
    assert (item["kind"], item["status"], item["attempts"]) == ("test", "delivered", 1)
    assert item["attempt_log"][0]["status_code"] == 200


async def test_secrets_never_reach_the_logs(make_notify: Any, finding: Any, capfd: Any) -> None:
    # Its own app with INFO logs, so that every attempt and request is logged.
    async with make_notify(log_level="INFO") as h:
        receiver = h.receiver
        admin = await h.key("acme", "admin")
        t = await h.target(admin)
        ding = await h.target(
            admin,
            format="dingtalk",
            url=receiver.url("/ding") + "?access_token=TOKEN123",
            secret="SEC" + "7e" * 32,
        )
        await h.publish(finding(severity="critical"))
        await h.client.post(f"{BASE}/{ding['id']}/test", headers=admin)
        await h.delivered(1)
        await h.delivered(1, "/ding")
        await h.settle()
    out, err = capfd.readouterr()
    assert "notification_attempt" in out + err  # the logs were there to be read
    for secret in (t["secret"], t["secret"].removeprefix("whsec_"), "TOKEN123", "7e" * 32):
        assert secret not in out + err


async def test_metrics_count_attempts_by_format_and_outcome(notify: Any, finding: Any) -> None:
    await notify.target(notify.keys["acme:admin"])
    await notify.publish(finding(severity="critical"))
    await notify.delivered(1)
    await notify.settle()
    text = (await notify.client.get("/metrics")).text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("storeops_notifications_sent_total{")
        and 'format="standard"' in ln
        and 'outcome="delivered"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1
    assert "storeops_notifications_pending " in text


async def test_the_contract_examples_are_accepted_in_order(notify: Any) -> None:
    from services.diagnosis.notify.models import NotificationFinding
    from shared.events.diagnosis import FindingClosedV1, FindingOpenedV1, FindingUpdatedV1

    opened = FindingOpenedV1.example()
    admin = await notify.key(opened.tenant_id, "admin")
    await notify.target(admin, owner=opened.owner)
    await notify.publish(opened, FindingUpdatedV1.example(), FindingClosedV1.example())
    await notify.delivered(1)
    await notify.settle()
    assert len(notify.receiver.on("/hook")) == 1  # the update (acknowledged) pages nobody
    assert await notify.count(NotificationFinding, status="resolved") == 1
