"""diagnosis' copy of a store names its own partitioning dimensions

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 18:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("diag_stores", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("partition_dimensions", sa.JSON(), server_default="[]", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("diag_stores", schema=None) as batch_op:
        batch_op.drop_column("partition_dimensions")
