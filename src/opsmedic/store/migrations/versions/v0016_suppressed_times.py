"""A suppressed decision's row keeps its first event's id and its last event's own time: its
first and last seen become the times opsmedic recorded them."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A row from before this revision: its first event unknown (""), its times were event times.
    op.add_column(
        "suppressed",
        sa.Column("first_event_id", sa.String(), nullable=False, server_default=""),
    )
    op.add_column("suppressed", sa.Column("last_event_time", sa.Double(), nullable=True))
    op.execute("UPDATE suppressed SET last_event_time = last_seen")
    with op.batch_alter_table("suppressed") as batch:
        batch.alter_column("last_event_time", existing_type=sa.Double(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("suppressed") as batch:
        batch.drop_column("last_event_time")
        batch.drop_column("first_event_id")
