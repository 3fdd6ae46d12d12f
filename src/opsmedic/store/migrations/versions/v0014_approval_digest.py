"""A wait for approval records what the run would do once resumed (a digest of its steps)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: a wait recorded before this revision has none (its action names are compared).
    op.add_column("approvals", sa.Column("digest", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("digest")
