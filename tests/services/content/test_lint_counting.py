"""How channels count: SMS encodings and segments, display width, bytes."""

from __future__ import annotations

import pytest

from services.content.lint.counting import cn_sms_count, display_width, sms_count, utf8_bytes


def test_gsm7_single_and_concatenated_limits() -> None:
    assert sms_count("a" * 160).segments == 1
    one_more = sms_count("a" * 161)
    assert (one_more.encoding, one_more.segments, one_more.per_segment) == ("GSM-7", 2, 153)
    assert sms_count("a" * 306).segments == 2
    assert sms_count("a" * 307).segments == 3
    assert sms_count("").segments == 0


def test_gsm7_extension_characters_count_two() -> None:
    c = sms_count("€" * 80)
    assert (c.encoding, c.units, c.segments) == ("GSM-7", 160, 1)
    assert sms_count("€" * 80 + "a").segments == 2
    # é, ü, £ are in the basic table: one septet each, no UCS-2.
    assert sms_count("Café über £5").encoding == "GSM-7"


def test_an_escape_pair_never_straddles_a_segment_boundary() -> None:
    # 152 septets, then "{" (2 septets) cannot start at septet 153: it moves to part two.
    text = "a" * 152 + "{" + "a" * 152
    c = sms_count(text)
    assert c.units == 306
    assert c.segments == 3  # a naive ceil(306 / 153) would say 2
    assert sms_count("a" * 151 + "{" + "a" * 153).segments == 2


def test_ucs2_limits_and_the_characters_that_forced_it() -> None:
    c = sms_count("Hello 世界" + "a" * 62)
    assert (c.encoding, c.units, c.segments) == ("UCS-2", 70, 1)
    assert [f["char"] for f in c.ucs2_characters] == ["世", "界"]
    assert c.ucs2_characters[0]["offset"] == 6
    assert sms_count("世" * 71).segments == 2
    assert sms_count("世" * 134).segments == 2
    assert sms_count("世" * 135).segments == 3
    curly = sms_count("It\u2019s here")
    assert curly.encoding == "UCS-2" and curly.ucs2_characters[0]["codepoint"] == "U+2019"


def test_characters_outside_the_bmp_count_two_units_and_stay_whole() -> None:
    c = sms_count("😀" * 35)
    assert (c.units, c.segments) == (70, 1)
    assert sms_count("😀" * 36).segments == 2
    # 66 units then an emoji (2 units) does not fit the 67 left: it starts part two.
    assert sms_count("a" * 66 + "😀" + "世" * 66).segments == 3
    assert sms_count("a" * 65 + "😀" + "世" * 67).segments == 2


def test_china_domestic_sms_counts_every_character_and_the_signature() -> None:
    assert cn_sms_count("【好店】" + "字" * 66).segments == 1
    assert cn_sms_count("【好店】" + "字" * 67).segments == 2
    assert cn_sms_count("x" * 134).segments == 2
    assert cn_sms_count("x" * 135).segments == 3


@pytest.mark.parametrize(
    ("text", "width"),
    [
        ("Black Friday", 12),
        ("双十一大促", 10),
        ("ｆｕｌｌ", 8),  # noqa: RUF001 (fullwidth Latin is the point)
        ("カタカナ", 8),
        ("ﾊﾝｶｸ", 4),  # halfwidth katakana
        ("e\u0301", 1),  # combining accent takes no column
        ("한국어", 6),
        ("😀", 2),
    ],
)
def test_display_width_counts_east_asian_wide_as_two(text: str, width: int) -> None:
    assert display_width(text) == width


def test_bytes_are_utf8() -> None:
    assert utf8_bytes("abc") == 3
    assert utf8_bytes("双十一") == 9
    assert utf8_bytes("😀") == 4
