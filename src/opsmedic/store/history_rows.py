"""Reads of an alert's and a rule's past, for `opsmedic explain` (engine/explain.py) and the
dashboard's Rules page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.model import Event, Run, RunState
from opsmedic.store.codec import event_from_row, run_from_row
from opsmedic.store.schema import events, runs

Transactions = Callable[..., AbstractContextManager[Connection]]
MAX_ROWS = 1000  # rows read per question at most: an explanation, not an export


@dataclass(frozen=True, slots=True)
class LastRun:
    """A rule's newest run, in the few columns a listing of rules shows."""

    id: str
    state: RunState
    created_at: float
    started_by: str


class HistoryReads:
    """What the store remembers around one event (Store.history): bounded reads."""

    def __init__(self, transaction: Transactions) -> None:
        self._transaction = transaction

    def alert_events(self, fingerprint: str, start: float, end: float) -> list[Event]:
        """The events of one alert with `start` <= time <= `end`, oldest first, and before
        them the alert's latest event older than `start` (what was true when the window
        opened)."""
        same = events.c.fingerprint == fingerprint
        window = (
            sa.select(events)
            .where(same, events.c.time >= start, events.c.time <= end)
            .order_by(events.c.time, events.c.id)
            .limit(MAX_ROWS)
        )
        before = (
            sa.select(events)
            .where(same, events.c.time < start)
            .order_by(events.c.time.desc(), events.c.id.desc())
            .limit(1)
        )
        with self._transaction() as conn:
            found = [event_from_row(r) for r in conn.execute(before).mappings()]
            found += [event_from_row(r) for r in conn.execute(window).mappings()]
        return found

    def rule_runs(self, rule: str, start: float, end: float) -> list[tuple[Run, Event]]:
        """The runs of `rule` whose event's time falls in [start, end), with those events,
        newest first; skipped runs (a limit's record) left out, as the planner counts."""
        stmt = (
            sa.select(runs, events.c.time)
            .join(events, events.c.id == runs.c.event_id)
            .where(
                runs.c.rule == rule,
                runs.c.state != RunState.SKIPPED.value,
                events.c.time >= start,
                events.c.time < end,
            )
            .order_by(events.c.time.desc(), runs.c.id.desc())
            .limit(MAX_ROWS)
        )
        with self._transaction() as conn:
            found = [run_from_row(r) for r in conn.execute(stmt).mappings()]
            ids = list({r.event_id for r in found})
            rows = conn.execute(sa.select(events).where(events.c.id.in_(ids))).mappings()
            by_id = {row["id"]: event_from_row(row) for row in rows}
        return [(run, by_id[run.event_id]) for run in found]

    def event_runs(self, event_id: str) -> list[Run]:
        """The runs `event_id` planned or recorded."""
        stmt = sa.select(runs).where(runs.c.event_id == event_id).order_by(runs.c.id)
        with self._transaction() as conn:
            return [run_from_row(r) for r in conn.execute(stmt).mappings()]

    def last_runs(self, rules: Sequence[str]) -> dict[str, LastRun]:
        """Each named rule's newest run (any state, by hand too), for those that have one.
        One indexed probe per rule, (rule, created_at) read backwards: a rule with a million
        runs costs what one with a single run does, which a GROUP BY over the runs would not."""
        found: dict[str, LastRun] = {}
        cols = (runs.c.id, runs.c.state, runs.c.created_at, runs.c.started_by)
        with self._transaction() as conn:
            for rule in rules:
                stmt = (
                    sa.select(*cols)
                    .where(runs.c.rule == rule)
                    .order_by(runs.c.created_at.desc())
                    .limit(1)
                )
                row = conn.execute(stmt).first()
                if row is not None:
                    found[rule] = LastRun(row.id, RunState(row.state), row.created_at,
                                          row.started_by)  # fmt: skip
        return found
