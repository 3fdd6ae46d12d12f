"""Suppressed decisions: one counted row per rule, alert and outcome (docs/decisions.md), and
an index on their coalesced timeline lines."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppressed",
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("incident_id", sa.String(), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", sa.Double(), nullable=False),
        sa.Column("last_seen", sa.Double(), nullable=False),
        sa.Column("last_event_id", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("rule", "fingerprint", "outcome", name=op.f("pk_suppressed")),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_timeline_suppressed_ref",
        "timeline",
        ["ref"],
        sqlite_where=sa.text("kind = 'suppressed'"),
        postgresql_where=sa.text("kind = 'suppressed'"),
    )


def downgrade() -> None:
    op.drop_index("ix_timeline_suppressed_ref", table_name="timeline")
    op.drop_table("suppressed")
