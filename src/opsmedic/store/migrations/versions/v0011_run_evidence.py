"""Timeline lines carry an investigation run's evidence: its step outputs, bounded."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: the lines written before, and every line but evidence, have none.
    op.add_column("timeline", sa.Column("evidence", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("timeline") as batch:
        batch.drop_column("evidence")
