"""Runs record which interrupted run they re-run; unique, so no run is ever re-run twice."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("rerun_of", sa.String(), nullable=True))
    op.create_index("ix_runs_rerun_of", "runs", ["rerun_of"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_runs_rerun_of", "runs")
    op.drop_column("runs", "rerun_of")
