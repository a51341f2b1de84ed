"""levels of detail: stores name their own partitioning dimensions; corrections are audited

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 18:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("partition_dimensions", sa.JSON(), server_default="[]", nullable=False)
        )
    op.create_table(
        "metric_corrections",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("end", sa.Date(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("grain", sa.JSON(), nullable=True),
        sa.Column("import_job_id", sa.String(length=36), nullable=True),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_metric_corrections_store",
        "metric_corrections",
        ["tenant_id", "store_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_metric_corrections_store", table_name="metric_corrections")
    op.drop_table("metric_corrections")
    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.drop_column("partition_dimensions")
