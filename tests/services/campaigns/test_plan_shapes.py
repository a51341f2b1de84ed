"""Plans shaped by the festival's phases and by the store's business model (issue 17, point 1):
selling milestones sit in selling phases, never in a logistics pause; cut-offs are deadlines;
marketplace, DTC and Amazon plans differ; the template follows the store's platform and can be
overridden."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from support import Harness, campaigns_tenant

from services.campaigns import service
from services.campaigns.planning import templates
from services.campaigns.schemas import CampaignCreate, CampaignOut
from shared.auth import Principal
from shared.calendar import next_occurrence

D = dt.date
MARKETPLACE_ONLY = {"registration_deadline", "creative_review"}


@pytest.fixture
async def stores(campaigns: Harness) -> dict[str, dict[str, str]]:
    cn = await campaigns_tenant(
        campaigns,
        "acme",
        ["tmall-shop"],
        market="CN",
        timezone="Asia/Shanghai",
        currency="CNY",
        platform="taobao",
    )
    await campaigns_tenant(campaigns, "acme", ["shopify-us"], platform="shopify")
    await campaigns_tenant(campaigns, "acme", ["woo-us"], platform="woocommerce")
    return cn


async def plan(
    h: Harness, store: str, event: str, year: int, today: dt.date, **over: Any
) -> CampaignOut:
    p = Principal("acme", "u", "k", "operator", None)
    body = CampaignCreate(name=f"{event} {year}", event=event, year=year, **over)
    async with h.app.state.db.session() as s:
        out = await service.create_campaign(s, p, store, body, today=today)
        await s.rollback()
    return out


async def test_spring_festival_sells_before_the_cutoff_never_in_the_logistics_pause(
    campaigns: Harness, stores: Any
) -> None:
    out = await plan(campaigns, "tmall-shop", "spring_festival", 2027, D(2026, 11, 2))
    tasks = {t.id: t for t in out.tasks}
    occ = next_occurrence("spring_festival", "CN", D(2027, 1, 1))
    assert occ is not None and occ.date == D(2027, 2, 6)
    pause = occ.phase("logistics_pause")
    assert pause is not None and (pause.start, pause.end) == (D(2027, 1, 28), D(2027, 2, 13))
    # The real selling window opens on 01-16 and the shipping cut-off on 01-27 is a deadline.
    assert tasks["new_year_shopping"].start == D(2027, 1, 16)
    assert tasks["new_year_shopping"].kind == "milestone"
    assert tasks["shipping_cutoff"].start == D(2027, 1, 27)
    assert "deadline" in tasks["shipping_cutoff"].name
    # No milestone of the plan falls in the pause, and the old "pre-sale"/"main day" on the
    # festival's day are gone.
    for t in out.tasks:
        if t.kind == "milestone":
            assert not pause.start <= t.start <= pause.end, t
    assert "main_day" not in tasks and "pre_sale" not in tasks
    # Preparation is due before the selling window opens.
    for t in out.tasks:
        if not t.pinned:
            assert t.due < D(2027, 1, 16), t
    names = [p.name for p in out.phases]
    assert names == ["preparation", "new_year_shopping", "shipping_cutoff", "review"]
    assert "logistics_pause" not in names
    assert out.conflicts == []


async def test_marketplace_dtc_and_amazon_plans_differ_by_business_model(
    campaigns: Harness, stores: Any
) -> None:
    today = D(2027, 9, 1)
    shopify = await plan(campaigns, "shopify-us", "black_friday", 2027, today)
    woo = await plan(campaigns, "woo-us", "black_friday", 2027, today)
    tmall = await plan(campaigns, "tmall-shop", "double_11", 2027, today)
    # Chosen from the platform.
    assert shopify.template == woo.template == "dtc" and tmall.template == "marketplace"
    for dtc in (shopify, woo):
        ids = {t.id for t in dtc.tasks}
        names = " ".join(t.name for t in dtc.tasks)
        assert not ids & MARKETPLACE_ONLY
        assert "Platform registration" not in names and "creative review" not in names
        assert {"storefront", "owned_channels"} <= ids
    assert {t.id for t in tmall.tasks} >= MARKETPLACE_ONLY
    # Overridable: an Amazon seller's Black Friday has deal submission and review.
    amazon = await plan(campaigns, "shopify-us", "black_friday", 2027, today, template="amazon")
    a = {t.id: t for t in amazon.tasks}
    assert amazon.template == "amazon"
    assert a["deal_submission"].start == D(2027, 11, 26) - dt.timedelta(days=60)
    assert a["deal_review"].duration == 5 and not MARKETPLACE_ONLY & set(a)
    # The old single template's name still works: it means "choose from the platform".
    legacy = await plan(campaigns, "shopify-us", "black_friday", 2027, today, template="mega_sale")
    assert legacy.template == "dtc"


async def test_unknown_template_lists_the_real_ones(campaigns: Harness, stores: Any) -> None:
    r = await campaigns.client.post(
        "/v1/stores/tmall-shop/campaigns",
        json={"name": "x", "event": "double_11", "year": 2027, "template": "nope"},
        headers=stores["operator"],
    )
    assert r.status_code == 422
    assert "amazon, dtc, marketplace" in r.json()["detail"]


def test_every_festival_gets_milestones_only_in_selling_phases_and_cutoffs() -> None:
    """Property over the whole calendar: for every festival, market and template, selling
    milestones are pinned to the start of a selling phase or a cut-off, never in a pause or
    the returns window; the peak milestone is the deadline preparation works towards."""
    from shared.calendar import definitions
    from shared.calendar.markets import REGIONS

    for f in definitions():
        for region in f.markets:
            market = sorted(REGIONS.get(region, {region}))[0]
            occ = next_occurrence(f.key, market, D(2027, 1, 1))
            assert occ is not None, f.key
            for key in templates.available():
                tpl = templates.load(key)
                assert tpl is not None
                specs = templates.selling_milestones(tpl, occ)
                starts = {p.start: p for p in occ.phases if p.kind in ("selling", "cutoff")}
                for s in specs:
                    assert s.pin is not None
                    assert s.pin in starts or s.pin == occ.peak.start, (f.key, s)
                    for p in occ.phases:
                        if p.kind in ("pause", "after_sale"):
                            assert not p.start <= s.pin <= p.end, (f.key, s, p)
                assert templates.deadline(occ) in {s.pin for s in specs}


async def test_another_festivals_logistics_pause_gets_no_selling_milestone(
    campaigns: Harness, stores: Any
) -> None:
    """Valentine's Day 2027 in China falls the day after the Spring Festival's courier pause
    (01-28..02-13): its gifting run-up would sell into the pause, so the plan sells on the day
    only; in the US the run-up stays."""
    cn = await plan(campaigns, "tmall-shop", "valentines_day", 2027, D(2026, 11, 2))
    us = await plan(campaigns, "shopify-us", "valentines_day", 2027, D(2026, 11, 2))
    for t in cn.tasks:
        if t.kind == "milestone":
            assert not D(2027, 1, 28) <= t.start <= D(2027, 2, 13), t
    assert {t.id for t in cn.tasks if t.kind == "milestone"} >= {"main_day"}
    assert "gifting" not in {t.id for t in cn.tasks}
    assert next(t for t in us.tasks if t.id == "gifting").start == D(2027, 1, 31)


async def test_a_festival_that_only_sells_inside_a_pause_is_refused(
    campaigns: Harness, stores: Any
) -> None:
    c = campaigns.client
    flash = {
        "key": "lantern_flash",
        "name": "Flash sale in the pause",
        "markets": ["CN"],
        "rule": {"type": "fixed", "month": 2, "day": 8},
        "phases": [{"name": "main", "from": 0, "to": 1}],
    }
    r = await c.put(
        "/v1/calendar/settings", json={"festivals": [flash]}, headers=stores["operator"]
    )
    assert r.status_code == 200, r.text
    r = await c.post(
        "/v1/stores/tmall-shop/campaigns",
        json={"name": "x", "event": "lantern_flash", "year": 2027},
        headers=stores["operator"],
    )
    assert r.status_code == 422 and "logistics pause" in r.json()["detail"]
