"""briefs remember the status a finding's closing cancelled them from (reopening restores it)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("briefs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancelled_from", sa.String(length=16), nullable=True))
    # Before this revision only a finding's closing cancelled a refresh brief, and only an open
    # one: those briefs were cancelled from "open".
    op.execute(
        "UPDATE briefs SET cancelled_from = 'open' "
        "WHERE kind = 'refresh' AND status = 'cancelled' AND finding_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("briefs", schema=None) as batch_op:
        batch_op.drop_column("cancelled_from")
