"""outbox payloads compressed with lz4 on PostgreSQL

A 5,000-row metrics event is ~550 KB of JSON, TOASTed on insert. PostgreSQL's default pglz costs
about twice lz4's time on the insert, which runs inside every POST /metrics transaction. Only the
on-disk compression changes (rows already written keep theirs); a server built without lz4 keeps
pglz. Nothing to do on SQLite.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _compression(method: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DO $$ BEGIN "
        f"ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION {method}; "
        "EXCEPTION WHEN feature_not_supported THEN NULL; "
        "END $$"
    )


def upgrade() -> None:
    _compression("lz4")


def downgrade() -> None:
    _compression("pglz")
