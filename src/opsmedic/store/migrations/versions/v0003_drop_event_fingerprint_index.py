"""Drop the events' fingerprint index: no query uses it, and every event insert paid for it."""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_events_fingerprint", "events")


def downgrade() -> None:
    op.create_index("ix_events_fingerprint", "events", ["fingerprint"])
