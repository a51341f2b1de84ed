"""Revision diffs: words for Latin scripts, characters for CJK, mixed text split correctly."""

from __future__ import annotations

from services.content.diffing import diff, tokens


def changes(old: str, new: str) -> list[tuple[str, str, str]]:
    return [(o["op"], o["old"], o["new"]) for o in diff(old, new) if o["op"] != "equal"]


def test_latin_text_is_diffed_by_words() -> None:
    assert tokens("It's 40% off") == ["It's", " ", "40", "%", " ", "off"]
    assert changes("Warm coats on sale", "Warm jackets on sale") == [
        ("replace", "coats", "jackets")
    ]


def test_cjk_text_is_diffed_by_characters() -> None:
    assert tokens("双十一大促") == ["双", "十", "一", "大", "促"]
    assert changes("双十一大促开始", "双十二大促开始啦") == [
        ("replace", "一", "二"),
        ("insert", "", "啦"),
    ]
    assert changes("セール開始", "セール終了") == [("replace", "開始", "終了")]


def test_mixed_scripts_keep_latin_words_whole() -> None:
    assert tokens("Black Friday大促") == ["Black", " ", "Friday", "大", "促"]
    assert changes("iPhone限时特惠", "iPad限时特惠") == [("replace", "iPhone", "iPad")]
    ops = diff("same", "same")
    assert ops == [{"op": "equal", "old": "same", "new": "same"}]
