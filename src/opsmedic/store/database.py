"""Database URLs and engines: normalise and mask URLs, tune connections, phrase errors."""

from __future__ import annotations

import re
import sqlite3
import sys
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry

from opsmedic.config.schema import STORE_SCHEMES
from opsmedic.errors import StoreError, StoreRefused
from opsmedic.store.codec import dumps_json

#: Execution option that marks a connection's transaction as one that will write.
WRITE = "opsmedic_write"

SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT_S = 10

_USERINFO = re.compile(r"(://[^:/@]*:)[^@]*@")


def mask(raw: str) -> str:
    """The URL as users may see it: the password, if any, replaced by ***."""
    return _USERINFO.sub(r"\1***@", raw)


def shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def parse_url(raw: str) -> URL:
    """Parse a store URL; `postgresql://` and `postgres://` get the psycopg 3 driver."""
    try:
        url = sa.make_url(raw)
    except (sa.exc.ArgumentError, ValueError) as e:
        raise StoreError(
            f"store URL {mask(raw)!r} is not a database URL"
            " (expected sqlite:///path.db or postgresql://user:password@host/db)"
        ) from e
    if url.drivername not in STORE_SCHEMES:
        raise StoreError(
            f"store URL {shown(url)!r}: unsupported database {url.drivername!r}"
            " (use sqlite:///path.db or postgresql://user:password@host/db)"
        )
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def describe(url: URL, error: BaseException) -> str:
    """One line naming the (masked) URL and the driver's own reason, never SQL or parameters."""
    reason = error.orig if isinstance(error, sa.exc.StatementError) and error.orig else error
    lines = [line.strip() for line in str(reason).splitlines() if line.strip()]
    text = lines[0] if lines else type(reason).__name__
    if url.password:
        text = text.replace(str(url.password), "***")
    return f"store {shown(url)}: {text}"


# What the DB-API calls the data's fault, not the database's: a constraint or a value the
# column cannot hold (sqlite3 says "string or blob too big" with a DataError; the drivers raise
# UnicodeError, OverflowError or ValueError for a value they cannot bind, such as psycopg's
# NUL in text). Retrying the same data cannot succeed, and other data is not affected.
_DATA_FAULTS = (sa.exc.IntegrityError, sa.exc.DataError, sqlite3.IntegrityError,
                sqlite3.DataError, UnicodeError, OverflowError, ValueError)  # fmt: skip
# PostgreSQL's SQLSTATE classes that are about the statement's data, whatever exception class
# the driver maps them to: 22 data exception, 23 integrity constraint violation, 54 program
# limit exceeded (54000: an index row too big for a page, raised as an OperationalError).
# Not the server's classes: 08 connection, 53 insufficient resources, 57 operator
# intervention, 40 serialization (a retry may pass), XX internal: those fail every request.
_DATA_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})
REFUSED = "the store refused this request's data (a constraint or a value it cannot hold)"


def data_fault(error: BaseException) -> bool:
    """Whether `error` is about the data of the statement, not the connection or the server."""
    reason = error.orig if isinstance(error, sa.exc.DBAPIError) and error.orig else error
    if isinstance(error, _DATA_FAULTS) or isinstance(reason, _DATA_FAULTS):
        return True
    # The driver's own DB-API classes, for errors it raises before the server sees a thing
    # (NUL in text); not imported here: if psycopg is not loaded, the error is not its.
    pg = sys.modules.get("psycopg")
    if pg is not None and isinstance(reason, pg.DataError | pg.IntegrityError):
        return True
    sqlstate = getattr(reason, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in _DATA_SQLSTATE_CLASSES


def store_error(url: URL, error: BaseException) -> StoreError:
    """StoreRefused when the data is at fault (the details stay in its cause, for the log),
    else a StoreError with `describe`'s line."""
    if data_fault(error):
        return StoreRefused(REFUSED)
    return StoreError(describe(url, error))


SQLITE_AUTOCHECKPOINT_PAGES = 20_000  # about 80 MiB of WAL


def make_engine(url: URL) -> Engine:
    """A pooled engine; SQLite connections get WAL and their pragmas, PostgreSQL a timeout."""
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, json_serializer=dumps_json)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        # An unroutable host would otherwise stall start-up for minutes.
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    return sa.create_engine(
        url, json_serializer=dumps_json, pool_pre_ping=True, connect_args=connect_args
    )


def _sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # sqlite3's legacy mode never BEGINs before DDL or SELECT; _sqlite_begin does it instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first, so that the switch to WAL waits for a busy database.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        # A checkpoint fsyncs the database: done on the committing thread it costs a write
        # several milliseconds. The engine checkpoints in the background (Store.checkpoint);
        # this high mark is only the safety net for processes that never do.
        cursor.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_AUTOCHECKPOINT_PAGES}")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """PRAGMA journal_mode = WAL, retried: switching modes does not wait on the busy timeout,
    so a second process opening a new database at the same moment got 'database is locked'."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _sqlite_begin(conn: Connection) -> None:
    # A writer takes the write lock up front (waiting up to busy_timeout) instead of failing
    # with "database is locked" when it upgrades a read lock; readers never block writers.
    write = conn.get_execution_options().get(WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
