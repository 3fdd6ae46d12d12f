"""Revision 0016 on a store with suppressed rows (SQLite and PostgreSQL): a row recorded
before it keeps its counts, its last event's time is its old last seen, its first event
unknown."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from opsmedic.store import Store
from opsmedic.store import migrate as migrations
from opsmedic.store.database import make_engine, parse_url

T0 = 1_800_000_000.0


def test_a_row_from_before_0016_is_kept_with_its_event_time(store_url: str) -> None:
    engine = make_engine(parse_url(store_url))
    try:
        with engine.begin() as conn:
            command.upgrade(migrations.alembic_config(conn), "0014")
            conn.execute(
                sa.text(
                    "INSERT INTO suppressed (rule, fingerprint, outcome, target, incident_id, "
                    "count, first_seen, last_seen, last_event_id, detail) VALUES ('r', 'fp', "
                    "'throttled', 'h:/var', NULL, 7, :first, :last, 'e7', 'once_within 60s')"
                ),
                {"first": T0, "last": T0 + 60},
            )
    finally:
        engine.dispose()
    store = Store(store_url)
    try:
        store.migrate()
        (row,) = store.suppressed.list(since=T0)
        assert (row.count, row.first_seen, row.last_seen) == (7, T0, T0 + 60)
        assert (row.first_event_id, row.last_event_id, row.last_event_time) == ("", "e7", T0 + 60)
    finally:
        store.close()
