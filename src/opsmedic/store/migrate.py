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
#: The newest revision in MIGRATIONS/versions; a test checks that it is Alembic's head. Bump it
#: with every new revision: a store already there is then recognised without Alembic.
HEAD_REVISION = "0018"
_VERSION_TABLE = "alembic_version"  # Alembic's default; env.py does not change it

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


def at_head(connection: Connection) -> bool:
    """True when the schema is at HEAD_REVISION: two small reads, no Alembic, no lock.

    The table's existence is checked first (a query on a missing table would abort the
    transaction on PostgreSQL). Anything else — no table, no row, an older or unknown
    revision, several heads — is left to `upgrade`, which decides under the lock.
    """
    if not has_schema(connection):
        return False
    versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
    return list(versions) == [HEAD_REVISION]


def has_schema(connection: Connection) -> bool:
    """True when Alembic's version table exists: some revision of opsmedic's schema is there."""
    if connection.dialect.name == "sqlite":
        exists = connection.execute(
            sa.text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
            {"name": _VERSION_TABLE},
        ).first()
    else:
        exists = connection.execute(
            sa.text("SELECT to_regclass(:name)"), {"name": _VERSION_TABLE}
        ).scalar()
    return bool(exists)


def upgrade(connection: Connection) -> None:
    """Bring the schema to the newest revision inside the caller's (write) transaction."""
    with _PROCESS_LOCK:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        from alembic import command

        command.upgrade(alembic_config(connection), "head")
