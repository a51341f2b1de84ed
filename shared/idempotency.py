"""Idempotency-Key on creating POSTs (the IETF httpapi Idempotency-Key draft's semantics).

The first request with a key runs and, if it succeeds (2xx), its response is stored; a retry with
the same key and the same request gets the stored response back (with Idempotent-Replayed: true);
the same key with a different request is a 422; a retry while the first is still running is a
409. Keys are scoped to the API key that sent them and kept for a configurable time.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, Integer, LargeBinary, String, Text, delete, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import UTCDateTime
from shared.errors import PROBLEM_JSON, TYPE_BASE

HEADER = b"idempotency-key"


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_keys"

    scope: str = Field(sa_column=Column(String(64), primary_key=True))
    key: str = Field(sa_column=Column(String(255), primary_key=True))
    request_hash: str = Field(sa_column=Column(String(64), nullable=False))
    status_code: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    content_type: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    location: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    body: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


def _problem(status: int, code: str, title: str, detail: str) -> tuple[int, bytes]:
    body = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "errors": [{"loc": ["header", "Idempotency-Key"], "msg": detail}],
    }
    return status, json.dumps(body).encode()


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, ttl_hours: int = 24) -> None:
        self.app = app
        self.ttl = timedelta(hours=ttl_hours)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        key_raw = headers.get(HEADER)
        auth = headers.get(b"authorization")
        if key_raw is None or auth is None:
            await self.app(scope, receive, send)
            return
        key = key_raw.decode("latin-1").strip()
        if not key or len(key) > 255:
            status, body = _problem(
                400,
                "bad-idempotency-key",
                "Invalid Idempotency-Key",
                "Idempotency-Key must be 1 to 255 characters",
            )
            await _respond(send, status, body)
            return

        # Read the (already size-limited) body so that it can be hashed and replayed.
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        request_hash = hashlib.sha256(
            scope["method"].encode() + b" " + scope["path"].encode() + b"\n" + raw
        ).hexdigest()
        key_scope = hashlib.sha256(auth).hexdigest()
        db = scope["app"].state.db
        table = IdempotencyRecord.__table__  # type: ignore[attr-defined]
        now = datetime.now(UTC)

        async with db.session() as s:
            await s.execute(delete(table).where(table.c.created_at < now - self.ttl))
            try:
                await s.execute(
                    table.insert().values(
                        scope=key_scope, key=key, request_hash=request_hash, created_at=now
                    )
                )
                await s.commit()
                fresh = True
            except IntegrityError:
                await s.rollback()
                fresh = False
        if not fresh:
            async with db.session(readonly=True) as s:
                rec = (
                    await s.execute(
                        select(table).where(table.c.scope == key_scope, table.c.key == key)
                    )
                ).first()
            if rec is None:  # expired between the two statements: treat as a conflict
                status, body = _problem(
                    409, "idempotency-conflict", "Conflict", "Retry the request"
                )
                await _respond(send, status, body)
            elif rec.request_hash != request_hash:
                status, body = _problem(
                    422,
                    "idempotency-key-reused",
                    "Idempotency-Key reused",
                    "This Idempotency-Key was used with a different request",
                )
                await _respond(send, status, body)
            elif rec.status_code is None:
                status, body = _problem(
                    409,
                    "idempotency-in-progress",
                    "Request in progress",
                    "A request with this Idempotency-Key is still running",
                )
                await _respond(send, status, body)
            else:
                extra = [(b"idempotent-replayed", b"true")]
                if rec.location:
                    extra.append((b"location", rec.location.encode()))
                await _respond(
                    send,
                    rec.status_code,
                    rec.body or b"",
                    rec.content_type or "application/json",
                    extra,
                )
            return

        sent_body = False

        async def replay_receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        status_code = 500
        content_type = "application/json"
        location = None
        out_chunks: list[bytes] = []

        async def capture_send(message: Message) -> None:
            nonlocal status_code, content_type, location
            if message["type"] == "http.response.start":
                status_code = message["status"]
                for k, v in message.get("headers", []):
                    if k.lower() == b"content-type":
                        content_type = v.decode("latin-1")
                    elif k.lower() == b"location":
                        location = v.decode("latin-1")
            elif message["type"] == "http.response.body":
                out_chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_receive, capture_send)
        finally:
            async with db.session() as s:
                if 200 <= status_code < 300:
                    await s.execute(
                        table.update()
                        .where(table.c.scope == key_scope, table.c.key == key)
                        .values(
                            status_code=status_code,
                            content_type=content_type,
                            location=location,
                            body=b"".join(out_chunks),
                        )
                    )
                else:
                    # Failed requests are not remembered: the client may retry with the same key.
                    await s.execute(
                        delete(table).where(table.c.scope == key_scope, table.c.key == key)
                    )
                await s.commit()


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str = PROBLEM_JSON,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    headers.extend(extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
