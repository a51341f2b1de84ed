"""The content lint: a pure core (no I/O beyond reading its own data files once).

Channel profiles (profiles.yaml) say how each channel counts and limits text; rule packs
(packs/*.yaml) list terms and patterns with the law each cites.
"""

from services.content.lint.counting import cn_sms_count, display_width, sms_count, utf8_bytes
from services.content.lint.engine import (
    COPY_TYPES,
    LOCALES,
    Issue,
    LintInput,
    LintInputError,
    LintResult,
    channel_names,
    lint,
    pack_names,
)

__all__ = [
    "COPY_TYPES",
    "LOCALES",
    "Issue",
    "LintInput",
    "LintInputError",
    "LintResult",
    "channel_names",
    "cn_sms_count",
    "display_width",
    "lint",
    "pack_names",
    "sms_count",
    "utf8_bytes",
]
