"""Store fixtures (a fresh migrated Store per test, on SQLite and on PostgreSQL) and factories."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from opsmedic.model import Event, Run
from opsmedic.store import Store

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    # getfixturevalue() hides postgres_url from conftest's auto-marking, so mark it here.
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """Create an empty database on the server, yield its URL, drop it (and its clients)."""
    server = sa.make_url(server_url)
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database of each backend, not yet migrated."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'opsmedic.db'}"
    else:
        yield from fresh_postgres_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated Store on an empty database of each backend."""
    s = Store(store_url)
    s.migrate()
    try:
        yield s
    finally:
        s.close()


T0 = 1_700_000_000.0  # a fixed epoch for records, so that tests never read the clock


def overwrite_flag(url: str, key: str, doc: str, updated_by: str = "cli alice") -> None:
    """Write the JSON `doc` over the stored document of flag `key` with raw SQL, as a hand edit
    (or an older opsmedic) would: nothing validates it."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE flags SET doc = :doc, updated_by = :by WHERE key = :key"),
                         {"doc": doc, "by": updated_by, "key": key})  # fmt: skip
    finally:
        engine.dispose()


def make_event(**fields: Any) -> Event:
    """An event at T0 unless told otherwise."""
    return Event(**{"source": "disk", "resource": "/var/log/app", "time": T0, **fields})


def make_run(event: Event, **fields: Any) -> Run:
    """A planned run for `event`, created at the event's time unless told otherwise."""
    return Run(
        **{
            "rule": "archive-app-logs",
            "event_id": event.id,
            "target": event.target,
            "fingerprint": event.fingerprint,
            "actions": ["archive_logs"],
            "created_at": event.time,
            **fields,
        }
    )


def refuse_resource(url: str, resource: str) -> None:
    """Make the database itself refuse any event whose resource is `resource`."""
    refuse_value(url, "events", "resource", resource)


def refuse_value(url: str, table: str, column: str, value: str, on: str = "INSERT") -> None:
    """Make the database itself refuse a row of `table` whose `column` is LIKE `value`, when
    inserted (or `on="UPDATE"`), as a CHECK constraint would (SQLite: RAISE(ABORT) is a
    constraint error; PostgreSQL: check_violation): an item that encodes fine and fails only
    when committed."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql(
                    f"CREATE TRIGGER refuse BEFORE {on} ON {table} WHEN NEW.{column} LIKE "
                    f"'{value}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            else:
                conn.exec_driver_sql(f"""
                    CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN
                      IF NEW.{column} LIKE '{value.replace("%", "%%")}' THEN
                        RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation';
                      END IF;
                      RETURN NEW;
                    END $$ LANGUAGE plpgsql""")
                conn.exec_driver_sql(
                    f"CREATE TRIGGER refuse BEFORE {on} ON {table} FOR EACH ROW "
                    "EXECUTE FUNCTION refuse()"
                )
    finally:
        engine.dispose()


def at_once(target: Callable[[int], None], n: int, timeout: float = 60.0) -> None:
    """Run target(0) … target(n - 1) in n threads released together by a barrier, as
    concurrent writers are; a thread that raises fails the test (warnings are errors)."""
    barrier = threading.Barrier(n)

    def released(i: int) -> None:
        barrier.wait(timeout)
        target(i)

    threads = [threading.Thread(target=released, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
