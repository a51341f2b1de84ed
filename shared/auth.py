"""Tenants, API keys, roles and store scopes; every service authenticates requests locally.

Keys are random (256 bits), shown once, stored only as a SHA-256 hash and compared with
hmac.compare_digest. A fast hash is enough for keys of that entropy (no dictionary to attack);
`lookup` (a prefix of the hash) only finds the candidate row. Keys and revocations reach the other
services as ingest.api_key_* events and land in the same `auth_keys` table there.

Rules (DESIGN.md): no key or a bad key -> 401; a role too low -> 403; another tenant's or an
out-of-scope resource -> 404, so that its existence does not leak.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from sqlalchemy import JSON, Column, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from shared.db import UTCDateTime
from shared.errors import Forbidden, NotFound, Unauthorized
from shared.events import Event
from shared.events.ingest import ApiKeyCreatedV1, ApiKeyRevokedV1

Role = Literal["admin", "operator", "viewer"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "operator": 1, "admin": 2}
DEFAULT_TENANT = "default"
BOOTSTRAP_KEY_ID = "bootstrap"
BOOTSTRAP_USER_ID = "bootstrap-admin"
TOKEN_PREFIX = "ops_"  # noqa: S105 (a prefix, not a secret)


class AuthKey(SQLModel, table=True):
    __tablename__ = "auth_keys"

    key_id: str = Field(sa_column=Column(String(64), primary_key=True))
    tenant_id: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    user_id: str = Field(sa_column=Column(String(64), nullable=False))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    store_ids: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    lookup: str = Field(sa_column=Column(String(16), nullable=False, index=True))
    secret_hash: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> tuple[str, str]:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return digest[:16], digest


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    user_id: str
    key_id: str
    role: str
    store_ids: frozenset[str] | None

    @property
    def is_platform_admin(self) -> bool:
        return self.tenant_id == DEFAULT_TENANT and self.role == "admin"

    def require(self, role: Role) -> None:
        if ROLE_RANK[self.role] < ROLE_RANK[role]:
            raise Forbidden(f"This needs the {role} role; the key has {self.role}")

    def can_see_store(self, store_id: str) -> bool:
        return self.store_ids is None or store_id in self.store_ids

    def check_store(self, store_id: str) -> None:
        if not self.can_see_store(store_id):
            raise NotFound(f"Store {store_id!r} not found")


async def authenticate(session: AsyncSession, authorization: str | None) -> Principal:
    if not authorization:
        raise Unauthorized("Send Authorization: Bearer <api key>")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        raise Unauthorized("Send Authorization: Bearer <api key>")
    lookup, digest = hash_token(token)
    table = AuthKey.__table__  # type: ignore[attr-defined]
    rows = (await session.execute(select(table).where(table.c.lookup == lookup))).all()
    match = None
    for row in rows:
        # Constant-time comparison of the full hash, whatever the lookup matched.
        if hmac.compare_digest(row.secret_hash.encode(), digest.encode()):
            match = row
    if match is None or match.revoked_at is not None:
        raise Unauthorized("The API key is not valid or has been revoked")
    return Principal(
        tenant_id=match.tenant_id,
        user_id=match.user_id,
        key_id=match.key_id,
        role=match.role,
        store_ids=frozenset(match.store_ids) if match.store_ids is not None else None,
    )


async def upsert_key(session: AsyncSession, event: ApiKeyCreatedV1) -> None:
    """Apply ingest.api_key_created; a revocation seen first (a replay) stays in force."""
    table = AuthKey.__table__  # type: ignore[attr-defined]
    existing = await session.scalar(
        select(table.c.revoked_at).where(table.c.key_id == str(event.key_id))
    )
    values = {
        "tenant_id": event.tenant_id,
        "user_id": str(event.user_id),
        "name": event.name,
        "role": event.role,
        "store_ids": event.store_ids,
        "lookup": event.lookup,
        "secret_hash": event.secret_hash,
        "created_at": event.created_at,
    }
    exists = await session.scalar(select(table.c.key_id).where(table.c.key_id == str(event.key_id)))
    if exists is None:
        await session.execute(table.insert().values(key_id=str(event.key_id), **values))
    else:
        await session.execute(
            table.update()
            .where(table.c.key_id == str(event.key_id))
            .values(**values, revoked_at=existing)
        )


async def revoke_key(session: AsyncSession, event: ApiKeyRevokedV1) -> None:
    table = AuthKey.__table__  # type: ignore[attr-defined]
    exists = await session.scalar(select(table.c.key_id).where(table.c.key_id == str(event.key_id)))
    if exists is None:
        # Revocation before creation: keep a tombstone that no token can ever match.
        await session.execute(
            table.insert().values(
                key_id=str(event.key_id),
                tenant_id=event.tenant_id,
                user_id="",
                name="",
                role="viewer",
                store_ids=[],
                lookup="-",
                secret_hash="-",  # noqa: S106 (a tombstone no hash can equal)
                created_at=event.revoked_at,
                revoked_at=event.revoked_at,
            )
        )
    else:
        await session.execute(
            table.update()
            .where(table.c.key_id == str(event.key_id), table.c.revoked_at.is_(None))
            .values(revoked_at=event.revoked_at)
        )


async def ensure_bootstrap_key(session: AsyncSession, token: str) -> bool:
    """OPS_BOOTSTRAP_API_KEY: an admin key of tenant `default`; idempotent. True if created."""
    table = AuthKey.__table__  # type: ignore[attr-defined]
    lookup, digest = hash_token(token)
    existing = (
        await session.execute(select(table).where(table.c.key_id == BOOTSTRAP_KEY_ID))
    ).first()
    if existing is not None and hmac.compare_digest(existing.secret_hash, digest):
        return False
    values = {
        "tenant_id": DEFAULT_TENANT,
        "user_id": BOOTSTRAP_USER_ID,
        "name": "bootstrap",
        "role": "admin",
        "store_ids": None,
        "lookup": lookup,
        "secret_hash": digest,
        "created_at": datetime.now(UTC),
        "revoked_at": None,
    }
    if existing is None:
        await session.execute(table.insert().values(key_id=BOOTSTRAP_KEY_ID, **values))
    else:  # the operator rotated the bootstrap key: the old one stops working
        await session.execute(
            table.update().where(table.c.key_id == BOOTSTRAP_KEY_ID).values(**values)
        )
    return True


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: authenticate with this service's own key table, then rate-limit."""
    db = request.app.state.db
    async with db.session(readonly=True) as session:
        principal = await authenticate(session, request.headers.get("authorization"))
    request.state.principal = principal
    request.app.state.rate_limiter.check(principal.tenant_id)
    return principal


def require_role(role: Role):  # type: ignore[no-untyped-def]
    async def _dep(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        principal.require(role)
        return principal

    return _dep


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]


def key_sync_subscription(service: str) -> tuple[str, list[str], Any]:
    """The subscription every service but ingest adds: keep its auth_keys table in step with
    ingest.api_key_* events, so that it authenticates requests on its own."""
    from shared.events import topic_for
    from shared.outbox import claim_event

    group = f"{service}.auth-keys"

    def factory(state: Any) -> Any:
        async def handle(event: Event) -> None:
            if not isinstance(event, ApiKeyCreatedV1 | ApiKeyRevokedV1):
                return
            async with state.db.session() as session:
                if not await claim_event(session, group, event):
                    return
                if isinstance(event, ApiKeyCreatedV1):
                    await upsert_key(session, event)
                else:
                    await revoke_key(session, event)
                await session.commit()

        return handle

    return group, [topic_for("ingest")], factory
