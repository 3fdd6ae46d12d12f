"""Schema migrations: Alembic, run in-process from the migrations shipped in this package."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).with_name("migrations")

# Several workers may start at once against one PostgreSQL; this lock makes them take turns.
_PG_LOCK_KEY = 0x6F70736D65646963  # "opsmedic"
# Alembic's `context` and `op` are module globals: one migration at a time per process.
_PROCESS_LOCK = threading.Lock()


def alembic_config(connection: Connection) -> Config:
    """An Alembic config (no alembic.ini needed) whose env.py works on `connection`."""
    # Imported here, not at the top: Alembic (and Mako under it) costs ≈120 ms and ≈10 MiB,
    # and importing the store must not pay it; only a migration does.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Revision modules must be importable names (mypy checks them): v0002_add_incidents.py
    config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection) -> None:
    """Bring the schema to the newest revision inside the caller's (write) transaction."""
    with _PROCESS_LOCK:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        from alembic import command

        command.upgrade(alembic_config(connection), "head")
