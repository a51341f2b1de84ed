"""The lint core: rule packs with their citations, channel limits, links, placeholders,
opt-out and signatures."""

from __future__ import annotations

import pytest

from services.content.lint import LintInput, LintInputError, channel_names, lint, pack_names
from services.content.lint.engine import load_profiles
from services.content.lint.rules import load_packs, terms_regex, trie_pattern


def hits(result, rule: str | None = None, code: str = "banned_term") -> list[str]:  # type: ignore[no-untyped-def]
    return [
        i.text or "" for i in result.issues if i.code == code and (rule is None or i.rule == rule)
    ]


def test_every_rule_cites_its_law_and_every_profile_is_well_formed() -> None:
    packs = load_packs()
    assert {"cn_advertising_law", "us_ftc", "eu_ucpd", "jp_premiums", "tw_fair_trade"} <= set(packs)
    for pack in packs.values():
        assert pack.locales, pack.id
        for rule in pack.rules:
            assert rule.citation and rule.suggestion and rule.message, rule.id
            assert rule.severity in ("error", "warning", "info")
    profiles = load_profiles()
    for name in (
        "sms",
        "sms_cn",
        "push_apns",
        "push_fcm",
        "banner",
        "taobao_title",
        "shopify_title",
    ):
        assert name in profiles
    assert set(channel_names()) == set(profiles) and set(pack_names()) == set(packs)


def test_trie_regex_matches_exactly_the_terms() -> None:
    terms = ["最", "最佳", "最好", "第一", "顶级"]
    rx = terms_regex(terms)
    assert rx is not None
    assert [m.group() for m in rx.finditer("最佳的顶级第一名\uff0c最")] == [
        "最佳",
        "顶级",
        "第一",
        "最",
    ]
    assert trie_pattern(["ab", "abc", "b"]).count("b") >= 2


def cn(body: str, **kw) -> object:  # type: ignore[no-untyped-def]
    return lint(LintInput(body=body, locale="zh-CN", **kw))


def test_china_absolute_terms_with_span_citation_and_suggestion() -> None:
    r = cn("全球顶级面霜\uff0c效果最佳")
    issues = [i for i in r.issues if i.rule == "cn.absolute_terms"]
    assert [i.text for i in issues] == ["顶级", "最佳"]
    first = issues[0]
    assert (first.start, first.end, first.field) == (2, 4, "body")
    assert "第九条" in (first.citation or "") and first.severity == "error" and first.suggestion
    assert not r.ok


@pytest.mark.parametrize(
    "text",
    [
        "最近上新的连衣裙",  # time, not a superlative
        "活动最后一天",
        "第一天下单享9折",
        "最高可减200元",  # a rule of the offer
        "本店最畅销的款式",  # self-comparison (2023 guide)
        "我们追求最好的服务",  # the seller's aspiration (2023 guide)
        "最佳赏味期30天",  # a consumption tip
    ],
)
def test_china_exceptions_and_context_exemptions(text: str) -> None:
    assert hits(cn(text), "cn.absolute_terms") == []


def test_china_medical_state_and_returns_rules() -> None:
    r = cn("本品可治疗失眠\uff0c国家机关推荐\uff0c保本稳赚")
    rules = {i.rule for i in r.issues}
    assert {"cn.medical_claims", "cn.state_organs", "cn.returns_guarantee"} <= rules
    cites = {i.rule: i.citation for i in r.issues}
    assert "第十七条" in (cites["cn.medical_claims"] or "")
    assert "第二十五条" in (cites["cn.returns_guarantee"] or "")


def test_latin_terms_match_whole_words_case_insensitively() -> None:
    r = lint(LintInput(body="FREE gift inside! Freedom is not an offer.", locale="en"))
    assert hits(r, "ftc.free_conditions") == ["FREE"]
    assert hits(lint(LintInput(body="Carefree summer", locale="en"))) == []


def test_ftc_free_needs_its_conditions_stated() -> None:
    bare = lint(LintInput(body="Free tote bag!", locale="en", market="US"))
    assert hits(bare, "ftc.free_conditions") == ["Free"]
    assert bare.packs == ["us_ftc"]
    stated = lint(
        LintInput(body="Free tote bag with any purchase over $50", locale="en", market="US")
    )
    assert hits(stated, "ftc.free_conditions") == []


def test_ftc_endorsements_and_eu_practices() -> None:
    r = lint(LintInput(body="Dermatologist recommended. Only 3 left, hurry! 30% off", locale="en"))
    rules = {i.rule for i in r.issues}
    assert {"ftc.endorsements", "eu.false_urgency", "eu.prior_price"} <= rules
    eu = [i for i in r.issues if i.rule == "eu.false_urgency"]
    assert {i.text for i in eu} == {"Only 3 left", "hurry"}
    assert all("Annex I point 7" in (i.citation or "") for i in eu)
    # A market selects its packs: the German market gets the EU rules only.
    de = lint(LintInput(body="Free gift, hurry!", locale="en", market="DE"))
    assert de.packs == ["eu_ucpd"]


def test_unresolved_placeholders_are_errors() -> None:
    body = "Hi {{ name }}, your code {code} and ${voucher} and %(x)s expire"
    r = lint(LintInput(body=body, locale="en", packs=[]))
    found = [i for i in r.issues if i.code == "unresolved_placeholder"]
    assert [i.text for i in found] == ["{{ name }}", "{code}", "${voucher}", "%(x)s"]
    assert all(i.severity == "error" for i in found) and not r.ok
    assert lint(LintInput(body="Hi there, 50% off {}", locale="en", packs=[])).ok


def test_sms_lint_encoding_segments_and_opt_out() -> None:
    r = lint(
        LintInput(body="It\u2019s Black Friday at Shop: 40% off", locale="en", copy_type="sms")
    )
    assert r.sms is not None and r.sms["encoding"] == "UCS-2" and r.sms["segments"] == 1
    codes = {i.code for i in r.issues}
    assert {"sms_ucs2", "sms_opt_out_missing"} <= codes
    ucs2 = next(i for i in r.issues if i.code == "sms_ucs2")
    assert ucs2.text == "\u2019" and "'" in (ucs2.suggestion or "")
    ok = lint(
        LintInput(body="Black Friday: 40% off. Reply STOP to opt out", locale="en", copy_type="sms")
    )
    assert ok.sms is not None and ok.sms["encoding"] == "GSM-7"
    assert "sms_opt_out_missing" not in {i.code for i in ok.issues}
    transactional = lint(
        LintInput(body="Your order shipped", locale="en", copy_type="sms", marketing=False)
    )
    assert transactional.ok


@pytest.mark.parametrize(
    ("locale", "opt_out"),
    [
        ("zh-CN", "【好店】双十一开抢 回T退订"),
        ("ja", "セール開催中 配信停止はこちら"),
        ("zh-TW", "雙十一開搶 回覆T退訂"),
    ],
)
def test_opt_out_wording_per_locale(locale: str, opt_out: str) -> None:
    r = lint(LintInput(body=opt_out, locale=locale, copy_type="sms"))
    assert "sms_opt_out_missing" not in {i.code for i in r.issues}
    r = lint(LintInput(body="【好店】双十一开抢", locale=locale, copy_type="sms"))
    assert "sms_opt_out_missing" in {i.code for i in r.issues}


def test_china_domestic_sms_signature_is_required_and_counted() -> None:
    r = lint(LintInput(body="双十一开抢 回T退订", locale="zh-CN", copy_type="sms"))
    assert r.channels == ["sms_cn"]
    assert "sms_signature_missing" in {i.code for i in r.issues}
    body = "字" * 60 + " 回T退订"  # 65 characters
    with_sig = lint(LintInput(body=body, locale="zh-CN", copy_type="sms", signature="好店铺旗舰"))
    assert "sms_signature_missing" not in {i.code for i in with_sig.issues}
    assert with_sig.sms is not None and with_sig.sms["characters"] == 65 + 7
    assert with_sig.sms["segments"] == 2


def test_push_payload_bytes_and_display_width() -> None:
    r = lint(LintInput(title="双十一" * 10, body="x" * 100, locale="zh-CN", copy_type="push"))
    assert r.channels == ["push_apns", "push_fcm"]
    apns_title = next(
        m for m in r.measurements if m["channel"] == "push_apns" and m["field"] == "title"
    )
    assert apns_title["measured"] == 60 and not apns_title["ok"]
    big = lint(LintInput(title="t", body="字" * 1400, locale="zh-CN", copy_type="push", packs=[]))
    payload = [m for m in big.measurements if m["unit"] == "payload_bytes"]
    assert all(m["measured"] > 4096 for m in payload)
    assert any(i.code == "too_long" and i.severity == "error" for i in big.issues)


def test_banner_and_taobao_width_limits() -> None:
    r = lint(
        LintInput(
            title="双十一全场五折起限时抢购开始了啦",
            body="b",
            locale="zh-CN",
            copy_type="banner",
            packs=[],
        )
    )
    assert any(i.code == "too_long" and i.field == "title" for i in r.issues)
    assert lint(
        LintInput(
            title="Black Friday: 40% off coats", body="b", locale="en", copy_type="banner", packs=[]
        )
    ).ok
    t = lint(
        LintInput(title="字" * 31, body="b", locale="zh-CN", channels=["taobao_title"], packs=[])
    )
    assert [m["measured"] for m in t.measurements] == [62] and not t.ok


def test_links_tracking_and_forbidden_links() -> None:
    r = lint(
        LintInput(
            body="Shop now http://shop.example/sale?utm_source=sms. Reply STOP to opt out",
            locale="en",
            copy_type="sms",
            packs=[],
        )
    )
    codes = [i.code for i in r.issues]
    assert "link_insecure" in codes and "link_tracking_missing" in codes
    tracked = "https://shop.example/sale?utm_source=sms&utm_medium=sms&utm_campaign=bf"
    ok = lint(
        LintInput(
            body=f"Shop {tracked} Reply STOP to opt out", locale="en", copy_type="sms", packs=[]
        )
    )
    assert ok.ok and not [i for i in ok.issues if i.code.startswith("link")]
    banner = lint(
        LintInput(
            title="Sale", body="see www.shop.example", locale="en", copy_type="banner", packs=[]
        )
    )
    assert [i.code for i in banner.issues] == ["link_not_allowed"]


def test_rules_copy_must_be_plain() -> None:
    long = " ".join(["word"] * 35) + "."
    r = lint(LintInput(body=long + " Short one.", locale="en", copy_type="rules", packs=[]))
    assert [i.code for i in r.issues] == ["sentence_too_long"]


@pytest.mark.parametrize(
    ("kw", "loc"),
    [
        ({"channels": ["telegraph"]}, "channels"),
        ({"packs": ["martian_law"]}, "packs"),
        ({"locale": "fr"}, "locale"),
        ({"copy_type": "poster"}, "copy_type"),
    ],
)
def test_unknown_inputs_are_refused(kw: dict[str, object], loc: str) -> None:
    with pytest.raises(LintInputError) as exc:
        lint(LintInput(body="x", **kw))  # type: ignore[arg-type]
    assert exc.value.loc == loc


def test_taiwan_and_japan_packs_follow_their_locale() -> None:
    tw = lint(LintInput(body="頂級面霜\uff0c最近上新\uff0c可治療痘痘", locale="zh-TW"))
    assert tw.packs == ["tw_fair_trade"]
    assert [(i.rule, i.text) for i in tw.issues] == [
        ("tw.misleading_superlatives", "頂級"),
        ("tw.medical_claims", "可治療"),
    ]
    ja = lint(LintInput(body="業界No.1の美容液、シミが治る", locale="ja"))
    assert ja.packs == ["jp_premiums"]
    assert {i.rule for i in ja.issues} == {"jp.superiority", "jp.drug_claims"}
    assert "第5条" in next(i.citation or "" for i in ja.issues if i.rule == "jp.superiority")


def test_fibre_content_is_not_an_absolute_claim() -> None:
    assert hits(cn("100%纯棉T恤"), "cn.absolute_terms") == []
    assert hits(cn("100%满意"), "cn.absolute_terms") == ["100%"]
