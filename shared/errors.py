"""Errors as RFC 9457 problem+json, rendered by one set of handlers.

Service code raises DomainError subclasses carrying their HTTP status; routes never build error
responses themselves. Validation errors list every field at fault as `errors: [{loc, msg}]`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://storeops.dev/problems/"

log = structlog.get_logger("errors")


class DomainError(Exception):
    status: int = 400
    code: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors) if errors else None
        self.headers = headers or {}
        self.extra = extra


class BadRequest(DomainError):
    status, code, title = 400, "bad-request", "Bad request"


class MalformedJson(DomainError):
    status, code, title = 400, "malformed-json", "The body is not valid JSON"


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "Missing or invalid API key"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Your role does not allow this"


class NotFound(DomainError):
    status, code, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(DomainError):
    status, code, title = 413, "payload-too-large", "The body is over the size limit"


class UnsupportedMediaType(DomainError):
    status, code, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(DomainError):
    status, code, title = 422, "validation-failed", "The request is not valid"

    def __init__(self, errors: Sequence[dict[str, Any]], detail: str | None = None) -> None:
        first = errors[0] if errors else {}
        super().__init__(
            detail or f"{_loc_str(first.get('loc', []))}: {first.get('msg', 'invalid')}",
            errors=errors,
        )


class RateLimited(DomainError):
    status, code, title = 429, "rate-limited", "Too many requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Rate limit exceeded; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


class Unavailable(DomainError):
    status, code, title = 503, "unavailable", "Temporarily unavailable"


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """Every method some route of `app` serves at the scope's path (HEAD with GET). Asked
    method by method of the router itself, so included routers are searched too."""
    from starlette.routing import Match

    methods = {
        m
        for m in ("GET", "POST", "PUT", "PATCH", "DELETE")
        if any(r.matches({**scope, "method": m})[0] == Match.FULL for r in app.router.routes)
    }
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def _loc_str(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    code: str | None = None,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (code or str(status)),
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _clean_errors(raw: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for err in raw:
        loc = [p for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", "invalid")), "type": err.get("type")})
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem(
            exc.status,
            exc.title,
            exc.detail,
            code=exc.code,
            instance=request.url.path,
            errors=exc.errors,
            headers=exc.headers,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean_errors(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            e = errors[0]
            return problem(
                400,
                MalformedJson.title,
                f"{e['msg']} at {_loc_str(e['loc'])}",
                code=MalformedJson.code,
                instance=request.url.path,
                errors=[{"loc": e["loc"], "msg": e["msg"]}],
            )
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        return problem(
            422,
            ValidationFailed.title,
            f"{_loc_str(first['loc'])}: {first['msg']}",
            code=ValidationFailed.code,
            instance=request.url.path,
            errors=[{"loc": e["loc"], "msg": e["msg"]} for e in errors],
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized"}
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the first route of the path; GET and POST of one path are
            # two routes, and the client needs all of them.
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        return problem(
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            str(exc.detail) if exc.detail else None,
            instance=request.url.path,
            headers=headers,
        )

    async def _dependency(request: Request, exc: Exception) -> JSONResponse:
        from shared.bus import is_transient

        if is_transient(exc):
            # The database (or broker) is unreachable: nothing was committed, retrying is safe.
            log.warning(
                "dependency_unavailable", path=request.url.path, error_type=type(exc).__name__
            )
            return problem(
                503,
                Unavailable.title,
                "A dependency is unreachable; nothing was written. Retry shortly.",
                code=Unavailable.code,
                instance=request.url.path,
                headers={"Retry-After": "2"},
            )
        return await _unexpected(request, exc)

    async def _disconnect(request: Request, exc: Exception) -> JSONResponse:
        # The client went away (or the body limit cut the body short: answered 413 outside).
        return problem(
            400,
            "Bad request",
            "The request body was not received in full",
            instance=request.url.path,
        )

    app.add_exception_handler(ClientDisconnect, _disconnect)

    # Registered per class so that they are answered inside the app (a handler for Exception
    # itself would sit in the outermost middleware, which re-raises after answering).
    for cls in (DBAPIError, OSError, TimeoutError):
        app.add_exception_handler(cls, _dependency)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
        return problem(
            500, "Internal error", "An unexpected error occurred", instance=request.url.path
        )


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413, whether announced by Content-Length or streamed."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, uploads: Sequence[tuple[str, int]] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # (path regex, limit): file uploads stream to disk and may be larger than JSON bodies.
        self.uploads = [(re.compile(p), n) for p, n in uploads]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = next((n for p, n in self.uploads if p.fullmatch(scope["path"])), self.max_bytes)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                if length > limit:
                    await self._reject(scope, send, limit)
                    return
        received = 0
        too_large = False
        rejected = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Pretend the client went away: the app stops reading, and whatever it
                    # answers is replaced by the 413 below.
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal rejected
            if too_large:
                if not rejected:
                    rejected = True
                    await self._reject(scope, send, limit)
                return
            await send(message)

        await self.app(scope, limited_receive, guarded_send)
        if too_large and not rejected:
            await self._reject(scope, send, limit)

    async def _reject(self, scope: Scope, send: Send, limit: int) -> None:
        body = json.dumps(
            {
                "type": TYPE_BASE + PayloadTooLarge.code,
                "title": PayloadTooLarge.title,
                "status": 413,
                "detail": f"The body is over the limit of {limit} bytes",
                "instance": scope.get("path"),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class RequestLimitsMiddleware:
    """Over-long request lines and headers answer problem+json (414, 431) from the app. The
    server's own parser (uvicorn's h11, raised to SERVER_MAX_REQUEST_BYTES in shared/serve.py)
    still answers a plain-text 400 beyond its limit: the app never sees those requests."""

    def __init__(self, app: ASGIApp, max_target: int = 8192, max_headers: int = 16384) -> None:
        self.app = app
        self.max_target = max_target
        self.max_headers = max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = len(scope.get("raw_path") or scope["path"].encode()) + len(
                scope.get("query_string", b"")
            )
            headers = sum(len(k) + len(v) + 4 for k, v in scope.get("headers", ()))
            if target > self.max_target:
                status, title, detail = (
                    414,
                    "URI too long",
                    (f"The request target is {target} bytes; the limit is {self.max_target}"),
                )
            elif headers > self.max_headers:
                status, title, detail = (
                    431,
                    "Request headers too large",
                    (f"The headers are {headers} bytes; the limit is {self.max_headers}"),
                )
            else:
                await self.app(scope, receive, send)
                return
            await problem(status, title, detail, code=f"{status}", instance=scope["path"][:200])(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


def validate_json_body(model: Any, raw: bytes) -> Any:
    """Parse and validate a JSON body in one pass (pydantic-core's parser, much faster than
    json.loads then validation on bulk endpoints), with the same problems as FastAPI's own:
    400 for malformed JSON, 422 with `loc` starting at "body"."""
    from pydantic import ValidationError

    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise MalformedJson(
                str(errors[0]["msg"]), errors=[{"loc": ["body"], "msg": str(errors[0]["msg"])}]
            ) from None
        raise ValidationFailed(
            [{"loc": ["body", *e["loc"]], "msg": str(e["msg"])} for e in errors]
        ) from None


def inline_schema(model: Any) -> dict[str, Any]:
    """A model's JSON Schema with its $defs inlined, for openapi_extra request bodies."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return dict(resolve(schema))
