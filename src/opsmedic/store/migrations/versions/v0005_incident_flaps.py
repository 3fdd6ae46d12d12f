"""Incidents count their flaps (reopenings soon after resolving) and say when they flap."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Server defaults: existing rows get 0 and false, and SQLite can add a NOT NULL column.
    op.add_column("incidents", sa.Column("flaps", sa.Integer(), nullable=False, server_default="0"))
    op.add_column(
        "incidents",
        sa.Column("flapping", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("flapping")
        batch.drop_column("flaps")
