"""Silences as rows (Store.silences): added, listed, expired; the engine reads the active ones."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.config.matchers import Silence, parse_matchers
from opsmedic.errors import AmbiguousRef, NotFoundError, UnknownSilence
from opsmedic.store.schema import silences


class Transactions(Protocol):
    """The Store's transaction factory: one transaction, failures as StoreError."""

    def __call__(self, *, write: bool = False) -> AbstractContextManager[Connection]: ...


class Finder(Protocol):
    """The Store's lookup of a row by id or a unique part of it (NotFoundError otherwise)."""

    def __call__(self, conn: Connection, table: sa.Table, ref: str, noun: str) -> sa.RowMapping: ...


class SilenceTable:
    """The silences in the store. Ending does not delete one: an expired silence stays
    listed (`--all`) so that a held match on a timeline can still be explained, until
    `opsmedic prune` deletes the history of its time (Store.prune)."""

    def __init__(self, transaction: Transactions, find: Finder) -> None:
        self._transaction, self._find = transaction, find

    def add(self, silence: Silence) -> None:
        with self._transaction(write=True) as conn:
            conn.execute(silences.insert().values(
                id=silence.id, matchers=[str(m) for m in silence.matchers],
                starts_at=silence.starts_at, ends_at=silence.ends_at,
                created_by=silence.created_by, comment=silence.comment,
                created_at=silence.created_at, updated_at=silence.created_at,
            ))  # fmt: skip

    def list(self, *, ending_after: float | None = None) -> list[Silence]:
        """Silences that end after `ending_after` (None: all), soonest end first."""
        query = sa.select(silences).order_by(silences.c.ends_at, silences.c.id)
        if ending_after is not None:
            query = query.where(silences.c.ends_at > ending_after)
        with self._transaction() as conn:
            return [_silence(row) for row in conn.execute(query).mappings()]

    def expire(self, ref: str, now: float) -> Silence:
        """End silence `ref` (an id, or a unique part of it of ≥ 4 characters) now; one already
        over is returned as it was. UnknownSilence when none, or several, match."""
        with self._transaction(write=True) as conn:
            try:
                row = self._find(conn, silences, ref, "silence")
            except AmbiguousRef:
                raise  # a short id several share: a 409 that names them
            except NotFoundError as exc:
                raise UnknownSilence(str(exc)) from None
            if row["ends_at"] <= now:
                return _silence(row)
            # starts_at too: a pending silence expired never starts (and start ≤ end holds).
            ended = {**row, "ends_at": now, "starts_at": min(row["starts_at"], now)}
            conn.execute(
                silences.update().where(silences.c.id == row["id"])
                .values(ends_at=now, starts_at=ended["starts_at"], updated_at=now)
            )  # fmt: skip
            return _silence(ended)

    def prune(self, older_than: float) -> int:
        """Delete the silences that ended before `older_than`; returns how many. One
        statement: silences are made by people, a few a day."""
        with self._transaction(write=True) as conn:
            return int(conn.execute(silences.delete().where(silences.c.ends_at < older_than))
                       .rowcount)  # fmt: skip

    def version(self) -> tuple[int, float]:
        """(count, sum of change times): what the engine compares to know whether to re-read.
        A sum, not the newest: a worker whose clock is behind another's still moves it."""
        with self._transaction() as conn:
            n, total = conn.execute(
                sa.select(sa.func.count(), sa.func.sum(silences.c.updated_at))
            ).one()
        return int(n), float(total or 0.0)


def _silence(row: Mapping[str, Any] | sa.RowMapping) -> Silence:
    return Silence(
        id=row["id"], matchers=parse_matchers(row["matchers"]), starts_at=row["starts_at"],
        ends_at=row["ends_at"], created_by=row["created_by"], comment=row["comment"],
        created_at=row["created_at"],
    )  # fmt: skip
