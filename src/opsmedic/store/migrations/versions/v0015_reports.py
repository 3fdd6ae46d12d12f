"""Post-mortem drafts: one per incident, rewritten when regenerated (docs/reports.md)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "postmortems",
        sa.Column("incident_id", sa.String(), nullable=False),
        sa.Column("markdown", sa.Text(), nullable=False),
        sa.Column("generated_at", sa.Double(), nullable=False),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_postmortems")),
    )


def downgrade() -> None:
    op.drop_table("postmortems")
