# ruff: noqa: RUF001 (Chinese copy uses fullwidth punctuation and letters on purpose)
"""Claim rules of the packs: cure, efficacy and guarantee claims, rank claims in any script,
media and expert endorsements, urgency and exclusivity, weighed by the product category the copy
is for; and the ordinary words that merely contain the characters."""

from __future__ import annotations

import pytest

from services.content.lint import LintInput, LintInputError, lint
from services.content.lint.rules import PRODUCT_CATEGORIES, RulePackError, _compile_rule


def cn_rules(body: str, category: str | None = None) -> dict[str, str]:
    r = lint(LintInput(body=body, locale="zh-CN", product_category=category))
    return {i.rule or i.code: i.severity for i in r.issues if i.code != "too_long"}


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        # cure and disease claims (广告法 第十七条)
        ("吃了能治失眠", "cn.medical_claims"),
        ("专治失眠多梦", "cn.medical_claims"),
        ("可以治好你的胃病", "cn.medical_claims"),
        ("告别便秘，一身轻松", "cn.medical_claims"),
        ("预防感冒的好帮手", "cn.medical_claims"),
        ("降三高，就喝它", "cn.medical_claims"),
        ("祖传秘方", "cn.medical_claims"),
        ("根治鼻炎", "cn.medical_claims"),
        # efficacy and guarantee claims (第四条、第十六条、第十八条、第二十八条)
        ("保证有效", "cn.efficacy_guarantee"),
        ("7天见效", "cn.efficacy_guarantee"),
        ("三天见效，无需节食", "cn.efficacy_guarantee"),
        ("立即见效", "cn.efficacy_guarantee"),
        ("马上止痛", "cn.efficacy_guarantee"),
        ("保证瘦10斤", "cn.efficacy_guarantee"),
        ("一个月瘦二十斤", "cn.efficacy_guarantee"),
        ("无效退款", "cn.efficacy_guarantee"),
        ("无效全额退款", "cn.efficacy_guarantee"),
        ("包你瘦", "cn.efficacy_guarantee"),
        ("一用就见效", "cn.efficacy_guarantee"),
        ("28天美白", "cn.efficacy_guarantee"),
        ("98%的用户有效", "cn.efficacy_guarantee"),
        ("秒瘦神器", "cn.efficacy_guarantee"),
        # rank claims in any script (第九条(三), 第十一条)
        ("销量第1名", "cn.rank_claims"),
        ("销量第一名", "cn.rank_claims"),
        ("全国第一", "cn.rank_claims"),
        ("行业第1", "cn.rank_claims"),
        ("中国第一品牌", "cn.rank_claims"),
        ("销量NO.1", "cn.rank_claims"),
        ("No 1 面霜", "cn.rank_claims"),
        ("ＮＯ．１精华", "cn.rank_claims"),
        ("全网TOP1", "cn.rank_claims"),
        ("Top 1 爆款", "cn.rank_claims"),
        ("全网销量冠军", "cn.rank_claims"),
        ("类目榜首", "cn.rank_claims"),
        ("人气王", "cn.rank_claims"),
        ("#1 面膜", "cn.rank_claims"),
        # media endorsement (第四条、第十一条、第二十八条)
        ("央视上榜品牌", "cn.media_endorsement"),
        ("CCTV推荐", "cn.media_endorsement"),
        ("CCTV-1 推荐品牌", "cn.media_endorsement"),
        ("央视合作品牌", "cn.media_endorsement"),
        ("荣登央视", "cn.media_endorsement"),
        ("人民日报推荐", "cn.media_endorsement"),
        # state organs (第九条(二))
        ("国家免检产品", "cn.state_organs"),
        # health functions on goods that may not claim them
        ("增强免疫力", "cn.health_function_claims"),
        ("提高宝宝抵抗力", "cn.health_function_claims"),
        ("喝了不长胖", "cn.health_function_claims"),
        ("减肥茶", "cn.health_function_claims"),
        # endorsements by professionals (warning for general goods)
        ("医生推荐", "cn.expert_endorsement"),
        # urgency and exclusivity (warnings: true when true)
        ("万人疯抢", "cn.false_urgency"),
        ("仅剩最后3件", "cn.false_urgency"),
        ("限时秒杀", "cn.false_urgency"),
        ("手慢无", "cn.false_urgency"),
        ("10万人已抢购", "cn.false_urgency"),
        ("独家", "cn.exclusivity"),
        ("全网独家首发", "cn.exclusivity"),
    ],
)
def test_china_claims_are_found(text: str, rule: str) -> None:
    assert rule in cn_rules(text), (text, cn_rules(text))


@pytest.mark.parametrize(
    "text",
    [
        "第一次购买享9折",
        "第1次下单送礼",
        "第一天发货",
        "第一件半价",
        "第一时间发货",
        "第一批现货",
        "第一手货源",
        "第10名下单送小样",
        "第1名下单的顾客免单",
        "第一百位顾客",
        "保证金",
        "缴纳保证金后开店",
        "质量保证，售后无忧",
        "保证正品",
        "包邮到家",
        "治理环境",
        "政治",
        "治安良好",
        "整治",
        "领券后7天内有效",
        "7天无理由退货",
        "3天发货",
        "洗3次不掉色",
        "满300减50",
        "显瘦百搭",
        "修身显瘦",
        "限时3天降价",
        "秒杀",
        "最近上新",
        "活动最后一天",
        "本店最畅销的款式",
        "新款连衣裙，面料柔软透气",
        "王者荣耀联名",
        "Top 10 单品",
        "No.10 号色",
        "改善皮肤干燥",
        "100%纯棉T恤",
        "防水面料",
        "新品首发",
    ],
)
def test_ordinary_china_copy_passes(text: str) -> None:
    found = cn_rules(text)
    assert found == {}, (text, found)


def test_health_claims_weigh_by_product_category() -> None:
    # Ordinary food may not claim a health function; a registered health food may state its
    # approved function (a warning to check it matches) but must carry 本品不能代替药物.
    assert cn_rules("增强免疫力", "food")["cn.health_function_claims"] == "error"
    hf = cn_rules("增强免疫力", "health_food")
    assert hf["cn.health_function_claims"] == "warning"
    assert hf["cn.health_food_disclaimer"] == "error"
    assert "cn.health_food_disclaimer" not in cn_rules(
        "增强免疫力。本品不能代替药物", "health_food"
    )
    # A cure claim is an error for food, cosmetics and health food, a warning (approval number)
    # for a medical device or a drug; a guarantee stays an error for all of them (第十六条).
    for cat in ("food", "cosmetics", "health_food", "apparel", None):
        assert cn_rules("能治失眠", cat)["cn.medical_claims"] == "error", cat
    for cat in ("medical_device", "drug"):
        assert cn_rules("能治失眠", cat)["cn.medical_claims"] == "warning", cat
        assert cn_rules("保证有效", cat)["cn.efficacy_guarantee"] == "error", cat
    # Cosmetics: medical words are errors, efficacy claims need published evidence (warning);
    # neither applies to apparel.
    cos = cn_rules("药妆美白精华", "cosmetics")
    assert cos["cn.cosmetics_medical"] == "error" and cos["cn.cosmetics_efficacy"] == "warning"
    assert cn_rules("美白精华", "apparel") == {}
    # Professionals as endorsers: forbidden for health food, drugs, devices, food, cosmetics.
    assert cn_rules("医生推荐", None)["cn.expert_endorsement"] == "warning"
    assert cn_rules("医生推荐", "health_food")["cn.expert_endorsement"] == "error"


def test_claims_carry_citations_spans_and_the_category() -> None:
    r = lint(LintInput(body="吃了能治失眠，保证瘦10斤", locale="zh-CN", product_category="food"))
    assert r.product_category == "food" and r.as_dict()["product_category"] == "food"
    by_rule = {i.rule: i for i in r.issues}
    assert "第十七条" in (by_rule["cn.medical_claims"].citation or "")
    assert "第十六条" in (by_rule["cn.efficacy_guarantee"].citation or "")
    guarantee = by_rule["cn.efficacy_guarantee"]
    assert guarantee.text == r.issues[-1].text and guarantee.start == 7
    rank = next(i for i in lint(LintInput(body="销量第1名", locale="zh-CN")).issues)
    assert (rank.text, rank.start, rank.end) == ("第1名", 2, 5)
    assert "第九条" in (rank.citation or "") and rank.suggestion


@pytest.mark.parametrize(
    ("text", "rule", "severity"),
    [
        ("Cures insomnia naturally", "ftc.health_claims", "error"),
        ("Reverses diabetes", "ftc.health_claims", "error"),
        ("Guaranteed to lose weight", "ftc.efficacy_guarantee", "error"),
        ("Lose 10 lbs fast", "ftc.efficacy_guarantee", "error"),
        ("Visible results in 7 days", "ftc.efficacy_guarantee", "error"),
        ("The No. 1 serum", "ftc.substantiation", "warning"),
        ("Top 1 pick", "ftc.substantiation", "warning"),
        ("Featured on CCTV", "ftc.endorsements", "warning"),
        ("Heals eczema", "eu.cure_claims", "error"),
        ("Last 3 items!", "eu.false_urgency", "warning"),
        ("Exclusive to our store", "eu.exclusivity", "warning"),
    ],
)
def test_english_claims(text: str, rule: str, severity: str) -> None:
    issues = {i.rule: i.severity for i in lint(LintInput(body=text, locale="en")).issues}
    assert issues.get(rule) == severity, (text, issues)


@pytest.mark.parametrize(
    "text",
    ["Top 10 picks for fall", "Results may take time", "A cure-all smile", "Track No. 12"],
)
def test_ordinary_english_copy_passes_the_claim_rules(text: str) -> None:
    rules = {i.rule for i in lint(LintInput(body=text, locale="en")).issues}
    claims = {"ftc.health_claims", "ftc.efficacy_guarantee", "eu.cure_claims"}
    assert not rules & claims, (text, rules)
    assert "ftc.substantiation" not in rules, (text, rules)


@pytest.mark.parametrize(
    ("text", "locale", "rule"),
    [
        ("売上1位の美容液", "ja", "jp.superiority"),
        ("ナンバーワン化粧水", "ja", "jp.superiority"),
        ("3日で痩せる", "ja", "jp.drug_claims"),
        ("不眠が治る", "ja", "jp.drug_claims"),
        ("銷量第1名", "zh-TW", "tw.misleading_superlatives"),
        ("保證有效", "zh-TW", "tw.medical_claims"),
        ("7天見效", "zh-TW", "tw.medical_claims"),
    ],
)
def test_japan_and_taiwan_claims(text: str, locale: str, rule: str) -> None:
    assert rule in {i.rule for i in lint(LintInput(body=text, locale=locale)).issues}


def test_unknown_categories_are_refused_in_requests_and_packs() -> None:
    with pytest.raises(LintInputError) as exc:
        lint(LintInput(body="x", locale="zh-CN", product_category="spaceship"))
    assert exc.value.loc == "product_category"
    assert "health_food" in PRODUCT_CATEGORIES
    base = {"id": "x", "citation": "c", "severity": "error", "message": "m", "suggestion": "s"}
    with pytest.raises(RulePackError):
        _compile_rule("p", {**base, "terms": ["a"], "category_severity": {"martian": "error"}})
    with pytest.raises(RulePackError):
        _compile_rule("p", {**base, "terms": ["a"], "category_severity": {"food": "fatal"}})


def test_regional_channel_profiles_cite_sources_and_measure() -> None:
    from services.content.lint.engine import load_profiles

    profiles = load_profiles()
    names = ("wechat_template", "douyin", "xiaohongshu", "shopee_push", "line_message")
    for name in (*names, "line_template"):
        assert profiles[name]["sources"] and profiles[name]["limits"], name
    body = "双十一限时特惠全场五折起快来抢购吧朋友们"  # 20 characters: the thing.DATA limit
    ok = lint(LintInput(body=body, locale="zh-CN", channels=["wechat_template"], packs=[]))
    assert ok.ok
    over = lint(LintInput(body=body + "！", locale="zh-CN", channels=["wechat_template"], packs=[]))
    assert [i.code for i in over.issues] == ["too_long"] and not over.ok
    # Xiaohongshu counts a title in display width: 20 Chinese characters or 40 Latin letters.
    xhs = lint(LintInput(body="x", title="秋" * 21, locale="zh-CN", channels=["xiaohongshu"]))
    assert any(i.code == "too_long" and i.field == "title" for i in xhs.issues)
    xhs_ok = lint(LintInput(body="x", title="a" * 40, locale="en", channels=["xiaohongshu"]))
    assert xhs_ok.ok
    line = lint(
        LintInput(body="x" * 61, title="Sale", locale="en", channels=["line_template"], packs=[])
    )
    assert not line.ok
