"""SLI samples per SLO and minute (docs/slo.md)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slo_samples",
        sa.Column("slo", sa.String(), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("good", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("skewed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("slo", "minute", name=op.f("pk_slo_samples")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("slo_samples")
