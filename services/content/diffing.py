"""Diffs between revisions: by words for Latin scripts, by characters for CJK. Pure."""

from __future__ import annotations

import difflib
import re
from typing import Any

# One token per CJK character (Han, kana, hangul, fullwidth forms), else a word, a run of spaces
# or one punctuation mark.
TOKEN_RE = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\uff00-\uffef"
    r"\U00020000-\U0003134f]"
    r"|[^\W_]+(?:['\u2019][^\W_]+)*"
    r"|\s+"
    r"|."
)
CJK_RE = re.compile(r"^[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def tokens(text: str) -> list[str]:
    out = []
    for m in TOKEN_RE.finditer(text):
        tok = m.group()
        # \w also matches CJK; the class above catches them first only one at a time.
        if len(tok) > 1 and any(CJK_RE.match(c) for c in tok):
            out.extend(_split_mixed(tok))
        else:
            out.append(tok)
    return out


def _split_mixed(tok: str) -> list[str]:
    parts: list[str] = []
    buf = ""
    for c in tok:
        if CJK_RE.match(c):
            if buf:
                parts.append(buf)
                buf = ""
            parts.append(c)
        else:
            buf += c
    if buf:
        parts.append(buf)
    return parts


def diff(old: str, new: str) -> list[dict[str, Any]]:
    a, b = tokens(old), tokens(new)
    ops = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        ops.append({"op": tag, "old": "".join(a[i1:i2]), "new": "".join(b[j1:j2])})
    return ops
