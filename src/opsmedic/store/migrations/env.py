"""Alembic environment: migrates the connection that opsmedic.store.migrate hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from opsmedic.store.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "opsmedic migrations run through opsmedic.store.migrate, which passes a connection"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite can alter a table only by copying it; batch mode does that in later revisions.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
