"""Delivery against a real HTTP receiver: retries with backoff (the schedule scaled down by the
delay_scale setting), Retry-After, permanent failures, giving up; digests once per local day."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from services.diagnosis.notify.models import NotificationDelivery, NotificationDigest
from services.diagnosis.notify.service import digest_due

BASE = "/v1/notification-targets"


async def deliveries(notify: Any, target_id: str) -> list[dict[str, Any]]:
    r = await notify.client.get(
        f"{BASE}/{target_id}/deliveries", headers=notify.keys["acme:operator"]
    )
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_retry_after_500_with_backoff_then_delivered(notify: Any) -> None:
    t = await notify.target(notify.keys["acme:admin"])
    notify.receiver.script = [(500, {}, b"boom")]
    r = await notify.client.post(f"{BASE}/{t['id']}/test", headers=notify.keys["acme:operator"])
    assert r.status_code == 202
    await notify.delivered(2)
    await notify.settle()
    first, second = notify.receiver.on("/hook")
    # Standard Webhooks: one message id across retries, a fresh timestamp and signature each time.
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == r.json()["message_id"]
    # The first step of the schedule is 10 s; scaled by 0.001 in tests: 10 ms.
    assert (second.at - first.at).total_seconds() >= 0.01
    [d] = await deliveries(notify, t["id"])
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("delivered", 2, 200)
    log = d["attempt_log"]
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in log] == [
        (1, "retry", 500),
        (2, "delivered", 200),
    ]
    assert log[0]["retry_in_seconds"] == pytest.approx(0.01)
    assert log[0]["error"] == "HTTP 500"
    assert d["delivered_at"] is not None and d["next_attempt_at"] is None


async def test_429_retry_after_is_honoured(notify: Any) -> None:
    t = await notify.target(notify.keys["acme:admin"])
    notify.receiver.script = [(429, {"Retry-After": "1"}, b"slow down")]
    await notify.client.post(f"{BASE}/{t['id']}/test", headers=notify.keys["acme:operator"])
    await notify.delivered(2)
    first, second = notify.receiver.on("/hook")
    assert (second.at - first.at).total_seconds() >= 0.95
    await notify.settle()
    [d] = await deliveries(notify, t["id"])
    assert d["attempt_log"][0]["retry_in_seconds"] == pytest.approx(1.0)
    assert d["status"] == "delivered"


@pytest.mark.parametrize("status", [410, 400, 404])
async def test_4xx_fails_for_good_after_one_attempt(notify: Any, status: int) -> None:
    t = await notify.target(notify.keys["acme:admin"])
    notify.receiver.script = [(status, {}, b"gone")]
    await notify.client.post(f"{BASE}/{t['id']}/test", headers=notify.keys["acme:operator"])
    await notify.delivered(1)
    await notify.settle()
    await asyncio.sleep(0.2)  # several worker rounds: nothing more is sent
    assert len(notify.receiver.on("/hook")) == 1
    [d] = await deliveries(notify, t["id"])
    assert (d["status"], d["attempts"], d["last_error"]) == ("failed", 1, f"HTTP {status}")
    assert d["attempt_log"][0]["outcome"] == "failed"


async def test_vendor_error_in_a_200_answer_fails_the_dingtalk_delivery(notify: Any) -> None:
    t = await notify.target(
        notify.keys["acme:admin"],
        format="dingtalk",
        url=notify.receiver.url("/ding"),
        secret="SEC" + "ab" * 32,
    )
    notify.receiver.script = [(200, {}, b'{"errcode":310000,"errmsg":"sign not match"}')]
    await notify.client.post(f"{BASE}/{t['id']}/test", headers=notify.keys["acme:operator"])
    await notify.delivered(1, "/ding")
    await notify.settle()
    [d] = await deliveries(notify, t["id"])
    assert d["status"] == "failed"
    assert d["last_error"] == "dingtalk error 310000: sign not match"


async def test_unreachable_receiver_is_retried_then_given_up_without_leaking_the_url(
    notify: Any,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nobody listens once the socket is closed
    notify.notifier.settings = notify.notifier.settings.model_copy(update={"max_attempts": 3})
    t = await notify.target(
        notify.keys["acme:admin"],
        format="dingtalk",
        url=f"http://127.0.0.1:{closed_port}/robot/send?access_token=TOPSECRET",
    )
    await notify.client.post(f"{BASE}/{t['id']}/test", headers=notify.keys["acme:operator"])
    await notify.settle()
    [d] = await deliveries(notify, t["id"])
    assert (d["status"], d["attempts"]) == ("failed", 3)
    assert "gave up after 3 attempts" in d["last_error"]
    assert [a["outcome"] for a in d["attempt_log"]] == ["retry", "retry", "failed"]
    assert [a["status_code"] for a in d["attempt_log"]] == [None, None, None]
    # 10 ms then 30 ms (the schedule x 0.001), no third wait: it gave up.
    assert [a["retry_in_seconds"] for a in d["attempt_log"]] == pytest.approx([0.01, 0.03, None])
    assert all("TOPSECRET" not in (a["error"] or "") for a in d["attempt_log"])


def _shanghai(day: datetime, hour: int, minute: int = 0) -> datetime:
    """hour:minute in Shanghai (UTC+8, no daylight saving) on `day`'s UTC date, as UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


async def test_digest_once_per_local_day_at_the_local_hour(notify: Any, finding: Any) -> None:
    t = await notify.target(notify.keys["acme:admin"], timezone="Asia/Shanghai", digest_hour=9)
    keep = finding(severity="medium", title="Search conversion down", impact=-300.0)
    gone = finding(severity="low", title="Resolved later", impact=-9000.0)
    await notify.publish(keep, gone)  # below min_severity: no alerts, only the projection
    day1 = datetime.now(UTC) + timedelta(days=2)
    run = notify.notifier.run_digests
    assert await run(_shanghai(day1, 8, 59)) == 0  # not yet 09:00 local
    # Two workers at once (two pods): the claim lets one of them send it.
    assert sum(await asyncio.gather(run(_shanghai(day1, 9, 5)), run(_shanghai(day1, 9, 5)))) == 1
    assert await run(_shanghai(day1, 23, 30)) == 0  # same local day
    await notify.delivered(1)
    first = notify.receiver.on("/hook")[0].json()["data"]
    assert [f["title"] for f in first["findings"]] == ["Resolved later", "Search conversion down"]
    assert first["date"] == (_shanghai(day1, 9, 5) + timedelta(hours=8)).date().isoformat()

    await notify.publish(finding("closed", finding_id=gone.finding_id))
    day2 = day1 + timedelta(days=1)
    assert await run(_shanghai(day2, 9, 0)) == 1
    await notify.delivered(2)
    second = notify.receiver.on("/hook")[1].json()["data"]
    assert [f["title"] for f in second["findings"]] == ["Search conversion down"]
    assert await notify.count(NotificationDigest, target_id=t["id"]) == 2
    await notify.settle()
    assert await notify.count(NotificationDelivery, kind="digest", status="delivered") == 2


async def test_no_digest_is_sent_when_there_is_nothing_to_say(notify: Any) -> None:
    t = await notify.target(notify.keys["acme:admin"], owner="logistics")
    day = datetime.now(UTC) + timedelta(days=1)
    assert await notify.notifier.run_digests(day.replace(hour=12)) == 1  # claimed ...
    await asyncio.sleep(0.1)
    assert notify.receiver.requests == []  # ... but nothing sent
    assert await notify.count(NotificationDigest, target_id=t["id"]) == 1
    assert await notify.count(NotificationDelivery) == 0


def test_digest_due_from_the_local_hour_and_not_before_the_target_existed() -> None:
    created = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)  # 07:00 in New York (EST)
    t = SimpleNamespace(timezone="America/New_York", digest_hour=8, created_at=created)
    # Created before 08:00 local: today's digest is due from 08:00 EST (13:00 UTC).
    assert digest_due(t, datetime(2026, 3, 7, 12, 59, tzinfo=UTC)) is None
    assert digest_due(t, datetime(2026, 3, 7, 13, 0, tzinfo=UTC)) == date(2026, 3, 7)
    # Late evening local is still the same local day (UTC has moved on).
    assert digest_due(t, datetime(2026, 3, 8, 4, 0, tzinfo=UTC)) == date(2026, 3, 7)
    # Across the switch to daylight saving (8 March 2026): 08:00 EDT is 12:00 UTC.
    assert digest_due(t, datetime(2026, 3, 9, 11, 59, tzinfo=UTC)) is None
    assert digest_due(t, datetime(2026, 3, 9, 12, 0, tzinfo=UTC)) == date(2026, 3, 9)
    # Created after today's digest hour: tomorrow's is the first.
    late = SimpleNamespace(timezone="Asia/Tokyo", digest_hour=9, created_at=created)  # 21:00 JST
    assert digest_due(late, datetime(2026, 3, 7, 13, 0, tzinfo=UTC)) is None
    assert digest_due(late, datetime(2026, 3, 8, 0, 0, tzinfo=UTC)) == date(2026, 3, 8)
