"""Feature flags: the current document of each flag, and the history of its changes."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flags",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_flags")),
    )
    op.create_table(
        "flag_changes",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("by", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", "version", name=op.f("pk_flag_changes")),
    )
    op.create_index(op.f("ix_flag_changes_at"), "flag_changes", ["at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_flag_changes_at"), table_name="flag_changes")
    op.drop_table("flag_changes")
    op.drop_table("flags")
