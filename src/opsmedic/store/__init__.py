"""The store: events and runs in SQLite or PostgreSQL, through SQLAlchemy Core and Alembic."""

from opsmedic.store.store import PruneResult, Store

__all__ = ["PruneResult", "Store"]
