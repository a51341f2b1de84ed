"""BCP 47 language tags with fallback to the locales a service supports.

Clients send what the browser or the OS says (`en-US`, `zh-Hans-CN`, `ja-JP`, `zh_CN`); each
service supports a few locales (en, zh-CN, zh-TW, ja). The tag falls back the RFC 4647 "lookup"
way, with the Chinese scripts mapped to regions: Hans -> zh-CN, Hant -> zh-TW (and HK/MO/TW)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BeforeValidator

_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
_TRADITIONAL = {"hant", "tw", "hk", "mo"}


def negotiate(tag: str, supported: Sequence[str]) -> str | None:
    """The supported locale a BCP 47 tag falls back to, or None."""
    if not isinstance(tag, str) or not _TAG.match(tag.strip()):
        return None
    parts = [p.lower() for p in re.split(r"[-_]", tag.strip())]
    by_lower = {s.lower(): s for s in supported}
    lang = parts[0]
    if lang == "zh":
        rest = set(parts[1:])
        region = "tw" if rest & _TRADITIONAL else "cn"
        for candidate in (f"zh-{region}", "zh-cn", "zh"):
            if candidate in by_lower:
                return by_lower[candidate]
        return None
    # Lookup: drop subtags from the end until a supported locale matches.
    for n in range(len(parts), 0, -1):
        candidate = "-".join(parts[:n])
        if candidate in by_lower:
            return by_lower[candidate]
    return None


def fallback(supported: Sequence[str]) -> BeforeValidator:
    """A validator that maps a tag to its supported locale (unknown tags pass unchanged, so the
    Literal that follows names the supported ones in its 422)."""

    def _map(value: Any) -> Any:
        if isinstance(value, str):
            return negotiate(value, supported) or value
        return value

    return BeforeValidator(_map)
