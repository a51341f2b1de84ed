"""metric rows: dims_level (the row's level of detail) for reads

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("metric_rows", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("dims_level", sa.String(length=400), server_default="", nullable=False)
        )
        batch_op.create_index(
            "ix_metric_rows_level",
            ["tenant_id", "store_id", "metric", "dims_level", "date"],
            unique=False,
        )
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, dims_key FROM metric_rows")).all()
    for row_id, dims_key in rows:
        level = ",".join(sorted(json.loads(dims_key)))
        bind.execute(
            sa.text("UPDATE metric_rows SET dims_level = :level WHERE id = :id"),
            {"level": level, "id": row_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("metric_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_metric_rows_level")
        batch_op.drop_column("dims_level")
