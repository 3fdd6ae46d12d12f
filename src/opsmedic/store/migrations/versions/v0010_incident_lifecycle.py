"""Incidents remember what people did: acknowledged (by whom, when), assigned, closed."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_COLUMNS = ("human_at", "human_actions", "closed_at", "assignee", "acknowledged_by",
            "acknowledged_at")  # fmt: skip


def upgrade() -> None:
    # Server defaults: existing rows get "" and 0, and SQLite can add a NOT NULL column.
    op.add_column("incidents", sa.Column("acknowledged_at", sa.Double(), nullable=True))
    op.add_column(
        "incidents",
        sa.Column("acknowledged_by", sa.String(), nullable=False, server_default=""),
    )
    op.add_column(
        "incidents", sa.Column("assignee", sa.String(), nullable=False, server_default="")
    )
    op.add_column("incidents", sa.Column("closed_at", sa.Double(), nullable=True))
    op.add_column(
        "incidents",
        sa.Column("human_actions", sa.Integer(), nullable=False, server_default="0"),
    )
    # The engine looks for incidents people changed since it last looked: by this index.
    op.add_column("incidents", sa.Column("human_at", sa.Double(), nullable=True))
    op.create_index(op.f("ix_incidents_human_at"), "incidents", ["human_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_incidents_human_at"), table_name="incidents")
    with op.batch_alter_table("incidents") as batch:
        for column in _COLUMNS:
            batch.drop_column(column)
