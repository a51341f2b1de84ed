"""Rule packs as data (packs/*.yaml), compiled once into matchers.

Each rule's terms are folded into one trie-shaped regular expression (a shared prefix is matched
once), so a text is scanned once per rule instead of once per term. Matching runs on the
lower-cased text (case-insensitive); ASCII terms match whole words (no ASCII letter or digit on
either side); CJK terms match anywhere.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PACKS_DIR = Path(__file__).parent / "packs"
SEVERITIES = ("error", "warning", "info")
# What a copy may say depends on what it sells: a health claim is an error for food and
# cosmetics, the approved function of a registered health food is not, a medical device's
# indication needs its ad approval number. One list, validated against every pack.
PRODUCT_CATEGORIES = (
    "general",
    "food",
    "health_food",
    "cosmetics",
    "medical_device",
    "drug",
    "apparel",
    "electronics",
    "home",
    "baby",
    "pet",
)
# "off": the rule does not apply to that category.
CATEGORY_SEVERITIES = (*SEVERITIES, "off")
# Fullwidth ASCII (U+FF01..U+FF5E) and the ideographic space, folded one character for one, so
# fullwidth "NO.1" (U+FF2E U+FF2F U+FF0E U+FF11) is "no.1" to the rules and spans stay right.
FULLWIDTH_FOLD = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


class RulePackError(ValueError):
    """A pack file is malformed (caught by the tests, never at request time)."""


def trie_pattern(terms: list[str]) -> str:
    """One regex matching any of the terms, longest alternative first at each node."""
    trie: dict[str, Any] = {}
    for term in terms:
        node = trie
        for ch in term:
            node = node.setdefault(ch, {})
        node[""] = True

    def build(node: dict[str, Any]) -> str:
        end = "" in node
        branches = [re.escape(ch) + build(child) for ch, child in node.items() if ch != ""]
        if not branches:
            return ""
        # Longer continuations first: the regex engine takes the first branch that matches.
        branches.sort(key=lambda b: (-len(b), b))
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end:
            return "(?:" + body + ")?"
        return body

    return build(trie)


def terms_regex(terms: list[str], patterns: list[str] | None = None) -> re.Pattern[str] | None:
    """One case-sensitive regex over lower-cased terms, to run on lower-cased text.

    No look-arounds: a pattern that starts with a character set lets the regex engine skip
    ahead in C to the next possible first character, which is most of the speed. Whole-word
    checks of ASCII terms are done on each match instead (see `scan`).
    """
    words = sorted({t.lower() for t in terms})
    parts = []
    if words:
        parts.append("(?:" + trie_pattern(words) + ")")
    parts.extend(f"(?:{p})" for p in patterns or [])
    if not parts:
        return None
    return re.compile("|".join(parts))


def _is_word(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


@dataclass(frozen=True)
class Rule:
    id: str
    pack: str
    title: str
    citation: str
    severity: str
    message: str
    suggestion: str
    terms: tuple[str, ...]
    regex: re.Pattern[str]
    exceptions: re.Pattern[str] | None = None
    unless_before: re.Pattern[str] | None = None
    unless_text: re.Pattern[str] | None = None
    window: int = 8
    # Per product category: a different severity, or "off".
    category_severity: tuple[tuple[str, str], ...] = ()
    # The rule applies only to copy for these categories (None: to every copy).
    categories: frozenset[str] | None = None
    # A required-wording rule: an issue when none of these is in the copy (title or body).
    requires: re.Pattern[str] | None = None

    def severity_for(self, category: str | None) -> str:
        """The severity for copy of this product category; "off" when the rule does not apply."""
        if self.categories is not None and category not in self.categories:
            return "off"
        return dict(self.category_severity).get(category or "general", self.severity)


@dataclass(frozen=True)
class Pack:
    id: str
    name: str
    locales: frozenset[str]
    markets: frozenset[str]
    rules: tuple[Rule, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Hit:
    rule: Rule
    start: int
    end: int
    text: str


def _compile_rule(pack_id: str, raw: dict[str, Any]) -> Rule:
    for key in ("id", "citation", "severity", "message", "suggestion"):
        if not raw.get(key):
            raise RulePackError(f"{pack_id}: rule {raw.get('id')!r} has no {key}")
    if raw["severity"] not in SEVERITIES:
        raise RulePackError(f"{pack_id}: rule {raw['id']} has severity {raw['severity']!r}")
    terms = [str(t) for t in raw.get("terms", [])]
    requires = raw.get("requires")
    regex = terms_regex(terms, raw.get("patterns"))
    if regex is None and not requires:
        raise RulePackError(f"{pack_id}: rule {raw['id']} has no terms, patterns or requires")
    by_category = {str(k): str(v) for k, v in (raw.get("category_severity") or {}).items()}
    categories = raw.get("categories")
    for cat in [*by_category, *(categories or [])]:
        if cat not in PRODUCT_CATEGORIES:
            raise RulePackError(f"{pack_id}: rule {raw['id']} names unknown category {cat!r}")
    if any(v not in CATEGORY_SEVERITIES for v in by_category.values()):
        raise RulePackError(f"{pack_id}: rule {raw['id']} has a bad category severity")
    before = raw.get("unless_before")
    unless = raw.get("unless_text")
    return Rule(
        id=raw["id"],
        pack=pack_id,
        title=raw.get("title", raw["id"]),
        citation=raw["citation"],
        severity=raw["severity"],
        message=raw["message"],
        suggestion=raw["suggestion"],
        terms=tuple(terms),
        regex=regex if regex is not None else re.compile(r"(?!x)x"),
        exceptions=terms_regex([str(t) for t in raw.get("exceptions", [])]),
        unless_before=re.compile("|".join(before), re.IGNORECASE) if before else None,
        unless_text=re.compile("|".join(unless), re.IGNORECASE) if unless else None,
        window=int(raw.get("window", 8)),
        category_severity=tuple(sorted(by_category.items())),
        categories=frozenset(categories) if categories is not None else None,
        requires=re.compile("|".join(requires), re.IGNORECASE) if requires else None,
    )


def load_pack(path: Path) -> Pack:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    pack_id = raw["pack"]
    rules = tuple(_compile_rule(pack_id, r) for r in raw["rules"])
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise RulePackError(f"{pack_id}: duplicate rule ids")
    return Pack(
        id=pack_id,
        name=raw.get("name", pack_id),
        locales=frozenset(raw.get("locales", [])),
        markets=frozenset(raw.get("markets", [])),
        rules=rules,
    )


@cache
def load_packs(directory: Path = PACKS_DIR) -> dict[str, Pack]:
    packs = [load_pack(p) for p in sorted(directory.glob("*.yaml"))]
    return {p.id: p for p in packs}


def lowered(text: str) -> str:
    """Lower-cased, fullwidth-folded text with the same offsets (else only folded: spans must
    stay right)."""
    folded = text.translate(FULLWIDTH_FOLD)
    low = folded.lower()
    return low if len(low) == len(text) else folded


def scan(rule: Rule, text: str, low: str | None = None) -> list[Hit]:
    low = lowered(text) if low is None else low
    hits: list[Hit] = []
    exempt_starts: list[int] | None = None
    exempt_spans: list[tuple[int, int]] = []
    unless_text: bool | None = None
    n = len(text)
    for m in rule.regex.finditer(low):
        start, end = m.span()
        if start == end:
            continue
        # Whole words for ASCII terms: no ASCII letter or digit glued on either side.
        if (_is_word(low[start]) and start > 0 and _is_word(low[start - 1])) or (
            _is_word(low[end - 1]) and end < n and _is_word(low[end])
        ):
            continue
        if rule.exceptions is not None:
            if exempt_starts is None:
                exempt_spans = [e.span() for e in rule.exceptions.finditer(low)]
                exempt_starts = [a for a, _ in exempt_spans]
            i = bisect.bisect_right(exempt_starts, start)
            # Exception spans do not overlap each other, so only the nearest ones can contain it.
            if any(a <= start and end <= b for a, b in exempt_spans[max(0, i - 2) : i]):
                continue
        if rule.unless_before is not None and rule.unless_before.search(
            text, max(0, start - rule.window), start
        ):
            continue
        if rule.unless_text is not None:
            if unless_text is None:
                unless_text = rule.unless_text.search(text) is not None
            if unless_text:
                continue
        hits.append(Hit(rule, start, end, text[start:end]))
    return hits
