"""The engine's hot writes on SQLite through the sqlite3 cursor: same rows, a third of the cost.

Profiling one event with one run showed SQLAlchemy's per-statement machinery taking about 80 %
of the commit; these statements are built once from the same tables and take the same rows
as the Core path (PostgreSQL keeps using Core, where the network dominates instead).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from opsmedic.model import Event, Run, RunState
from opsmedic.store.codec import EncodedEvent, dumps_json, event_row, run_row
from opsmedic.store.schema import events as event_table
from opsmedic.store.schema import runs as run_table

_CHUNK = 500  # ids per claim statement, far below SQLite's 32,766 parameters

_FINISH_SQL = (
    "UPDATE runs SET state = ?, message = ?, steps = ?, finished_at = ? "
    "WHERE id = ? AND state IN (?, ?)"
)
_UNFINISHED = (RunState.PLANNED.value, RunState.RUNNING.value)


class _Insert:
    """INSERT for every column of a table, with JSON columns serialised as Core would."""

    def __init__(self, table: sa.Table) -> None:
        columns = [c.name for c in table.c]
        self._values = operator.itemgetter(*columns)
        self._json_at = [i for i, c in enumerate(table.c) if isinstance(c.type, sa.JSON)]
        names = ", ".join(columns)
        marks = ", ".join("?" * len(columns))
        # Only the schema's own names are spliced in; every value is a ? parameter.
        self.sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"  # noqa: S608

    def params(self, row: dict[str, Any]) -> list[Any]:
        values = list(self._values(row))
        for i in self._json_at:
            values[i] = dumps_json(values[i])
        return values


_EVENTS = _Insert(event_table)
_RUNS = _Insert(run_table)


def write(
    cursor: Any,
    events: Sequence[Event | EncodedEvent],
    runs: Sequence[Run],
    claim: Sequence[str],
    started_at: float,
    finished: Sequence[Run],
    owned: dict[str, object],
) -> list[str]:
    """Insert, claim (conditional update), finish, on a cursor inside the caller's transaction;
    a claimed run gets the `owned` columns (store/run_owner.py stamp)."""
    if events:
        cursor.executemany(_EVENTS.sql, [_EVENTS.params(event_row(e)) for e in events])
    if runs:
        cursor.executemany(_RUNS.sql, [_RUNS.params(run_row(r)) for r in runs])
    wanted = list(dict.fromkeys(claim))
    won: set[str] = set()
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        marks = ", ".join("?" * len(chunk))  # one ? per id: values never enter the SQL text
        sql = f"UPDATE runs SET state = ?, started_at = ?, owner = ?, lease_until = ? WHERE id IN ({marks}) AND state = ? RETURNING id"  # noqa: S608, E501
        params = (RunState.RUNNING.value, started_at, owned["owner"], owned["lease_until"],
                  *chunk, RunState.PLANNED.value)  # fmt: skip
        won.update(row[0] for row in cursor.execute(sql, params).fetchall())
    if finished:
        rows = [run_row(r) for r in finished]
        cursor.executemany(_FINISH_SQL, [
            (r["state"], r["message"], dumps_json(r["steps"]), r["finished_at"], r["id"],
             *_UNFINISHED)
            for r in rows
        ])  # fmt: skip
    return [run_id for run_id in wanted if run_id in won]
