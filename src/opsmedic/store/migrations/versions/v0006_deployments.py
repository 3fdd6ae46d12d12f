"""Deployments of the release controller, with at most one active per service and env."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ACTIVE = "state IN ('started', 'verifying')"


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("service", sa.String(), nullable=False),
        sa.Column("env", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("previous_version", sa.String(), nullable=False),
        sa.Column("strategy", sa.String(), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("last_known_good", sa.Boolean(), nullable=False),
        sa.Column("rolled_back_to", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("heartbeat_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
    )
    op.create_index(
        op.f("ix_deployments_service_env_created_at"),
        "deployments",
        ["service", "env", "created_at"],
    )
    op.create_index(
        "ix_deployments_one_active", "deployments", ["service", "env"], unique=True,
        sqlite_where=sa.text(_ACTIVE), postgresql_where=sa.text(_ACTIVE),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_deployments_one_active", table_name="deployments")
    op.drop_index(op.f("ix_deployments_service_env_created_at"), table_name="deployments")
    op.drop_table("deployments")
