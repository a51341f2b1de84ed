# ruff: noqa: RUF001, RUF002, E501
# (full-width punctuation is correct in Chinese and Japanese text; the templates read best whole)
"""Plain-language summaries in en, zh-CN and ja, numbers and dates formatted for the locale.

No locale library: the three formats are small and fixed. en: "1,234.5", "Mon, Nov 3, 2025";
zh-CN and ja: numbers of ten thousand and more in 万 ("1.23万"), dates "2025年11月3日（周一）" /
"2025年11月3日（月）", percentages "12.3%" in all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

SummaryLocale = Literal["en", "zh-CN", "ja"]
LOCALES: tuple[SummaryLocale, ...] = ("en", "zh-CN", "ja")

_WD = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "zh-CN": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
    "ja": ("月", "火", "水", "木", "金", "土", "日"),
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_date(d: date, locale: SummaryLocale) -> str:
    wd = _WD[locale][d.weekday()]
    if locale == "en":
        return f"{wd}, {_MONTHS[d.month - 1]} {d.day}, {d.year}"
    return f"{d.year}年{d.month}月{d.day}日（{wd}）"


def format_number(x: float, locale: SummaryLocale, decimals: int = 0) -> str:
    if locale != "en" and abs(x) >= 10_000:
        return f"{x / 10_000:,.2f}".rstrip("0").rstrip(".") + "万"
    return f"{x:,.{decimals}f}"


def format_money(x: float, currency: str, locale: SummaryLocale) -> str:
    sym = {"CNY": "¥", "JPY": "¥", "USD": "$", "EUR": "€"}.get(currency)
    if locale == "en":
        return f"{x:,.2f} {currency}"
    if sym and currency in ("CNY", "JPY"):
        return f"{sym}{format_number(x, locale, 2)}"
    return f"{format_number(x, locale, 2)} {currency}"


def format_pct(x: float) -> str:
    return f"{abs(x) * 100:.1f}%"


_METRIC = {
    "en": {
        "gmv": "GMV",
        "visitors": "visitors",
        "cvr": "conversion",
        "aov": "order value",
        "ctr": "click-through",
        "inquiry_cvr": "inquiry conversion",
        "dsr_logistics": "logistics rating",
        "dsr_service": "service rating",
        "refund_rate": "refund rate",
        "rows": "data",
    },
    "zh-CN": {
        "gmv": "成交额",
        "visitors": "访客数",
        "cvr": "转化率",
        "aov": "客单价",
        "ctr": "点击率",
        "inquiry_cvr": "询单转化率",
        "dsr_logistics": "物流评分",
        "dsr_service": "服务评分",
        "refund_rate": "退款率",
        "rows": "数据",
    },
    "ja": {
        "gmv": "売上",
        "visitors": "訪問者数",
        "cvr": "購入率",
        "aov": "客単価",
        "ctr": "クリック率",
        "inquiry_cvr": "問い合わせ転換率",
        "dsr_logistics": "配送評価",
        "dsr_service": "サービス評価",
        "refund_rate": "返金率",
        "rows": "データ",
    },
}
_OWNER = {
    "en": {
        "promotion": "promotion",
        "designer": "designer",
        "merchandising": "merchandising",
        "customer_service": "customer service",
        "logistics": "logistics",
        "operations": "operations",
    },
    "zh-CN": {
        "promotion": "推广",
        "designer": "美工",
        "merchandising": "运营/商品",
        "customer_service": "客服",
        "logistics": "物流/品控",
        "operations": "运营",
    },
    "ja": {
        "promotion": "広告運用",
        "designer": "デザイナー",
        "merchandising": "商品企画",
        "customer_service": "カスタマーサービス",
        "logistics": "物流",
        "operations": "運営",
    },
}


# Each platform's own names of the channels (DESIGN.md's channel values), per locale; a
# platform not listed reads the generic names. Taobao and Tmall share Taobao's names.
_GENERIC_CH = {
    "en": {
        "search": "search",
        "recommendation": "recommendation",
        "paid_search": "paid search",
        "paid_display": "paid display",
        "social": "social",
        "live": "live",
        "direct": "direct",
        "email_sms": "email/SMS",
        "other": "other channels",
    },
    "zh-CN": {
        "search": "搜索",
        "recommendation": "推荐",
        "paid_search": "付费搜索",
        "paid_display": "展示广告",
        "social": "社交媒体",
        "live": "直播",
        "direct": "直接访问",
        "email_sms": "邮件/短信",
        "other": "其他渠道",
    },
    "ja": {
        "search": "検索",
        "recommendation": "おすすめ",
        "paid_search": "検索広告",
        "paid_display": "ディスプレイ広告",
        "social": "ソーシャル",
        "live": "ライブ配信",
        "direct": "直接流入",
        "email_sms": "メール/SMS",
        "other": "その他の流入",
    },
}
_TAOBAO = {
    "search": "手淘搜索",
    "recommendation": "猜你喜欢",
    "paid_search": "直通车",
    "paid_display": "引力魔方/万相台",
    "live": "淘宝直播",
    "social": "站外社交",
}
_JD = {
    "search": "京东搜索",
    "recommendation": "京东推荐",
    "paid_search": "京东快车",
    "paid_display": "京东展位/购物触点",
    "live": "京东直播",
}
_SHOPEE = {
    "search": "Shopee Search",
    "recommendation": "Daily Discover",
    "paid_search": "Search Ads",
    "paid_display": "Discovery Ads",
    "live": "Shopee Live",
    "social": "Shopee Feed",
}
_SHOPIFY_EN = {
    "search": "Organic search",
    "recommendation": "Recommendations",
    "paid_search": "Paid search",
    "paid_display": "Paid social/display",
    "social": "Social",
    "direct": "Direct",
    "email_sms": "Email/SMS",
    "other": "Other",
}
_PLATFORM_CH: dict[str, dict[str, dict[str, str]]] = {
    "taobao": {
        "en": {k: f"{v} ({_GENERIC_CH['en'][k]})" for k, v in _TAOBAO.items()},
        "zh-CN": _TAOBAO,
        "ja": _TAOBAO,
    },
    "jd": {
        "en": {k: f"{v} ({_GENERIC_CH['en'][k]})" for k, v in _JD.items()},
        "zh-CN": _JD,
        "ja": _JD,
    },
    "shopee": {"en": _SHOPEE, "zh-CN": _SHOPEE, "ja": _SHOPEE},
    "shopify": {"en": _SHOPIFY_EN},
}


def channel_name(channel: str, locale: SummaryLocale, platform: str = "generic") -> str:
    """The platform's own name of a channel in a locale (generic names where it has none)."""
    own = _PLATFORM_CH.get(platform, {}).get(locale, {})
    if channel in own:
        return own[channel]
    return _GENERIC_CH[locale].get(channel, channel.replace("_", " "))


_SEVERITY_RANK = {"critical": 3, "high": 2, "medium": 1, "low": 0}
# Findings whose move is net of the market (the store against the market, not against itself)
RELATIVE_CODES = frozenset({"cvr_below_market", "ctr_below_market"})


@dataclass(frozen=True)
class SummaryFinding:
    code: str
    metric: str
    owner: str
    channel: str = ""
    severity: str = "medium"
    change: float | None = None  # the primary fact: the move that raised it
    impact: float | None = None  # GMV at stake, store currency

    @property
    def rank(self) -> tuple[int, float, float]:
        return (
            _SEVERITY_RANK.get(self.severity, 0),
            abs(self.impact or 0.0),
            abs(self.change or 0.0),
        )


@dataclass(frozen=True)
class SummaryFacts:
    day: date
    currency: str
    gmv: float | None
    gmv_change: float | None
    top_factor: str | None  # visitors / cvr / aov: the factor that moved gmv most
    top_factor_change: float | None
    market_change: float | None  # of the top factor (or cvr)
    relative_change: float | None
    findings: Sequence[SummaryFinding]
    data_complete: bool = True
    explained_by_market: bool = False
    # the KPIs whose move the market explains: only KPIs the market data covers
    market_explained: Sequence[str] = ()
    has_baseline: bool = True
    platform: str = "generic"
    baseline_method: str = "explicit"
    baseline_weeks: int = 0  # comparable weekdays used
    baseline_skipped: int = 0  # same weekdays passed over (festival periods, context)


def _up(x: float, locale: SummaryLocale) -> str:
    words = {"en": ("rose", "fell"), "zh-CN": ("上升", "下降"), "ja": ("上昇", "低下")}[locale]
    return words[0] if x >= 0 else words[1]


def _headline(f: SummaryFinding, d: str, locale: SummaryLocale, platform: str) -> str:
    """The first sentence when something needs doing: the move, where, and who acts."""
    m, o = _METRIC[locale], _OWNER[locale]
    name = m.get(f.metric, f.metric)
    owner = o.get(f.owner, f.owner)
    c = f.change or 0.0
    pct, up = format_pct(c), _up(c, locale)
    ch = channel_name(f.channel, locale, platform) if f.channel else ""
    rel = f.code in RELATIVE_CODES
    comp = f.code.startswith("competitor_")
    if locale == "en":
        subject = f"a competitor's {name}" if comp else (f"{name} on {ch}" if ch else name)
        net = " net of the market" if rel else ""
        return f"{d}: {subject} {up} {pct}{net}; {owner} to act."
    if locale == "zh-CN":
        subject = f"竞品{name}" if comp else f"{ch}{name}"
        net = "扣除大盘后" if rel else ""
        return f"{d}：{net}{subject}{up}{pct}，请{owner}处理。"
    subject = f"競合の{name}" if comp else (f"{ch}の{name}" if ch else name)
    net = "市場比で" if rel else ""
    return f"{d}：{subject}が{net}{pct}{up}しました。{owner}が対応してください。"


def _market_context(f: SummaryFinding, locale: SummaryLocale) -> str:
    name = _METRIC[locale].get(f.metric, f.metric)
    c = f.change or 0.0
    return {
        "en": f"Context: the market's {name} {_up(c, locale)} {format_pct(c)}.",
        "zh-CN": f"背景：大盘{name}{_up(c, locale)}{format_pct(c)}。",
        "ja": f"背景：市場の{name}は{format_pct(c)}{_up(c, locale)}しました。",
    }[locale]


_WEEKDAY_EN = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")


def _baseline_sentence(f: SummaryFacts, locale: SummaryLocale) -> str:
    """Said only when the baseline is not the obvious one: festival days were passed over, or
    the day is compared with the same phase a year before."""
    if f.baseline_method == "same_phase_last_year":
        return {
            "en": "Compared with the same festival phase a year before.",
            "zh-CN": "对比基准为去年同一活动阶段。",
            "ja": "比較対象は前年の同じイベント期間です。",
        }[locale]
    if f.baseline_method != "comparable_weekdays" or not f.baseline_skipped:
        return ""
    n, wd = f.baseline_weeks, f.day.weekday()
    return {
        "en": f"Compared with the {n} previous {_WEEKDAY_EN[wd]} outside festival periods.",
        "zh-CN": f"对比基准为此前{n}个非大促期间的{_WD['zh-CN'][wd]}。",
        "ja": f"比較対象はセール期間を除く直近{n}回の{_WD['ja'][wd]}曜日です。",
    }[locale]


def summarize(f: SummaryFacts, locale: SummaryLocale = "en") -> str:
    """A few sentences: what needs doing first (the biggest finding by severity, then GMV at
    stake), the day's GMV and its main factor, what the market explains, who else should act,
    the market context and the baseline when it is not the obvious one."""
    m, o = _METRIC[locale], _OWNER[locale]
    d = format_date(f.day, locale)
    end = {"en": ".", "zh-CN": "。", "ja": "。"}[locale]
    if not f.data_complete:
        return {
            "en": f"{d}: the data is incomplete; this is a data problem for operations, not a sales drop.",
            "zh-CN": f"{d}：数据不完整，属于数据问题（运营处理），不是销量下降。",
            "ja": f"{d}：データが不完全です。売上の減少ではなくデータの問題です（運営）。",
        }[locale]
    if not f.has_baseline:
        return {
            "en": f"{d}: no baseline: there is no comparable earlier day to compare with yet, so nothing was diagnosed.",
            "zh-CN": f"{d}：暂无对比基准（历史数据中没有可比的日期），未做诊断。",
            "ja": f"{d}：比較できる過去の日がまだなく、ベースラインがないため診断していません。",
        }[locale]
    act = sorted((x for x in f.findings if x.severity != "low"), key=lambda x: x.rank, reverse=True)
    context = [x for x in f.findings if x.severity == "low" and x.code == "market_moved"]
    parts: list[str] = []
    if act:
        parts.append(_headline(act[0], d, locale, f.platform))
    if f.gmv is not None and f.gmv_change is not None:
        g = format_money(f.gmv, f.currency, locale)
        lead = "" if act else {"en": f"{d}: ", "zh-CN": f"{d}：", "ja": f"{d}："}[locale]
        parts.append(
            {
                "en": f"{lead}GMV {_up(f.gmv_change, locale)} {format_pct(f.gmv_change)} to {g}.",
                "zh-CN": f"{lead}成交额{_up(f.gmv_change, locale)}{format_pct(f.gmv_change)}，为{g}。",
                "ja": f"{lead}売上は{format_pct(f.gmv_change)}{_up(f.gmv_change, locale)}し、{g}でした。",
            }[locale]
        )
    if f.top_factor and f.top_factor_change is not None:
        name = m.get(f.top_factor, f.top_factor)
        c = f.top_factor_change
        s = {
            "en": f"The main factor is {name}, which {_up(c, locale)} {format_pct(c)}",
            "zh-CN": f"主要因素是{name}，{_up(c, locale)}{format_pct(c)}",
            "ja": f"主な要因は{name}で、{format_pct(c)}{_up(c, locale)}しました",
        }[locale]
        if f.market_change is not None and f.relative_change is not None:
            mc, rc = f.market_change, f.relative_change
            s += {
                "en": f"; the market's {_up(mc, locale)} {format_pct(mc)}, so net of the market it "
                f"{_up(rc, locale)} {format_pct(rc)}",
                "zh-CN": f"；大盘{_up(mc, locale)}{format_pct(mc)}，扣除大盘后{_up(rc, locale)}{format_pct(rc)}",
                "ja": f"。市場は{format_pct(mc)}{_up(mc, locale)}し、市場比では{format_pct(rc)}{_up(rc, locale)}",
            }[locale]
        parts.append(s + end)
    # "explained by the market" only for the KPIs the market data covers and moved the same way
    explained = [k for k in f.market_explained if not any(x.metric == k for x in act)]
    if explained:
        sep = {"en": " and ", "zh-CN": "和", "ja": "と"}[locale]
        names = sep.join(m.get(k, k) for k in explained)
        if locale == "en":
            names = names[:1].upper() + names[1:]
        parts.append(
            {
                "en": f"{names} moved with the whole market: not the store's own problem.",
                "zh-CN": f"{names}与整个大盘同样变化，不是店铺自身的问题。",
                "ja": f"{names}は市場全体と同じ動きで、店舗固有の問題ではありません。",
            }[locale]
        )
    for x in act[1:3]:
        name = m.get(x.metric, x.metric)
        ch = channel_name(x.channel, locale, f.platform) if x.channel else ""
        parts.append(
            {
                "en": f"Also hand {name}{f' on {ch}' if ch else ''} to {o.get(x.owner, x.owner)}.",
                "zh-CN": f"另请{o.get(x.owner, x.owner)}处理{ch}{name}问题。",
                "ja": f"{f'{ch}の' if ch else ''}{name}の件は{o.get(x.owner, x.owner)}にも任せてください。",
            }[locale]
        )
    parts.extend(_market_context(x, locale) for x in context[:2])
    if b := _baseline_sentence(f, locale):
        parts.append(b)
    if not parts:
        return {
            "en": f"{d}: nothing unusual.",
            "zh-CN": f"{d}：无异常。",
            "ja": f"{d}：異常はありません。",
        }[locale]
    sep = " " if locale == "en" else ""
    return sep.join(parts)
