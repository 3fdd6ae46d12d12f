"""The runs of a window counted in SQL for the on-call summary and stats: grouped counts,
per-group durations, and only the few rows a report lists; run JSON decoded once per group."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.store.schema import runs

_SKIPPED = "skipped"
_REMEDIATION = "remediation"


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
    """Grouped counts of a window's runs, and the nearest-rank percentiles of their durations
    (started → finished, seconds) per rule and per action: percentile → duration."""

    groups: list[RunGroup]
    by_rule: dict[str, dict[int, float]] = field(default_factory=dict)
    by_action: dict[str, dict[int, float]] = field(default_factory=dict)


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
        .where(window, c.queue == _REMEDIATION, c.dry_run == sa.false(), c.state != _SKIPPED)
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
    percentiles: Sequence[int],
    *,
    rule: str | None,
    target: str | None,
    action: str | None,
) -> RunTallies:
    """The window's runs (of `rule`, against `target`) grouped by rule, actions, state and
    dry run; the `percentiles` of their durations per rule and per action (with `action`, of
    the runs holding it alone)."""
    c = runs.c
    # The actions as their stored text (PostgreSQL's json has no equality to group by):
    # decoded once per distinct list, not once per run.
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
    held: dict[str, list[str]] = {}  # action → the stored lists holding it
    groups = []
    for r, text, state, dry_run, n, first, last in conn.execute(grouped):
        names = tuple(json.loads(text))
        for name in dict.fromkeys(names):
            if text not in held.setdefault(name, []):
                held[name].append(text)
        groups.append(RunGroup(r, names, state, bool(dry_run), n, first, last))
    if action is not None:
        held = {action: held.get(action, [])}
        groups = [g for g in groups if action in g.actions]
        where.append(actions.in_(held[action]))
    found = RunTallies(groups, _ranks(conn, where, c.rule, percentiles))
    for name, texts in held.items():
        ranks = _ranks(conn, [*where, actions.in_(texts)], None, percentiles)
        if ranks:
            found.by_action[name] = ranks[""]
    return found


def _ranks(
    conn: Connection,
    where: list[sa.ColumnElement[bool]],
    by: sa.ColumnElement[str] | None,
    percentiles: Sequence[int],
) -> dict[str, dict[int, float]]:
    """Nearest-rank `percentiles` of the durations of the runs matching `where`, per value of
    `by` ("" for all): ranked in SQL, only the rows at the wanted ranks come back."""
    c = runs.c
    took = c.finished_at - c.started_at
    part = [] if by is None else [by]
    key = sa.literal("") if by is None else by
    ranked = (
        sa.select(key.label("key"), took.label("took"),
                  sa.func.row_number().over(partition_by=part, order_by=took).label("rank"),
                  sa.func.count().over(partition_by=part).label("n"))
        .where(*where, c.started_at.is_not(None), c.finished_at.is_not(None))
        .subquery()
    )  # fmt: skip
    # ceil(p/100 * n) in integers: the nearest rank, equal to reports.stats.percentile's.
    wanted = {p: (p * ranked.c.n + 99) // 100 for p in percentiles}
    stmt = sa.select(ranked.c.key, ranked.c.took, ranked.c.rank, *wanted.values()).where(
        sa.or_(*(ranked.c.rank == at for at in wanted.values()))
    )
    found: dict[str, dict[int, float]] = {}
    for key_value, seconds, rank, *ats in conn.execute(stmt):
        at_rank = found.setdefault(key_value, {})
        for p, at in zip(percentiles, ats, strict=True):
            if rank == at:
                at_rank[p] = seconds
    return found
