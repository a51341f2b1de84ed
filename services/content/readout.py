# ruff: noqa: RUF001 (CJK sentences use fullwidth punctuation on purpose)
"""The A/B readout in one plain sentence per locale (en, zh-CN, ja), from an evaluation.

The sentence names the best-performing variant against the control (variants are lettered A, B,
C... in the experiment's order; A is the control), gives both CTRs, the difference in percentage
points and the relative lift, each with its 95% interval, and says whether the interval excludes
no difference. It reports; it does not decide (the decision rule does, at its planned looks).
"""

from __future__ import annotations

from typing import Any

READOUT_LOCALES = ("en", "zh-CN", "ja")


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def _pts(x: float) -> str:
    return f"{x * 100:+.2f}"


def _rel(x: float) -> str:
    return f"{x * 100:+.1f}%"


def letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else str(i + 1)


def sentences(evaluation: dict[str, Any]) -> dict[str, str]:
    variants = evaluation.get("variants") or []
    lifts = evaluation.get("lift") or []
    if len(variants) < 2 or not lifts:
        return {
            "en": "No readout yet: the control and at least one variant need impressions.",
            "zh-CN": "暂无结论：对照组和至少一个实验组需要有曝光数据。",
            "ja": "まだ結果はありません。対照とほかの案の両方に表示回数が必要です。",
        }
    index = {v["copy_id"]: i for i, v in enumerate(variants)}
    best = max(lifts, key=lambda li: li["ctr_diff"])
    i = index[best["copy_id"]]
    name, ctr_v, ctr_c = letter(i), variants[i]["ctr"], variants[0]["ctr"]
    lo, hi = best["ctr_diff_interval"]
    diff = best["ctr_diff"]
    clear = lo > 0 or hi < 0
    rel = best.get("relative_lift")
    rel_iv = best.get("relative_lift_interval")
    rel_en = rel_zh = rel_ja = ""
    if rel is not None and rel_iv is not None:
        rng = f"{_rel(rel_iv[0])} to {_rel(rel_iv[1])}"
        rel_en = f", a relative lift of {_rel(rel)} (95% CI {rng})"
        rel_zh = f"，相对提升 {_rel(rel)}（95% 置信区间 {_rel(rel_iv[0])} 至 {_rel(rel_iv[1])}）"
        rel_ja = f"、相対リフト {_rel(rel)}（95%信頼区間 {_rel(rel_iv[0])}〜{_rel(rel_iv[1])}）"
    if clear:
        verdict_en = "the interval excludes no difference"
        verdict_zh = "区间不含零，差异明确"
        verdict_ja = "区間はゼロを含まず、差ははっきりしています"
    else:
        verdict_en = "the interval still includes no difference"
        verdict_zh = "区间仍包含零，尚不能判定有差异"
        verdict_ja = "区間はまだゼロを含み、差があるとは言えません"
    return {
        "en": (
            f"Variant {name} has a CTR of {_pct(ctr_v)} against {_pct(ctr_c)} for the control A: "
            f"{_pts(diff)} points (95% CI {_pts(lo)} to {_pts(hi)}){rel_en}; {verdict_en}."
        ),
        "zh-CN": (
            f"方案{name}的点击率为{_pct(ctr_v)}，对照组A为{_pct(ctr_c)}，差值 {_pts(diff)} 个百分点"
            f"（95% 置信区间 {_pts(lo)} 至 {_pts(hi)}）{rel_zh}；{verdict_zh}。"
        ),
        "ja": (
            f"案{name}のクリック率は{_pct(ctr_v)}、対照Aは{_pct(ctr_c)}で、差は{_pts(diff)}ポイント"
            f"（95%信頼区間 {_pts(lo)}〜{_pts(hi)}）{rel_ja}。{verdict_ja}。"
        ),
    }
