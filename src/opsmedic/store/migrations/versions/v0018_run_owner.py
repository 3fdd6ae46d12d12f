"""Runs' owner and lease: recovery takes only runs whose engine is gone (store/run_owner.py)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows claimed before this revision have no owner, and recovery takes them
    # as it took every running run before.
    op.add_column("runs", sa.Column("owner", sa.String(), nullable=True))
    op.add_column("runs", sa.Column("lease_until", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("owner")
