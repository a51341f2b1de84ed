"""The input boundary for hostile JSON: checks that run on the raw text BEFORE any recursive
parser sees it, and the value limits every schema shares.

Python's json module and pydantic's parser both recurse per nesting level: a body of 100,000
`[` raises RecursionError (a 500, and a closed keep-alive connection) instead of a problem. JSON
also allows `\\ud800` escapes that decode to a lone UTF-16 surrogate, a str that can be stored
but never encoded again as UTF-8: the answer that echoes it cannot be sent. So every JSON text
that enters (request bodies, NDJSON import lines, webhook payloads) goes through `check_json`
first, and CSV cells through `check_text`. Both are linear and run at C speed (bytes.count, one
regex, itertools.accumulate), so bulk bodies pay a few milliseconds at most.

The supported date range (SUPPORTED_DATES) keeps date arithmetic (a campaign scheduled 30
working days back, a 28-day baseline, a calendar year) away from date.min and date.max, where
it overflows.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from itertools import accumulate
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, Strict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import problem

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted anywhere (our own bodies need 4; platform
webhook payloads about 8)."""

MIN_DATE = dt.date(2000, 1, 1)
MAX_DATE = dt.date(2100, 12, 31)
SUPPORTED_DATES = f"{MIN_DATE.isoformat()}..{MAX_DATE.isoformat()}"

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = re.compile(rb"[^\[\]{}]+")
_DELTA = [0] * 256
for _c in b"[{":
    _DELTA[_c] = 1
for _c in b"]}":
    _DELTA[_c] = -1
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]", re.IGNORECASE)


class JsonRefused(ValueError):
    """The text is refused before parsing; `loc` is the field path when one is known."""

    def __init__(self, message: str, loc: list[str | int] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc or []


def _depth(brackets: bytes) -> int:
    return max(accumulate(map(_DELTA.__getitem__, brackets), initial=0))


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays/objects outside strings (an upper bound for broken text:
    a parser reading left to right never gets deeper than this before it fails)."""
    if raw.count(b"[") + raw.count(b"{") == 0:
        return 0
    return _depth(_BRACKETS.sub(b"", _STRING.sub(b"", raw)))


def too_deep(raw: bytes, max_depth: int) -> bool:
    """nesting_depth(raw) > max_depth, cheaply: brackets inside strings are counted too at first
    (a bound, ~20 ms for a 5 MB body), and only a text over the bound is scanned exactly."""
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False
    if _depth(raw.translate(None, delete=_NOT_BRACKET)) <= max_depth:
        return False
    return nesting_depth(raw) > max_depth


def _surrogate_path(node: Any, path: list[str | int]) -> list[str | int] | None:
    # Iterative on purpose: the depth is already bounded, but recursion is what we avoid here.
    stack: list[tuple[Any, list[str | int]]] = [(node, path)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return at
        elif isinstance(value, dict):
            for k, v in value.items():
                if not _encodable(k):
                    return [*at, k.encode("utf-8", "backslashreplace").decode()]
                stack.append((v, [*at, k]))
        elif isinstance(value, list):
            stack.extend((v, [*at, i]) for i, v in enumerate(value))
    return None


def _encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_json(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise JsonRefused if `raw` nests deeper than `max_depth` or holds a lone surrogate.
    Text that is not JSON at all passes: the parser that follows says why it is malformed."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if too_deep(data, max_depth):
        raise JsonRefused(f"nested deeper than {max_depth} levels of arrays and objects")
    if _SURROGATE_ESCAPE.search(data):
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            return  # malformed: the parser that follows answers it
        at = _surrogate_path(doc, [])
        if at is not None:
            raise JsonRefused(
                "a lone UTF-16 surrogate (\\ud800-\\udfff escape without its pair) is not text",
                at,
            )


def check_text(value: str) -> None:
    """A cell or a header of a CSV file: a str decoded with surrogateescape (or built from an
    escape) must still be encodable."""
    if not _encodable(value):
        raise JsonRefused("the text holds a lone UTF-16 surrogate or undecodable bytes")


# ---- value limits shared by every schema -------------------------------------------------------

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date_only(value: Any) -> Any:
    # pydantic's lax date also takes "2025-01-01T00:00:00" and epoch numbers: a metric date is
    # a calendar date, written as one.
    if isinstance(value, dt.datetime):
        raise ValueError("a date (YYYY-MM-DD) is expected, not a date-time")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        return value
    raise ValueError("a date in the form YYYY-MM-DD is expected")


def _in_range(value: dt.date) -> dt.date:
    if not MIN_DATE <= value <= MAX_DATE:
        raise ValueError(f"the date is outside the supported range {SUPPORTED_DATES}")
    return value


SupportedDate = Annotated[
    dt.date,
    BeforeValidator(_date_only),
    AfterValidator(_in_range),
    Field(description=f"a date YYYY-MM-DD within {SUPPORTED_DATES}"),
]
"""A calendar date within SUPPORTED_DATES, written YYYY-MM-DD."""

StrictInt = Annotated[int, Strict()]
"""An integer that is a JSON integer: not `false`, not `"3"`, not 3.0."""

StrictBool = Annotated[bool, Strict()]
"""A boolean that is a JSON boolean: not 0, not "yes"."""

FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A number that is a finite JSON number: not NaN or Infinity (Python's parser takes both),
not a boolean."""


# ---- the request boundary ----------------------------------------------------------------------


class JsonGuardMiddleware:
    """Every JSON request body passes check_json before a route (or FastAPI) parses it: a 422
    problem naming the field (or the body) otherwise. Bodies that are not JSON (files, forms)
    pass untouched; the body size is already bounded by BodyLimitMiddleware outside this one."""

    def __init__(self, app: ASGIApp, max_depth: int = MAX_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        ctype = b""
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                ctype = value.lower()
        media = ctype.split(b";", 1)[0].strip()
        # NDJSON uploads are not one JSON text: their lines are checked one by one by the import.
        if media and media != b"application/json" and not media.endswith(b"+json"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away (or the body limit cut it short): let the app see it.
                replay = [message]
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                replay = []
                break
        body = b"".join(chunks)
        try:
            check_json(body, max_depth=self.max_depth)
        except JsonRefused as exc:
            loc: list[str | int] = ["body", *exc.loc]
            await problem(
                422,
                "The request is not valid",
                f"{'.'.join(map(str, loc))}: {exc.message}",
                code="validation-failed",
                instance=scope.get("path"),
                errors=[{"loc": loc, "msg": exc.message}],
            )(scope, receive, send)
            return
        sent = False

        async def replay_receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": bool(replay)}
            if replay:
                return replay.pop(0)
            return await receive()

        await self.app(scope, replay_receive, send)
