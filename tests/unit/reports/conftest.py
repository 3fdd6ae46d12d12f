"""The reports tests run on SQLite and on PostgreSQL, each on a fresh database."""

from __future__ import annotations

# tests/ is a plain directory on sys.path unless someone makes it a package.
if __package__:
    from ...store_fixtures import store, store_url
else:
    from store_fixtures import store, store_url

__all__ = ["store", "store_url"]
