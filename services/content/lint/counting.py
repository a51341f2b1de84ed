"""How channels count text: characters, display width, UTF-8 bytes and SMS segments.

Pure functions. SMS follows 3GPP TS 23.038 (the GSM 7-bit default alphabet and its extension
table) and TS 23.040 (concatenated messages: a 6-octet user-data header leaves 153 septets or
67 UCS-2 units per part, against 160 and 70 for a single message).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

# 3GPP TS 23.038 section 6.2.1: the default alphabet (one septet each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Section 6.2.1.1: the extension table, reached through the escape septet (two septets each).
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SMS_SINGLE = {"GSM-7": 160, "UCS-2": 70}
SMS_PART = {"GSM-7": 153, "UCS-2": 67}


def char_count(text: str) -> int:
    """Unicode code points (what most web forms and Shopify count)."""
    return len(text)


def char_width(ch: str, *, ambiguous_wide: bool = False) -> int:
    """Columns one code point takes: East Asian Wide and Fullwidth are two (UAX #11),
    combining marks and format characters zero."""
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    eaw = unicodedata.east_asian_width(ch)
    if eaw in ("W", "F") or (ambiguous_wide and eaw == "A"):
        return 2
    return 1


def display_width(text: str, *, ambiguous_wide: bool = False) -> int:
    if text.isascii():
        return len(text)
    return sum(char_width(ch, ambiguous_wide=ambiguous_wide) for ch in text)


def utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (
        0x3040 <= o <= 0x30FF  # hiragana, katakana
        or 0x3400 <= o <= 0x4DBF
        or 0x4E00 <= o <= 0x9FFF
        or 0xF900 <= o <= 0xFAFF
        or 0xAC00 <= o <= 0xD7AF  # hangul
        or 0x20000 <= o <= 0x3134F
    )


@dataclass(frozen=True)
class SmsCount:
    encoding: str  # "GSM-7" | "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int
    per_segment: int
    characters: int
    # The characters that forced UCS-2, each with its first offset in the text.
    ucs2_characters: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "encoding": self.encoding,
            "units": self.units,
            "segments": self.segments,
            "per_segment": self.per_segment,
            "characters": self.characters,
            "ucs2_characters": self.ucs2_characters,
        }


def _segments(unit_sizes: list[int], single: int, part: int) -> int:
    """Segments for a sequence of indivisible units (an escape pair, a surrogate pair): a unit
    that would straddle a boundary moves whole to the next segment."""
    total = sum(unit_sizes)
    if total == 0:
        return 0
    if total <= single:
        return 1
    segments, used = 1, 0
    for size in unit_sizes:
        if used + size > part:
            segments += 1
            used = 0
        used += size
    return segments


GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION


def sms_count(text: str) -> SmsCount:
    outside = set(text) - GSM7_ALL
    forcing = sorted((text.index(ch), ch) for ch in outside)
    if not forcing:
        encoding = "GSM-7"
        wide = [ch for ch in GSM7_EXTENSION if ch in text]
        units = len(text) + sum(text.count(ch) for ch in wide)
    else:
        # UCS-2 as phones send it is UTF-16: a character outside the BMP takes two units.
        encoding = "UCS-2"
        wide = [ch for ch in outside if ord(ch) > 0xFFFF]
        units = len(text) + sum(text.count(ch) for ch in wide)
    single, part = SMS_SINGLE[encoding], SMS_PART[encoding]
    if units <= single or not wide:
        segments = 0 if units == 0 else 1 if units <= single else -(-units // part)
    else:
        # Only then does a pair that must not straddle a boundary change the count.
        two = set(wide)
        segments = _segments([2 if ch in two else 1 for ch in text], single, part)
    return SmsCount(
        encoding=encoding,
        units=units,
        segments=segments,
        per_segment=single if segments <= 1 else part,
        characters=len(text),
        ucs2_characters=[
            {"char": ch, "offset": off, "codepoint": f"U+{ord(ch):04X}"} for off, ch in forcing
        ],
    )


def cn_sms_count(text: str) -> SmsCount:
    """Chinese carriers bill every character as one (signature included): 70 for one message,
    67 per part beyond, whatever the encoding."""
    n = len(text)
    segments = 0 if n == 0 else 1 if n <= 70 else -(-n // 67)
    return SmsCount(
        encoding="UCS-2",
        units=n,
        segments=segments,
        per_segment=70 if segments <= 1 else 67,
        characters=n,
    )
