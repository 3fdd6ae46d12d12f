"""Runs record who started them by hand, and whether a disabled rule was forced."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Server defaults: rows written before this revision are the engine's, never forced.
    op.add_column("runs", sa.Column("started_by", sa.String(), nullable=False, server_default=""))
    op.add_column(
        "runs", sa.Column("forced", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("forced")
        batch.drop_column("started_by")
