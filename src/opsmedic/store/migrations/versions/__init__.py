"""Alembic revisions of the store, one module per schema change, oldest first."""
