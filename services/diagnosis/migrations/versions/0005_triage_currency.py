"""triage in the tenant's reporting currency: diagnosis' copy of tenants and FX rates, and
the findings' triage columns (severity rank, impact converted, the rate missing)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "diag_tenants",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("reporting_currency", sa.String(length=3), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "diag_fx_rates",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("base", sa.String(length=3), nullable=False),
        sa.Column("quote", sa.String(length=3), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "base", "quote", "date"),
    )
    with op.batch_alter_table("diag_findings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("impact_currency", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("reporting_currency", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("impact_reporting", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("fx_missing", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("severity_rank", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("triage_tier", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("triage_impact", sa.Float(), server_default="0", nullable=False)
        )
        batch_op.drop_index("ix_diag_findings_triage")
        batch_op.create_index(
            "ix_diag_findings_triage",
            ["tenant_id", "status", "severity_rank", "triage_tier", "triage_impact"],
            unique=False,
        )
        batch_op.create_index(
            "ix_diag_findings_currency", ["tenant_id", "impact_currency", "date"], unique=False
        )
    # Findings written before: ranked by severity and their impact in the store's currency
    # until their next update, or the next FX or tenant event, converts them.
    op.execute(
        "UPDATE diag_findings SET "
        "severity_rank = CASE severity WHEN 'critical' THEN 3 WHEN 'high' THEN 2 "
        "WHEN 'medium' THEN 1 ELSE 0 END, "
        "triage_impact = COALESCE(ABS(expected_gmv_impact), 0), "
        "impact_currency = (SELECT s.currency FROM diag_stores s "
        "WHERE s.tenant_id = diag_findings.tenant_id AND s.store_id = diag_findings.store_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("diag_findings", schema=None) as batch_op:
        batch_op.drop_index("ix_diag_findings_currency")
        batch_op.drop_index("ix_diag_findings_triage")
        batch_op.create_index(
            "ix_diag_findings_triage", ["tenant_id", "status", "priority"], unique=False
        )
        for column in (
            "triage_impact",
            "triage_tier",
            "severity_rank",
            "fx_missing",
            "impact_reporting",
            "reporting_currency",
            "impact_currency",
        ):
            batch_op.drop_column(column)
    op.drop_table("diag_fx_rates")
    op.drop_table("diag_tenants")
