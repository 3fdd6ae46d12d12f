"""Suppressed decisions as rows: counted upserts the engine commits with its events, and reads."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.store.schema import suppressed
from opsmedic.utf8 import text

_COLUMNS = ("rule", "fingerprint", "outcome", "target", "incident_id", "count", "first_seen",
            "last_seen", "last_event_id", "detail", "first_event_id",
            "last_event_time")  # fmt: skip
# The same statement on SQLite (≥ 3.24) and PostgreSQL: a repeat adds to the count in place.
_UPSERT = """
INSERT INTO suppressed ({columns}) VALUES ({marks})
ON CONFLICT (rule, fingerprint, outcome) DO UPDATE SET target = excluded.target,
    incident_id = excluded.incident_id, count = suppressed.count + excluded.count,
    last_seen = excluded.last_seen, last_event_id = excluded.last_event_id,
    detail = excluded.detail, last_event_time = excluded.last_event_time
"""
# A coalesced timeline line counted up, found by its ref (unique) through the partial index
# ix_timeline_suppressed_ref, which the kind spelled as a literal lets both databases use.
TIMELINE_KIND = "suppressed"
# The WHERE repeats schema.SUPPRESSED_LINES word for word: so the planners match the index.
_RELABEL = "UPDATE timeline SET message = {m} WHERE kind = 'suppressed' AND ref = {r}"
_RELABEL_COLUMNS = ("ref", "message")


def _upsert(named: bool) -> str:
    marks = ", ".join(f":{c}" for c in _COLUMNS) if named else ", ".join("?" * len(_COLUMNS))
    return _UPSERT.format(columns=", ".join(_COLUMNS), marks=marks)


_UPSERT_POSITIONAL, _UPSERT_NAMED = _upsert(False), _upsert(True)
_RELABEL_POSITIONAL = _RELABEL.format(m="?", r="?")
_RELABEL_NAMED = _RELABEL.format(m=":message", r=":ref")
Key = tuple[str, str, str]  # rule, fingerprint, outcome
DETAIL_MAX = 500  # characters of a detail kept (a hold's reason may quote labels)


@dataclass(slots=True)
class DecisionRows:
    """One batch's suppressed decisions, already coalesced: a row per key, counted, and the
    new text of the timeline lines that count them."""

    # key → [target, incident_id, count, first_seen, last_seen, last_event_id, detail,
    #        first_event_id, last_event_time]; seen: when recorded, the event's time apart
    suppressed: dict[Key, list[Any]] = field(default_factory=dict)
    relabels: list[tuple[str, str]] = field(default_factory=list)  # (ref, message)

    def __bool__(self) -> bool:
        return bool(self.suppressed or self.relabels)

    def suppress(
        self, key: Key, target: str, incident_id: str | None, at: float, event_id: str,
        detail: str, event_time: float,
    ) -> None:  # fmt: skip
        """`at`: when the decision was recorded; `event_time`: the event's own time."""
        row = self.suppressed.get(key)
        if row is None:
            self.suppressed[key] = [target, incident_id, 1, at, at, event_id, detail, event_id,
                                    event_time]  # fmt: skip
        else:
            row[0], row[1], row[4], row[5], row[6] = target, incident_id, at, event_id, detail
            row[8] = event_time
            row[2] += 1

    def relabel(self, ref: str, message: str) -> None:
        """New text for the suppressed line `ref` on a timeline."""
        self.relabels.append((ref, message))

    def extend(self, later: DecisionRows) -> None:
        """Add the rows of a later batch: counts add up, the later values win."""
        for key, row in later.suppressed.items():
            mine = self.suppressed.get(key)
            if mine is None:
                self.suppressed[key] = list(row)
            else:
                mine[0], mine[1], mine[4], mine[5], mine[6] = row[0], row[1], row[4], row[5], row[6]
                mine[8] = row[8]
                mine[2] += row[2]
        self.relabels += later.relabels

    def _rows(self) -> list[tuple[Any, ...]]:
        # In key order: two PostgreSQL workers upserting the same keys lock them in one order.
        return [
            (rule, text(fp), outcome, text(target), incident, count, first, last, event_id,
             text(detail[:DETAIL_MAX]), first_id, event_time)
            for (rule, fp, outcome), (target, incident, count, first, last, event_id, detail,
                                      first_id, event_time)
            in sorted(self.suppressed.items())
        ]  # fmt: skip

    def write_sqlite(self, cursor: Any) -> None:
        """On the caller's sqlite3 cursor, inside its transaction (after the timeline's rows)."""
        if self.suppressed:
            cursor.executemany(_UPSERT_POSITIONAL, self._rows())
        if self.relabels:
            cursor.executemany(_RELABEL_POSITIONAL, [(m, r) for r, m in self.relabels])

    def write(self, conn: Connection) -> None:
        """Through SQLAlchemy (PostgreSQL), inside the caller's transaction."""
        if self.suppressed:
            conn.execute(sa.text(_UPSERT_NAMED),
                         [dict(zip(_COLUMNS, r, strict=True)) for r in self._rows()])  # fmt: skip
        if self.relabels:
            named = [dict(zip(_RELABEL_COLUMNS, r, strict=True)) for r in self.relabels]
            conn.execute(sa.text(_RELABEL_NAMED), named)


@dataclass(frozen=True, slots=True)
class Suppression:
    """A stored suppressed decision: how often a rule's match for an alert came to `outcome`."""

    rule: str
    fingerprint: str
    outcome: str
    target: str
    incident_id: str | None
    count: int
    first_seen: float  # when opsmedic recorded the first decision
    last_seen: float  # ... and the last: what `--since` and prune go by
    last_event_id: str
    detail: str
    first_event_id: str  # "" in a row recorded before revision 0016
    last_event_time: float  # the last event's own time (a repeat may keep an old one)


Transactions = Callable[..., AbstractContextManager[Connection]]


class SuppressedTable:
    """The suppressed decisions in the store (Store.suppressed)."""

    def __init__(self, transaction: Transactions) -> None:
        self._transaction = transaction

    def list(
        self, *, rule: str | None = None, since: float | None = None,
        fingerprint: str | None = None, limit: int = 100,
    ) -> list[Suppression]:  # fmt: skip
        """Newest (last seen) first."""
        stmt = sa.select(suppressed).order_by(
            suppressed.c.last_seen.desc(), suppressed.c.rule, suppressed.c.fingerprint
        )
        if rule is not None:
            stmt = stmt.where(suppressed.c.rule == rule)
        if since is not None:
            stmt = stmt.where(suppressed.c.last_seen >= since)
        if fingerprint is not None:
            stmt = stmt.where(suppressed.c.fingerprint == fingerprint)
        with self._transaction() as conn:
            rows = conn.execute(stmt.limit(limit)).mappings().all()
        return [Suppression(**{c: row[c] for c in _COLUMNS}) for row in rows]

    def prune(self, older_than: float) -> int:
        """Delete the rows last seen before `older_than`; returns how many."""
        with self._transaction(write=True) as conn:
            stmt = sa.delete(suppressed).where(suppressed.c.last_seen < older_than)
            return int(conn.execute(stmt).rowcount)
