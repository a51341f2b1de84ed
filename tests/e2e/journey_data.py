"""The journey's data: one Shopify store with five weeks of funnel numbers per channel, and a
day D on which click-through on `social` falls by 45% with impressions steady (a main-image
problem: the designer's). D's funnel figures arrive as a file, D's orders as Shopify webhooks,
the history as a file; nothing here talks to a service."""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

STORE_ID = "e2e-shop"
TIMEZONE = "America/New_York"
SECRET = "shpss_e2e_journey_secret"
HISTORY_DAYS = 35
# channel -> (impressions, ctr, cvr, aov, how the order says where it came from)
CHANNELS: dict[str, tuple[int, float, float, float, dict[str, Any]]] = {
    "search": (40_000, 0.025, 0.030, 60.0, {"referring_site": "https://www.google.com/"}),
    "paid_search": (
        20_000,
        0.030,
        0.030,
        55.0,
        {"landing_site": "/products/coat?utm_source=google&utm_medium=cpc"},
    ),
    "social": (30_000, 0.030, 0.022, 50.0, {"referring_site": "https://l.facebook.com/"}),
}
INCIDENT_CHANNEL = "social"
INCIDENT_CTR_FACTOR = 0.55  # -45%
FUNNEL = ("impressions", "clicks", "visitors", "add_to_cart")


def store_body() -> dict[str, Any]:
    return {
        "id": STORE_ID,
        "name": "E2E Shop",
        "platform": "shopify",
        "timezone": TIMEZONE,
        "currency": "USD",
        "market": "US",
        "category": "apparel",
        "webhook_secret": SECRET,
    }


def local_yesterday(now: datetime) -> date:
    return now.astimezone(ZoneInfo(TIMEZONE)).date() - timedelta(days=1)


@dataclass
class Day:
    day: date
    channel: str
    impressions: int
    clicks: int
    visitors: int
    add_to_cart: int
    order_totals: list[float]

    @property
    def buyers(self) -> int:
        return len(self.order_totals)

    @property
    def gmv(self) -> float:
        return round(sum(self.order_totals), 2)


def generate(d: date, seed: int = 11) -> list[Day]:
    """HISTORY_DAYS days before D and D itself, every channel."""
    rng = random.Random(seed)
    out = []
    for offset in range(HISTORY_DAYS, -1, -1):
        day = d - timedelta(days=offset)
        for channel, (impr, ctr, cvr, aov, _) in CHANNELS.items():
            n_impr = round(impr * rng.uniform(0.96, 1.04))
            c = ctr * rng.uniform(0.97, 1.03)
            if offset == 0 and channel == INCIDENT_CHANNEL:
                c *= INCIDENT_CTR_FACTOR
            clicks = round(n_impr * c)
            visitors = clicks
            buyers = max(1, round(visitors * cvr * rng.uniform(0.95, 1.05)))
            totals = [round(aov * rng.uniform(0.8, 1.2), 2) for _ in range(buyers)]
            out.append(Day(day, channel, n_impr, clicks, visitors, round(visitors * 0.08), totals))
    return out


def rows_of(days: list[Day], *, funnel_only: bool = False) -> list[dict[str, Any]]:
    rows = []
    for x in days:
        values: dict[str, float] = {m: getattr(x, m) for m in FUNNEL}
        if not funnel_only:
            values |= {"orders": x.buyers, "buyers": x.buyers, "gmv": x.gmv}
        for metric, value in values.items():
            rows.append(
                {
                    "date": x.day,
                    "metric": metric,
                    "value": value,
                    "dimensions": {"channel": x.channel},
                }
            )
    return rows


def long_csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["date", "metric", "value", "channel"])
    for r in rows:
        w.writerow([r["date"].isoformat(), r["metric"], r["value"], r["dimensions"]["channel"]])
    return buf.getvalue().encode()


def shopify_orders(x: Day, first_id: int) -> list[tuple[bytes, dict[str, str]]]:
    """Byte-exact orders/create deliveries for one channel-day, signed as Shopify signs them."""
    tz = ZoneInfo(TIMEZONE)
    out = []
    for i, total in enumerate(x.order_totals):
        order_id = first_id + i
        created = datetime.combine(x.day, time(9, 0), tz) + timedelta(minutes=7 * i)
        doc = {
            "id": order_id,
            "name": f"#{order_id}",
            "created_at": created.isoformat(),
            "updated_at": created.isoformat(),
            "currency": "USD",
            "total_price": f"{total:.2f}",
            "financial_status": "paid",
            "cancelled_at": None,
            "test": False,
            "source_name": "web",
            "landing_site": "/",
            "referring_site": "",
            "customer": {"id": 900_000 + order_id, "email": f"buyer{order_id}@example.com"},
            **CHANNELS[x.channel][4],
        }
        body = json.dumps(doc).encode()
        sig = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": sig,
            "X-Shopify-Shop-Domain": "e2e-shop.myshopify.com",
            "X-Shopify-Event-Id": f"evt-{order_id}",
            "X-Shopify-Webhook-Id": f"wh-{order_id}",
        }
        out.append((body, headers))
    return out
