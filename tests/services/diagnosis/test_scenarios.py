# ruff: noqa: RUF001
# (full-width punctuation is what the zh-CN summary must contain)
"""Scenarios on realistic stores (bench/diagnosis_scenarios.py): channels x devices of Poisson
counts with a weekly rhythm and heavy-tailed shocks, Double 11 or Black Friday with its run-up and
aftermath, a store-level GMV row and copy_id slices beside the leaves; one incident each, found
with its code and owner; quiet days, the post-festival lull included, raise nothing severe."""

from __future__ import annotations

from datetime import date

import pytest

from bench.diagnosis_old_rules import OLD_RULES
from bench.diagnosis_scenarios import diagnose, generate, incident, matches, severe, spec

ORDINARY = date(2025, 9, 24)  # a Wednesday, no festival near
AFTER_BF = date(2025, 12, 5)  # the Friday a week after Black Friday 2025 (Nov 28)
AFTER_D11 = date(2025, 11, 14)  # three days after Double 11

SCENARIOS = [
    ("taobao", ORDINARY, "free_search_traffic_drop", -0.4),
    ("shopify", ORDINARY, "free_search_traffic_drop", -0.4),
    ("taobao", ORDINARY, "cvr_below_market", 0.27),  # the seeds' case: own +9.5%, market +27%
    ("shopify", AFTER_BF, "search_cvr_drop", -0.35),
    ("taobao", ORDINARY, "paid_traffic_collapse", -0.7),
    ("taobao", ORDINARY, "main_image_ctr_drop", -0.35),
    ("shopify", ORDINARY, "inquiry_cvr_drop", -0.45),
    ("taobao", ORDINARY, "dsr_logistics_drop", -0.45),
]


@pytest.mark.parametrize(
    ("platform", "day", "kind", "magnitude"), SCENARIOS, ids=[f"{s[0]}-{s[2]}" for s in SCENARIOS]
)
def test_each_incident_is_found_with_its_code_and_owner(
    platform: str, day: date, kind: str, magnitude: float
) -> None:
    inc = incident(kind, magnitude)
    g = generate(spec(platform), day, days=90, incident=inc, seed=11)
    rep = diagnose(g)
    assert rep.data_complete
    assert matches(rep, inc), (kind, [(f.code, f.owner, f.dimensions) for f in rep.findings])
    top = max(
        (f for f in rep.findings if f.severity != "low"),
        key=lambda f: ("low", "medium", "high", "critical").index(f.severity),
    )
    # the headline leads with what needs doing
    assert not rep.summaries["en"].split(": ", 1)[1].startswith("GMV"), rep.summaries["en"]
    assert top.owner == inc.owner


def test_the_seeds_case_leads_with_the_relative_decline() -> None:
    g = generate(spec("taobao"), ORDINARY, days=90, incident=incident("cvr_below_market", 0.27))
    rep = diagnose(g)
    f = next(f for f in rep.findings if f.code == "cvr_below_market")
    assert f.owner == "merchandising" and "promotion" in f.action
    en = rep.summaries["en"]
    assert "net of the market" in en.split(".")[0] + en.split(".")[1]
    assert "GMV rose" in en and not en.split(": ", 1)[1].startswith("GMV")
    # the market's own move is the context it is read in
    assert any(x.code == "market_moved" and x.severity == "low" for x in rep.findings)


def test_the_week_after_black_friday_is_not_compared_with_it() -> None:
    g = generate(spec("shopify"), AFTER_BF, days=90, incident=incident("search_cvr_drop", -0.35))
    rep = diagnose(g)
    assert rep.baseline_method == "comparable_weekdays"
    assert all(d < date(2025, 11, 14) for d in rep.baseline_days), rep.baseline_days
    assert "Compared with the 4 previous Fridays outside festival periods" in rep.summaries["en"]
    # the old default compared with the festival week and missed it
    old = diagnose(g, old=True, rules=OLD_RULES)
    assert not matches(old, incident("search_cvr_drop", -0.35))


@pytest.mark.parametrize(
    ("platform", "day"),
    [
        ("taobao", AFTER_D11),
        ("taobao", date(2025, 11, 17)),
        ("shopify", AFTER_BF),
        ("shopify", date(2025, 12, 8)),
        ("taobao", ORDINARY),
        ("shopify", ORDINARY),
    ],
)
def test_quiet_days_and_the_post_festival_lull_raise_nothing_severe(
    platform: str, day: date
) -> None:
    for seed in (1, 2, 3):
        rep = diagnose(generate(spec(platform), day, days=90, seed=seed))
        assert severe(rep) == [], (day, seed, rep.findings)


def test_zh_summary_uses_the_platforms_channel_names() -> None:
    inc = incident("free_search_traffic_drop", -0.4)
    rep = diagnose(generate(spec("taobao"), ORDINARY, days=90, incident=inc, seed=11))
    zh = rep.summaries["zh-CN"]
    assert zh.split("：", 1)[1].startswith("手淘搜索访客数下降") and "search" not in zh
    sh = diagnose(generate(spec("shopify"), ORDINARY, days=90, incident=inc, seed=11))
    assert "Organic search" in sh.summaries["en"]


def test_no_market_traffic_is_never_said_to_explain_traffic() -> None:
    s = spec("taobao", market_posts_traffic=False)
    rep = diagnose(
        generate(s, ORDINARY, days=90, incident=incident("paid_traffic_collapse", -0.7), seed=11)
    )
    assert not any(k.metric == "visitors" and k.market_change is not None for k in rep.kpis)
    assert "whole market" not in rep.summaries["en"]
    assert matches(rep, incident("paid_traffic_collapse", -0.7))
