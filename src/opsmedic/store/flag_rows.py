"""Feature flags as rows: versioned documents, each change recorded in the same transaction."""

from __future__ import annotations

import builtins
import difflib
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from opsmedic.errors import FlagConflict, FlagRefused, FlagUnreadable, NotFoundError, UnknownFlag
from opsmedic.flags.changes import Author, FlagChange, FlagListing, FlagRecord, UnreadableFlag
from opsmedic.flags.model import MAX_FLAGS, Flag, refusals
from opsmedic.store.schema import flag_changes, flags

# Without an expected version a writer takes whatever version it reads (the row locked), so
# only two writers creating one key at once can collide: the loser is tried again.
_ATTEMPTS = 3

# Runs inside a change's transaction, after its rows are written and before the commit: what
# it raises rolls the change back (the flag service mirrors each change to Redis here).
Then = Callable[[FlagChange], None]


class Transactions(Protocol):
    """The Store's transaction factory: one transaction, failures as StoreError."""

    def __call__(self, *, write: bool = False) -> AbstractContextManager[Connection]: ...


class FlagTable:
    """The flags in the store and their history (Store.flags). Every change is one
    transaction: the new version and its history row are written together or not at all."""

    def __init__(self, transaction: Transactions) -> None:
        self._transaction = transaction

    def list(self) -> list[FlagRecord]:
        """Every valid flag, by key (listing() also gives the rows that are not)."""
        return self.listing().records

    def listing(self) -> FlagListing:
        """Every flag row, by key: the valid flags, and apart from them the rows whose document
        is not a valid flag, each with why: one such row must not hide every other flag."""
        with self._transaction() as conn:
            rows = conn.execute(sa.select(flags).order_by(flags.c.key)).mappings().all()
        listing = FlagListing([], [])
        for row in rows:
            try:
                listing.records.append(_record(row))
            except FlagUnreadable as exc:
                listing.unreadable.append(UnreadableFlag(
                    row["key"], row["version"], row["updated_at"], row["updated_by"],
                    exc.problem, row["doc"],
                ))  # fmt: skip
        return listing

    def get(self, key: str) -> FlagRecord:
        """The flag `key`; NotFoundError (with close matches) when there is none,
        FlagUnreadable when its document is not a valid flag."""
        with self._transaction() as conn:
            row = _current(conn, key)
            if row is None:
                raise UnknownFlag(_unknown(conn, key))
        return _record(row)

    def set(
        self, flag: Flag, by: Author, now: float, *, expected_version: int | None = None,
        then: Then | None = None,
    ) -> FlagRecord:  # fmt: skip
        """Write `flag` as the next version of its key, with a history row. `expected_version`
        is the version the writer read (0: the flag must not exist yet); when the store is
        elsewhere, FlagConflict and nothing written. An unchanged document writes nothing
        (and `then` is not called)."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._transaction(write=True) as conn:
                    return _write(conn, flag, by, now, expected_version, then)
            except FlagConflict:
                if expected_version is not None or attempt == _ATTEMPTS:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def versions(self) -> dict[str, int]:
        """Every flag's key and version: the cheap question the API's change stream repeats
        (api/flag_stream.py), answered from the primary key and one column, no documents."""
        with self._transaction() as conn:
            rows = conn.execute(sa.select(flags.c.key, flags.c.version)).all()
        return {key: version for key, version in rows}

    def documents(self, keys: Iterable[str] | None = None) -> dict[str, tuple[int, Any]]:
        """The stored documents of `keys` (None: every flag) with their versions, as they are:
        unvalidated, so that one document edited by hand does not hide every other flag from
        the readers, whose client reports that one as a parse error."""
        stmt = sa.select(flags.c.key, flags.c.version, flags.c.doc)
        if keys is not None:
            stmt = stmt.where(flags.c.key.in_(list(keys)))
        with self._transaction() as conn:
            rows = conn.execute(stmt).all()
        return {key: (version, doc) for key, version, doc in rows}

    def update(
        self, key: str, change: Callable[[Flag], Flag], by: Author, now: float, *,
        expected_version: int | None = None, then: Then | None = None,
    ) -> FlagRecord:  # fmt: skip
        """Write `change(flag)` as the next version of `key`, read and written under the row's
        lock: concurrent changes (a switch and a percentage) take turns and none is lost.
        What `change` raises (an invalid result) leaves the flag as it was."""
        with self._transaction(write=True) as conn:
            row, version = _locked(conn, key, expected_version)
            return _write(conn, change(_flag(key, row["doc"], version)), by, now, version, then)

    def history(self, key: str, limit: int = 100) -> builtins.list[FlagChange]:
        """The changes of `key`, newest first; NotFoundError if it never had one."""
        stmt = (
            sa.select(flag_changes)
            .where(flag_changes.c.key == key)
            .order_by(flag_changes.c.version.desc())
            .limit(limit)
        )
        with self._transaction() as conn:
            rows = conn.execute(stmt).mappings().all()
            if not rows:
                raise UnknownFlag(_unknown(conn, key))
        return [_change(row) for row in rows]

    def since(self, at: float, limit: int) -> tuple[builtins.list[FlagChange], int]:
        """The changes of every flag at or after `at`, newest first, at most `limit` of them,
        and how many there were (the Now page lists the last hour's)."""
        recent = flag_changes.c.at >= at
        stmt = (
            sa.select(flag_changes)
            .where(recent)
            .order_by(flag_changes.c.at.desc(), flag_changes.c.key, flag_changes.c.version)
            .limit(limit)
        )
        total = sa.select(sa.func.count()).select_from(flag_changes).where(recent)
        with self._transaction() as conn:
            rows = conn.execute(stmt).mappings().all()
            count = conn.execute(total).scalar_one() if len(rows) == limit else len(rows)
        return [_change(row) for row in rows], count

    def undo(
        self, key: str, by: Author, now: float, *, expected_version: int | None = None,
        then: Then | None = None,
    ) -> FlagRecord:  # fmt: skip
        """Set `key` back to the document before its latest change, as a new change (so an
        undo can itself be undone). A flag its latest change created has nothing before it."""
        with self._transaction(write=True) as conn:
            _row, version = _locked(conn, key, expected_version)
            before = conn.execute(
                sa.select(flag_changes.c.before).where(
                    flag_changes.c.key == key, flag_changes.c.version == version
                )
            ).scalar()
            if before is None:
                raise NotFoundError(f"flag {key!r}: version {version} created it; there is no "
                                    "version before it to go back to")  # fmt: skip
            return _write(conn, _flag(key, before, version - 1), by, now, version, then)

    def resend(self, key: str, send: Callable[[FlagRecord], None]) -> FlagRecord | None:
        """Call `send` with the flag `key` while its row is locked, so that no writer can
        change it in between (a copy elsewhere gets the current version, never an older one);
        None when there is no such flag."""
        with self._transaction(write=True) as conn:
            row = _current(conn, key, lock=True)
            if row is None:
                return None
            record = _record(row)
            send(record)
        return record

    def seed(
        self, declared: Mapping[str, Flag], by: Author, now: float
    ) -> builtins.list[FlagRecord]:
        """Bring the flags a config declares into the store, in one transaction; returns the
        ones written. The config declares each flag; the store keeps its switch (`enabled`),
        which a person or a rule may have turned since: a restart must not undo a kill switch.
        Flags the config does not name are left as they are; one whose stored document is not
        a valid flag is replaced by the declared one, keeping its switch if it has one."""
        written = []
        with self._transaction(write=True) as conn:
            for key, flag in declared.items():
                row = _current(conn, key, lock=True)
                if row is not None:
                    flag = flag.model_copy(update={"enabled": _switch(row, flag.enabled)})
                    if _doc(flag) == row["doc"]:
                        continue
                version = row["version"] if row is not None else 0
                written.append(_write(conn, flag, by, now, version))
        return written


def _write(
    conn: Connection, flag: Flag, by: Author, now: float, expected_version: int | None,
    then: Then | None = None,
) -> FlagRecord:  # fmt: skip
    """The write itself, inside the caller's transaction: the update (or the insert of a new
    key) and its history row."""
    row = _current(conn, flag.key, lock=True)
    version = row["version"] if row is not None else 0
    if expected_version is not None and expected_version != version:
        raise FlagConflict(flag.key, expected_version, version)
    doc = _doc(flag)
    if row is not None and row["doc"] == doc:
        return _record(row)
    if row is None:
        _room_for_one(conn, flag.key)
    values = {"doc": doc, "version": version + 1, "updated_at": now, "updated_by": str(by)}
    try:
        if row is None:
            conn.execute(flags.insert().values(key=flag.key, **values))
        else:
            # The row is locked since it was read: no other writer can have moved it.
            conn.execute(flags.update().where(flags.c.key == flag.key).values(**values))
        conn.execute(flag_changes.insert().values(
            key=flag.key, version=version + 1, before=row["doc"] if row is not None else None,
            after=doc, by=str(by), run_id=by.run_id, at=now,
        ))  # fmt: skip
    except sa.exc.IntegrityError:
        # Two writers created the key at once (there was no row to lock): the other one won,
        # and its insert made version 1.
        raise FlagConflict(flag.key, version, version + 1) from None
    if then is not None:
        before, problem = _before(flag.key, row["doc"] if row is not None else None, version)
        then(FlagChange(flag.key, version + 1, before, flag, by, now, problem))
    # The record names the author, the history row also the run (FlagRecord.updated_by).
    return FlagRecord(flag, version + 1, now, Author(by.kind, by.name))


def _room_for_one(conn: Connection, key: str) -> None:
    """FlagRefused when the store holds MAX_FLAGS flags already: every reader takes the whole
    set at once and refuses a bigger one (flags/redis_cache.py)."""
    count = conn.execute(sa.select(sa.func.count()).select_from(flags)).scalar_one()
    if count >= MAX_FLAGS:
        raise FlagRefused(f"flag {key!r}: the store holds {count} flags already, the most a "
                          f"flag set may have ({MAX_FLAGS}: readers refuse more)")  # fmt: skip


def _locked(conn: Connection, key: str, expected_version: int | None) -> tuple[sa.RowMapping, int]:
    """`key`'s row, locked for this transaction, and its version: UnknownFlag, or
    FlagConflict when it is not at `expected_version`."""
    row = _current(conn, key, lock=True)
    if row is None:
        raise UnknownFlag(_unknown(conn, key))
    version: int = row["version"]
    if expected_version is not None and expected_version != version:
        raise FlagConflict(key, expected_version, version)
    return row, version


def _current(conn: Connection, key: str, *, lock: bool = False) -> sa.RowMapping | None:
    stmt = sa.select(flags).where(flags.c.key == key)
    # A writer locks the row it read (PostgreSQL; SQLite's writers take the database's write
    # lock at BEGIN): concurrent writers then take turns instead of failing each other.
    return conn.execute(stmt.with_for_update() if lock else stmt).mappings().first()


def _unknown(conn: Connection, key: str) -> str:
    keys = conn.execute(sa.select(flags.c.key)).scalars().all()
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"no flag {key!r}{hint}"


def _doc(flag: Flag) -> dict[str, Any]:
    return flag.model_dump(mode="json")


def _flag(key: str, doc: Any, version: int) -> Flag:
    """The document of `key` at `version` as a Flag; FlagUnreadable when it is not a valid one:
    written by this model, so only a hand-edited row or another opsmedic version gets there."""
    if isinstance(doc, dict) and doc.get("key", key) != key:
        raise FlagUnreadable(key, version, f"key: the document names the flag {doc['key']!r}")
    try:
        return Flag.model_validate(doc)
    except ValidationError as exc:
        raise FlagUnreadable(key, version, refusals(exc)) from None


def _before(key: str, doc: Any, version: int) -> tuple[Flag | None, str | None]:
    """The document a change replaced, or None with why when it was not a valid flag: the
    change that repairs such a row is recorded (and readable) like any other."""
    if doc is None:
        return None, None
    try:
        return _flag(key, doc, version), None
    except FlagUnreadable as exc:
        return None, exc.problem


def _switch(row: sa.RowMapping, declared: bool) -> bool:
    """The stored switch of a flag row, even when its document is not otherwise valid."""
    enabled = row["doc"].get("enabled") if isinstance(row["doc"], dict) else None
    return enabled if isinstance(enabled, bool) else declared


def _author(row: sa.RowMapping, column: str, run_id: str | None = None) -> Author:
    try:
        return Author.parse(row[column], run_id)
    except ValueError as exc:
        raise FlagUnreadable(row["key"], row["version"], f"{column}: {exc}") from None


def _record(row: sa.RowMapping) -> FlagRecord:
    return FlagRecord(_flag(row["key"], row["doc"], row["version"]), row["version"],
                      row["updated_at"], _author(row, "updated_by"))  # fmt: skip


def _change(row: sa.RowMapping) -> FlagChange:
    before, problem = _before(row["key"], row["before"], row["version"] - 1)
    return FlagChange(row["key"], row["version"], before,
                      _flag(row["key"], row["after"], row["version"]),
                      _author(row, "by", row["run_id"]), row["at"], problem)  # fmt: skip
