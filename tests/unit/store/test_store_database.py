"""Store: URLs, connection set-up, migrations and the errors users see when the DB fails."""

from __future__ import annotations

import random
import socket
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from opsmedic.errors import StoreError, StoreRefused
from opsmedic.store import Store
from opsmedic.store import migrate as migrations
from opsmedic.store.database import SQLITE_BUSY_TIMEOUT_MS, make_engine, parse_url, store_error
from opsmedic.store.schema import metadata

if __package__:
    from ...store_fixtures import make_event, make_run
else:
    from store_fixtures import make_event, make_run


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("postgresql://ops:s3cret@db.internal/ops", "postgresql+psycopg://ops:***@db.internal/ops"),
        (
            "postgres://ops:s3cret@db.internal:6543/ops",
            "postgresql+psycopg://ops:***@db.internal:6543/ops",
        ),
        ("postgresql+psycopg://ops@db.internal/ops", "postgresql+psycopg://ops@db.internal/ops"),
        ("sqlite:///var/lib/opsmedic/opsmedic.db", "sqlite:///var/lib/opsmedic/opsmedic.db"),
    ],
)
def test_url_is_normalised_and_masked_without_connecting(given: str, shown: str) -> None:
    store = Store(given)  # db.internal does not resolve: nothing may connect yet
    assert store.url == shown
    store.close()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("not a url", "is not a database URL"),
        ("", "is not a database URL"),
        ("postgresql://ops:s3cret@db:notaport/opsmedic", "is not a database URL"),
        ("mysql://ops:s3cret@db/opsmedic", "unsupported database 'mysql'"),
        ("http://ops:s3cret@db/opsmedic", "unsupported database 'http'"),
    ],
)
def test_a_bad_url_is_a_store_error_with_the_password_masked(url: str, reason: str) -> None:
    with pytest.raises(StoreError, match=reason) as caught:
        Store(url)
    message = str(caught.value)
    assert "s3cret" not in message
    assert "\n" not in message
    if "ops:" in url:
        assert "ops:***@" in message


def test_unreachable_postgres_is_a_one_line_store_error() -> None:
    port = _closed_port()
    store = Store(f"postgresql://ops:s3cret@127.0.0.1:{port}/opsmedic")
    for attempt in (store.migrate, store.counts, lambda: store.record([make_event()], [])):
        with pytest.raises(StoreError) as caught:
            attempt()
        message = str(caught.value)
        assert message.startswith(f"store postgresql+psycopg://ops:***@127.0.0.1:{port}/opsmedic: ")
        assert "s3cret" not in message
        assert "\n" not in message
    store.close()


def test_an_unopenable_sqlite_file_is_a_store_error(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}")  # a directory, not a file
    with pytest.raises(StoreError, match=f"store sqlite:///{tmp_path}: unable to open"):
        store.migrate()
    store.close()


def test_an_unmigrated_store_is_a_store_error_naming_the_url(store_url: str) -> None:
    store = Store(store_url)
    with pytest.raises(StoreError, match=r"^store .*(runs|events)") as caught:
        store.list_runs()
    assert "\n" not in str(caught.value)
    store.close()


def test_migrate_without_create_refuses_a_missing_store_and_makes_none(store_url: str) -> None:
    store = Store(store_url)
    try:
        with pytest.raises(
            StoreError, match=r"no database at|holds no opsmedic tables yet"
        ) as first:
            store.migrate(create=False)
        with pytest.raises(StoreError) as second:
            store.migrate(create=False)
        assert str(second.value) == str(first.value)  # the first refusal left nothing behind
        store.migrate()
        store.migrate(create=False)  # an existing store opens
        assert store.counts()["events"] == 0
    finally:
        store.close()


def test_migrate_creates_the_sqlite_directory(tmp_path: Path) -> None:
    path = tmp_path / "state" / "nested" / "opsmedic.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.close()
    assert path.is_file()


def test_an_uncreatable_sqlite_directory_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = Store(f"sqlite:///{tmp_path}/file/opsmedic.db")
    with pytest.raises(StoreError, match=f"store sqlite:///{tmp_path}/file/opsmedic.db: cannot"):
        store.migrate()
    store.close()


def test_sqlite_runs_in_wal_mode_with_its_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "opsmedic.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.record([make_event()], [])
    # The journal mode is a property of the file: a plain connection sees it too.
    with closing(sqlite3.connect(path)) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert path.with_name("opsmedic.db-wal").exists()
    store.close()

    engine = make_engine(parse_url(f"sqlite:///{path}"))
    with engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    engine.dispose()
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "foreign_keys": 1,
        "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
    }


def test_migrate_twice_is_fine(store: Store) -> None:
    event = make_event()
    store.record([event], [make_run(event)])
    store.migrate()
    assert store.counts() == {"events": 1, "runs": 1}


def test_head_revision_constant_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations.MIGRATIONS))
    assert script.get_heads() == [migrations.HEAD_REVISION]


def test_migrate_at_the_head_skips_alembic(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_upgrade(_conn: object) -> None:
        raise AssertionError("Alembic ran on a store already at its head")

    monkeypatch.setattr(migrations, "upgrade", no_upgrade)
    store.migrate()
    store.migrate()
    assert store.counts() == {"events": 0, "runs": 0}


@pytest.mark.parametrize("version", [None, "0000"])
def test_migrate_below_the_head_runs_alembic(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch, version: str | None
) -> None:
    engine = make_engine(parse_url(store_url))
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM alembic_version"))
        if version is not None:
            conn.execute(sa.text("INSERT INTO alembic_version VALUES (:v)"), {"v": version})
    engine.dispose()
    upgrades: list[object] = []
    monkeypatch.setattr(migrations, "upgrade", upgrades.append)
    store.migrate()
    assert len(upgrades) == 1


def test_migrate_on_an_empty_database_runs_alembic(store_url: str) -> None:
    store = Store(store_url)
    engine = make_engine(parse_url(store_url))
    try:
        with engine.connect() as conn:
            assert not migrations.at_head(conn)
        store.migrate()
        with engine.connect() as conn:
            assert migrations.at_head(conn)
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == (
                migrations.HEAD_REVISION
            )
    finally:
        engine.dispose()
        store.close()


def test_migrations_build_exactly_the_schema_the_code_uses(store: Store, store_url: str) -> None:
    engine = make_engine(parse_url(store_url))
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == []


def test_two_stores_migrating_at_once_both_succeed(store_url: str) -> None:
    stores = [Store(store_url), Store(store_url)]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def migrate(store: Store) -> None:
        try:
            start.wait()
            store.migrate()
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert stores[1].counts() == {"events": 0, "runs": 0}
    finally:
        for s in stores:
            s.close()


def test_in_memory_sqlite_works_within_one_thread() -> None:
    store = Store("sqlite://")
    store.migrate()
    store.record([make_event()], [])
    assert store.counts() == {"events": 1, "runs": 0}
    store.close()


def test_store_error_keeps_the_driver_error_as_its_cause(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}")
    with pytest.raises(StoreError) as caught:
        store.counts()
    assert isinstance(caught.value.__cause__, sa.exc.OperationalError)
    store.close()


_DATA = [sqlite3.DataError("string or blob too big"), sqlite3.IntegrityError("UNIQUE failed"),
         psycopg.errors.ProgramLimitExceeded("index row requires 30016 bytes"),
         psycopg.errors.CharacterNotInRepertoire("invalid byte sequence"),
         psycopg.errors.CheckViolation("refused"), psycopg.errors.NumericValueOutOfRange("x"),
         psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
         psycopg.errors.UntranslatableCharacter("\\u0000 cannot be converted to text."),
         OverflowError("Python int too large to convert to SQLite INTEGER")]  # fmt: skip
_SERVER = [psycopg.OperationalError("connection refused"), psycopg.errors.AdminShutdown("x"),
           psycopg.errors.DiskFull("x"), psycopg.errors.SerializationFailure("x"),
           psycopg.errors.UndefinedTable("x"), sqlite3.OperationalError("database is locked")]  # fmt: skip


@pytest.mark.parametrize(("error", "refused"), [(e, True) for e in _DATA] +
                         [(e, False) for e in _SERVER], ids=repr)  # fmt: skip
def test_errors_about_the_data_are_refusals_and_the_rest_a_store_error(
    error: Exception, refused: bool
) -> None:
    """Classified by what it is about (the SQLSTATE class: 22, 23, 54 are the data's), not by
    the exception class a driver maps it to: ProgramLimitExceeded is an OperationalError."""
    wrapped = sa.exc.OperationalError("INSERT ...", {}, error)  # as SQLAlchemy raises it
    url = parse_url("postgresql://u@h/db")
    for raised in (error, wrapped):
        assert isinstance(store_error(url, raised), StoreRefused) is refused


def test_a_value_postgresql_cannot_index_is_refused_not_an_unreachable_store(
    store: Store,
) -> None:
    """An id past PostgreSQL's index entry limit (54000 on PostgreSQL) fails as that data's
    fault, so that the batch it shared is retried part by part; SQLite stores it."""
    # Random CJK characters: three bytes each that no compression shrinks below the limit.
    rng = random.Random(1)
    long_id = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(10_000))
    event = make_event(id=long_id)
    if store.local:
        store.record([event], [])
        return
    with pytest.raises(StoreRefused):
        store.record([event], [])
    store.record([make_event()], [])  # and the store serves the next write
