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
    findings: Sequence[tuple[str, str, str]]  # (metric, owner, channel or "")
    data_complete: bool = True
    explained_by_market: bool = False


def _up(x: float, locale: SummaryLocale) -> str:
    words = {"en": ("rose", "fell"), "zh-CN": ("上升", "下降"), "ja": ("上昇", "低下")}[locale]
    return words[0] if x >= 0 else words[1]


def summarize(f: SummaryFacts, locale: SummaryLocale = "en") -> str:
    """A few sentences: the day, GMV and its main factor, the market, who should act."""
    m, o = _METRIC[locale], _OWNER[locale]
    d = format_date(f.day, locale)
    if not f.data_complete:
        return {
            "en": f"{d}: the data is incomplete; this is a data problem for operations, not a sales drop.",
            "zh-CN": f"{d}：数据不完整，属于数据问题（运营处理），不是销量下降。",
            "ja": f"{d}：データが不完全です。売上の減少ではなくデータの問題です（運営）。",
        }[locale]
    parts: list[str] = []
    if f.gmv is not None and f.gmv_change is not None:
        g = format_money(f.gmv, f.currency, locale)
        parts.append(
            {
                "en": f"{d}: GMV {_up(f.gmv_change, locale)} {format_pct(f.gmv_change)} to {g}.",
                "zh-CN": f"{d}：成交额{_up(f.gmv_change, locale)}{format_pct(f.gmv_change)}，为{g}。",
                "ja": f"{d}：売上は{format_pct(f.gmv_change)}{_up(f.gmv_change, locale)}し、{g}でした。",
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
        parts.append(s + {"en": ".", "zh-CN": "。", "ja": "。"}[locale])
    if f.explained_by_market:
        parts.append(
            {
                "en": "The whole market moved the same way: not the store's own problem.",
                "zh-CN": "整个大盘同样变化，不是店铺自身的问题。",
                "ja": "市場全体が同じ動きをしており、店舗固有の問題ではありません。",
            }[locale]
        )
    for metric, owner, channel in f.findings[:3]:
        name = m.get(metric, metric)
        ch = f" ({channel.replace('_', ' ')})" if channel else ""
        parts.append(
            {
                "en": f"Hand {name}{ch} to {o.get(owner, owner)}.",
                "zh-CN": f"{name}{ch}问题交给{o.get(owner, owner)}处理。",
                "ja": f"{name}{ch}の件は{o.get(owner, owner)}に任せてください。",
            }[locale]
        )
    if not parts:
        return {
            "en": f"{d}: nothing unusual.",
            "zh-CN": f"{d}：无异常。",
            "ja": f"{d}：異常はありません。",
        }[locale]
    sep = " " if locale == "en" else ""
    return sep.join(parts)
