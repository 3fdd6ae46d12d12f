"""A window's runs counted in SQL for the on-call summary and stats: grouped, few columns."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.model import Queue, RunState
from opsmedic.store.schema import runs

BATCH = 5000  # duration rows per fetch


@dataclass(frozen=True, slots=True)
class StateCount:
    """How many runs of one rule ended in one state."""

    rule: str
    state: str
    runs: int


@dataclass(frozen=True, slots=True)
class FailedRun:
    """A failed run as the summary lists it."""

    id: str
    rule: str
    target: str
    state: str
    created_at: float


@dataclass(slots=True)
class WindowRuns:
    """What the on-call summary counts of a window's runs."""

    # In the order each (rule, state) first appears among the runs (created_at, id), so that
    # counters filled from them keep the order a run-by-run tally would have.
    states: list[StateCount]
    by_incident: dict[str, int]
    failed: list[FailedRun]
    remediation_times: list[float]  # runs of the remediation queue that started, oldest first


@dataclass(frozen=True, slots=True)
class RunGroup:
    """Runs of one rule with one list of actions, one state and one dry-run flag."""

    rule: str
    actions: tuple[str, ...]
    state: str
    dry_run: bool
    runs: int
    first: float  # created_at of the group's oldest and newest run
    last: float


@dataclass(slots=True)
class RunTallies:
    """Grouped counts of a window's runs, and their durations (started → finished, seconds)
    by rule and list of actions, unsorted."""

    groups: list[RunGroup]
    durations: dict[tuple[str, tuple[str, ...]], list[float]] = field(default_factory=dict)


def _window(since: float, until: float) -> sa.ColumnElement[bool]:
    c = runs.c
    return sa.and_(c.created_at >= since, c.created_at < until)


def window_runs(
    conn: Connection, since: float, until: float, failed_states: Collection[str], max_failed: int
) -> WindowRuns:
    """Counts by rule and state, runs by incident, the first `max_failed` runs in a state of
    `failed_states`, and the creation times of the remediation runs that started."""
    c = runs.c
    window = _window(since, until)
    # Each run's position in (created_at, id) order: a group's smallest tells when it first
    # appeared. Computed in SQL, where the window is sorted by its index anyway.
    seq = sa.func.row_number().over(order_by=(c.created_at, c.id)).label("seq")
    ranked = sa.select(c.rule, c.state, seq).where(window).subquery()
    grouped = (
        sa.select(ranked.c.rule, ranked.c.state, sa.func.count(), sa.func.min(ranked.c.seq))
        .group_by(ranked.c.rule, ranked.c.state)
        .order_by(sa.func.min(ranked.c.seq))
    )
    states = [StateCount(rule, state, n) for rule, state, n, _ in conn.execute(grouped)]
    per_incident = (
        sa.select(c.incident_id, sa.func.count())
        .where(window, c.incident_id.is_not(None))
        .group_by(c.incident_id)
    )
    failed = window & c.state.in_(list(failed_states))
    listed = conn.execute(
        sa.select(c.id, c.rule, c.target, c.state, c.created_at)
        .where(failed)
        .order_by(c.created_at, c.id)
        .limit(max_failed)
    )
    started = (
        sa.select(c.created_at)
        .where(
            window,
            c.queue == Queue.REMEDIATION.value,
            c.dry_run == sa.false(),
            c.state != RunState.SKIPPED.value,
        )
        .order_by(c.created_at, c.id)
    )
    return WindowRuns(
        states,
        {iid: n for iid, n in conn.execute(per_incident)},
        [FailedRun(*row) for row in listed],
        list(conn.execute(started).scalars()),
    )


def run_tallies(
    conn: Connection,
    since: float,
    until: float,
    *,
    rule: str | None,
    target: str | None,
    action: str | None,
) -> RunTallies:
    """The window's runs (of `rule`, against `target`, holding `action`) grouped by rule,
    actions, state and dry run, and their durations: three columns a run, no JSON decoded."""
    c = runs.c
    # The actions as their stored text (PostgreSQL's json has no equality to group by):
    # decoded once per group, not once per run.
    actions = sa.cast(c.actions, sa.Text)
    where = [_window(since, until)]
    if rule is not None:
        where.append(c.rule == rule)
    if target is not None:
        where.append(c.target == target)
    grouped = (
        sa.select(c.rule, actions, c.state, c.dry_run, sa.func.count(), sa.func.min(c.created_at),
                  sa.func.max(c.created_at))
        .where(*where)
        .group_by(c.rule, actions, c.state, c.dry_run)
    )  # fmt: skip
    lists: dict[str, tuple[str, ...]] = {}
    groups = []
    for r, text, state, dry_run, n, first, last in conn.execute(grouped):
        names = lists.setdefault(text, tuple(json.loads(text)))
        if action is None or action in names:
            groups.append(RunGroup(r, names, state, bool(dry_run), n, first, last))
    if action is not None:
        where.append(actions.in_([text for text, names in lists.items() if action in names]))
    timed = sa.select(c.rule, actions, c.finished_at - c.started_at).where(
        *where, c.started_at.is_not(None), c.finished_at.is_not(None)
    )
    by_text: dict[tuple[str, str], list[float]] = {}
    # Fetched in batches: far cheaper than row by row, and the window is never all in memory.
    for batch in conn.execute(timed).partitions(BATCH):
        for r, text, seconds in batch:
            by_text.setdefault((r, text), []).append(seconds)
    found = RunTallies(groups)
    for (r, text), seconds_list in by_text.items():
        names = lists.setdefault(text, tuple(json.loads(text)))  # committed since: decode it
        found.durations.setdefault((r, names), []).extend(seconds_list)
    return found
