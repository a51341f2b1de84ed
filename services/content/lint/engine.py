"""The lint: channel limits, SMS encoding, rule packs, links, placeholders, opt-out. Pure."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from services.content.lint.counting import (
    cn_sms_count,
    display_width,
    is_cjk,
    sms_count,
    utf8_bytes,
)
from services.content.lint.rules import PRODUCT_CATEGORIES, Pack, load_packs, lowered, scan

PROFILES_FILE = Path(__file__).parent / "profiles.yaml"
COPY_TYPES = ("banner", "push", "sms", "guide", "rules", "article")
LOCALES = ("en", "zh-CN", "zh-TW", "ja")
UNITS = ("chars", "width", "bytes", "sms", "sms_cn", "payload_bytes")


class LintInputError(ValueError):
    """The request names something the lint does not know (a channel, a pack)."""

    def __init__(self, loc: str, msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


@cache
def load_profiles(path: Path = PROFILES_FILE) -> dict[str, dict[str, Any]]:
    raw: dict[str, dict[str, Any]] = yaml.safe_load(path.read_text(encoding="utf-8"))
    for name, prof in raw.items():
        for lim in prof.get("limits", []):
            if lim["unit"] not in UNITS or lim["field"] not in ("title", "body", "payload"):
                raise ValueError(f"profile {name}: bad limit {lim}")
    return raw


def channel_names() -> list[str]:
    return sorted(load_profiles())


def pack_names() -> list[str]:
    return sorted(load_packs())


# --- opt-out wording for marketing SMS, per locale ----------------------------------------------

OPT_OUT: dict[str, tuple[re.Pattern[str], str, str]] = {
    "en": (
        re.compile(r"\b(reply|text|txt)\s+stop\b|\bopt[- ]?out\b|\bunsubscribe\b", re.I),
        "47 CFR 64.1200 (TCPA); CTIA Messaging Principles and Best Practices 5.1.1",
        'Add "Reply STOP to opt out"',
    ),
    "zh-CN": (
        re.compile(
            r"回\s*[Tt][Dd]?\s*退订|退订回\s*[Tt]|拒收请回复\s*[Rr]|回复\s*[Tt]\s*退订|退订"
        ),
        "《通信短信息服务管理规定》第十八条",
        "加上“回T退订”",
    ),
    "zh-TW": (
        re.compile(r"退訂|取消訂閱|拒收|回覆\s*[Tt]"),
        "個人資料保護法 第二十條第二、三項",
        "加上「回覆T退訂」",
    ),
    "ja": (
        re.compile(r"配信停止|受信拒否|オプトアウト|停止を希望"),
        "特定電子メールの送信の適正化等に関する法律 第四条",
        "「配信停止はこちら」など受信拒否の方法を記載してください",
    ),
}

# Characters that silently force UCS-2 in Latin copy, and their GSM-7 stand-ins.
GSM_REPLACEMENTS = {
    "\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
    "\u2026": "...", "\u00a0": " ", "\u2022": "-", "\u00b4": "'",
}  # fmt: skip

# Fullwidth punctuation ends a link in CJK copy.
URL_RE = re.compile(
    r"(?:https?://|www\.)[^\s<>\"'\uff0c\u3002\uff01\uff1f\u3001\uff09)\u3011]+", re.I
)
PLACEHOLDER_RE = re.compile(
    r"\{\{.*?\}\}|\{%.*?%\}|\$\{[^}\n]*\}|%\([A-Za-z_]\w*\)[sd]|\{[A-Za-z_][\w.]*\}"
    r"|\[\[[^\]\n]+\]\]|<<[A-Za-z_]\w*>>|\b[A-Z][A-Z_]{2,}_[A-Z_]+\b"
)
SIGNATURE_RE = re.compile(r"^\s*【[^【】]{2,16}】|【[^【】]{2,16}】\s*$")
SENTENCE_RE = re.compile(r"[^.!?\u3002\uff01\uff1f\n]+")
WORD_RE = re.compile(r"[A-Za-z0-9'\u2019-]+")


@dataclass(frozen=True)
class LintInput:
    body: str
    title: str = ""
    locale: str = "en"
    copy_type: str | None = None
    channels: Sequence[str] | None = None
    packs: Sequence[str] | None = None
    market: str | None = None
    marketing: bool = True
    signature: str | None = None
    # What the copy sells (PRODUCT_CATEGORIES): rules weigh claims by it; None = general goods.
    product_category: str | None = None


@dataclass
class Issue:
    code: str
    severity: str
    message: str
    field: str | None = None
    start: int | None = None
    end: int | None = None
    text: str | None = None
    rule: str | None = None
    pack: str | None = None
    citation: str | None = None
    suggestion: str | None = None
    channel: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class LintResult:
    locale: str
    channels: list[str]
    packs: list[str]
    product_category: str | None = None
    issues: list[Issue] = field(default_factory=list)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    sms: dict[str, Any] | None = None

    @property
    def errors(self) -> int:
        return sum(1 for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for i in self.issues if i.severity == "warning")

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": self.errors,
            "warnings": self.warnings,
            "locale": self.locale,
            "channels": self.channels,
            "packs": self.packs,
            "product_category": self.product_category,
            "measurements": self.measurements,
            "sms": self.sms,
            "issues": [i.as_dict() for i in self.issues],
        }


def default_channels(copy_type: str | None, locale: str) -> list[str]:
    if copy_type is None:
        return []
    if copy_type == "sms":
        return ["sms_cn"] if locale == "zh-CN" else ["sms"]
    if copy_type == "push":
        return ["push_apns", "push_fcm"]
    return [copy_type]


def select_packs(locale: str, market: str | None) -> list[Pack]:
    packs = [p for p in load_packs().values() if locale in p.locales]
    if market:
        for_market = [p for p in packs if market in p.markets]
        if for_market:
            return for_market
    return packs


def _payload_bytes(channel: str, title: str, body: str) -> int:
    if "fcm" in channel:
        payload: dict[str, Any] = {"message": {"notification": {"title": title, "body": body}}}
    else:
        payload = {"aps": {"alert": {"title": title, "body": body}}}
    return utf8_bytes(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))


UNIT_LABEL = {
    "chars": "characters",
    "width": "display columns",
    "bytes": "bytes",
    "sms": "SMS segments",
    "sms_cn": "SMS messages",
    "payload_bytes": "payload bytes",
}


def lint(inp: LintInput) -> LintResult:
    profiles = load_profiles()
    if inp.locale not in LOCALES:
        raise LintInputError("locale", f"unknown locale {inp.locale!r}; one of {list(LOCALES)}")
    if inp.product_category is not None and inp.product_category not in PRODUCT_CATEGORIES:
        raise LintInputError(
            "product_category",
            f"unknown product category {inp.product_category!r}; one of {list(PRODUCT_CATEGORIES)}",
        )
    if inp.copy_type is not None and inp.copy_type not in COPY_TYPES:
        raise LintInputError("copy_type", f"unknown copy type {inp.copy_type!r}")
    channels = (
        list(inp.channels)
        if inp.channels is not None
        else default_channels(inp.copy_type, inp.locale)
    )
    for ch in channels:
        if ch not in profiles:
            raise LintInputError("channels", f"unknown channel {ch!r}; one of {channel_names()}")
    all_packs = load_packs()
    if inp.packs is not None:
        for p in inp.packs:
            if p not in all_packs:
                raise LintInputError("packs", f"unknown rule pack {p!r}; one of {pack_names()}")
        packs = [all_packs[p] for p in inp.packs]
    else:
        packs = select_packs(inp.locale, inp.market)

    category = inp.product_category
    result = LintResult(
        locale=inp.locale,
        channels=channels,
        packs=[p.id for p in packs],
        product_category=category,
    )
    _check_required(result, packs, inp)
    fields = [("title", inp.title), ("body", inp.body)]
    for name, text in fields:
        if not text:
            continue
        low = lowered(text)
        for pack in packs:
            for rule in pack.rules:
                severity = rule.severity_for(category)
                if severity == "off" or rule.requires is not None:
                    continue
                for hit in scan(rule, text, low):
                    result.issues.append(
                        Issue(
                            code="banned_term",
                            severity=severity,
                            message=rule.message,
                            field=name,
                            start=hit.start,
                            end=hit.end,
                            text=hit.text,
                            rule=rule.id,
                            pack=rule.pack,
                            citation=rule.citation,
                            suggestion=rule.suggestion,
                        )
                    )
        for m in PLACEHOLDER_RE.finditer(text):
            result.issues.append(
                Issue(
                    code="unresolved_placeholder",
                    severity="error",
                    message="unresolved placeholder: render the template or fill it in",
                    field=name,
                    start=m.start(),
                    end=m.end(),
                    text=m.group(),
                )
            )
    for ch in channels:
        _check_channel(result, ch, profiles[ch], inp)
    result.issues.sort(key=lambda i: (i.field or "", i.start or 0, i.code))
    return result


def _check_required(result: LintResult, packs: list[Pack], inp: LintInput) -> None:
    """Wording the law requires for the category (保健食品: 本品不能代替药物), anywhere."""
    text = f"{inp.title}\n{inp.body}"
    for pack in packs:
        for rule in pack.rules:
            if rule.requires is None:
                continue
            severity = rule.severity_for(inp.product_category)
            if severity == "off" or rule.requires.search(lowered(text)):
                continue
            result.issues.append(
                Issue(
                    code="required_text_missing",
                    severity=severity,
                    message=rule.message,
                    field="body",
                    rule=rule.id,
                    pack=rule.pack,
                    citation=rule.citation,
                    suggestion=rule.suggestion,
                )
            )


def _check_channel(result: LintResult, ch: str, prof: dict[str, Any], inp: LintInput) -> None:
    title, body = inp.title, inp.body
    if prof.get("signature") == "required" and not SIGNATURE_RE.search(body):
        if inp.signature:
            body = f"【{inp.signature}】{body}"
        else:
            result.issues.append(
                Issue(
                    code="sms_signature_missing",
                    severity="error",
                    message="China domestic SMS must carry the sender's 【signature】",
                    field="body",
                    channel=ch,
                    citation="工业和信息化部《通信短信息服务管理规定》; 运营商短信签名报备要求",
                    suggestion="以【店铺名】开头",
                )
            )
    for lim in prof.get("limits", []):
        unit, fld, maximum = lim["unit"], lim["field"], lim["max"]
        text = title if fld == "title" else body
        if unit == "chars":
            measured = len(text)
        elif unit == "width":
            measured = display_width(text)
        elif unit == "bytes":
            measured = utf8_bytes(text)
        elif unit == "payload_bytes":
            measured = _payload_bytes(ch, title, body)
        elif unit == "sms":
            count = sms_count(body)
            result.sms = {"channel": ch, **count.as_dict()}
            measured = count.segments
        else:  # sms_cn
            count = cn_sms_count(body)
            result.sms = {"channel": ch, **count.as_dict()}
            measured = count.segments
        ok = measured <= maximum
        result.measurements.append(
            {
                "channel": ch,
                "field": fld,
                "unit": unit,
                "measured": measured,
                "max": maximum,
                "severity": lim["severity"],
                "ok": ok,
            }
        )
        if not ok:
            result.issues.append(
                Issue(
                    code="too_long",
                    severity=lim["severity"],
                    message=(
                        f"{fld} is {measured} {UNIT_LABEL[unit]}, over the {maximum} of {ch}"
                        + (f" ({lim['note']})" if lim.get("note") else "")
                    ),
                    field=fld if fld != "payload" else "body",
                    channel=ch,
                )
            )
    if result.sms and result.sms.get("channel") == ch and result.sms["encoding"] == "UCS-2":
        forcing = result.sms["ucs2_characters"]
        latin = inp.locale == "en"
        if forcing and latin:
            chars = "".join(str(f["char"]) for f in forcing)
            fixable = [c for c in chars if c in GSM_REPLACEMENTS]
            first = forcing[0]
            result.issues.append(
                Issue(
                    code="sms_ucs2",
                    severity="warning",
                    message=(
                        f"{chars!r} force UCS-2: 70 characters a message (67 per part) "
                        "instead of 160 (153)"
                    ),
                    field="body",
                    start=int(str(first["offset"])),
                    end=int(str(first["offset"])) + 1,
                    text=str(first["char"]),
                    channel=ch,
                    suggestion=(
                        "replace "
                        + ", ".join(f"{c!r} with {GSM_REPLACEMENTS[c]!r}" for c in fixable)
                        if fixable
                        else "remove the characters outside the GSM-7 alphabet"
                    ),
                )
            )
    if prof.get("opt_out") and inp.marketing:
        pattern, citation, suggestion = OPT_OUT[inp.locale]
        if not pattern.search(body):
            result.issues.append(
                Issue(
                    code="sms_opt_out_missing",
                    severity="error",
                    message="marketing SMS must tell the recipient how to opt out",
                    field="body",
                    channel=ch,
                    citation=citation,
                    suggestion=suggestion,
                )
            )
    _check_links(result, ch, prof, title, body)
    if prof.get("max_sentence_words"):
        _check_plain(result, ch, prof, body)


def _check_links(result: LintResult, ch: str, prof: dict[str, Any], title: str, body: str) -> None:
    policy = prof.get("links", "allowed")
    wanted = prof.get("tracking_params") or []
    for name, text in (("title", title), ("body", body)):
        for m in URL_RE.finditer(text):
            url = m.group().rstrip(".,;:!?")
            span = {"field": name, "start": m.start(), "end": m.start() + len(url), "text": url}
            if policy == "forbidden" or (policy == "forbidden_in_title" and name == "title"):
                result.issues.append(
                    Issue(
                        code="link_not_allowed",
                        severity="error",
                        message=f"{ch} does not take links here",
                        channel=ch,
                        **span,  # type: ignore[arg-type]
                    )
                )
                continue
            if url.lower().startswith("http://"):
                result.issues.append(
                    Issue(
                        code="link_insecure",
                        severity="warning",
                        message="use https: browsers and carriers flag plain http links",
                        channel=ch,
                        **span,  # type: ignore[arg-type]
                    )
                )
            if wanted:
                full = url if "://" in url else "https://" + url
                present = parse_qs(urlsplit(full).query)
                missing = [p for p in wanted if p not in present]
                if missing:
                    result.issues.append(
                        Issue(
                            code="link_tracking_missing",
                            severity="warning",
                            message=f"link lacks tracking parameters {missing}",
                            channel=ch,
                            suggestion="add " + "&".join(f"{p}=..." for p in missing),
                            **span,  # type: ignore[arg-type]
                        )
                    )


def _check_plain(result: LintResult, ch: str, prof: dict[str, Any], body: str) -> None:
    max_words = int(prof["max_sentence_words"])
    max_cjk = int(prof.get("max_sentence_cjk_chars", 60))
    for m in SENTENCE_RE.finditer(body):
        sentence = m.group()
        words = len(WORD_RE.findall(sentence))
        cjk = sum(1 for c in sentence if is_cjk(c))
        if words > max_words or cjk > max_cjk:
            result.issues.append(
                Issue(
                    code="sentence_too_long",
                    severity="warning",
                    message=(
                        f"a {words}-word / {cjk}-character sentence: rules must be plain "
                        f"(at most {max_words} words or {max_cjk} CJK characters)"
                    ),
                    field="body",
                    start=m.start(),
                    end=m.end(),
                    channel=ch,
                    suggestion="split it into short sentences, one condition each",
                )
            )
