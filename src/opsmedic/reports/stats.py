"""The numbers behind the runs: per rule and per action, how many, how often they succeeded,
how long they took (p50/p95/p99), and how many times an action ran against one target."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opsmedic.model import RunState
from opsmedic.store.report_rows import RunRow
from opsmedic.store.store import Store

PERCENTILES = (50, 95, 99)
_FAILED = frozenset({RunState.FAILED.value, RunState.TIMED_OUT.value, RunState.INTERRUPTED.value})
# Plain strings: a tally runs once per run and action, where an enum's .value costs a lookup.
_SUCCEEDED, _SKIPPED = RunState.SUCCEEDED.value, RunState.SKIPPED.value


def percentile(ordered: list[float], p: float) -> float | None:
    """The nearest-rank percentile of sorted values: a value that was measured, never one
    interpolated between two; None without values."""
    if not ordered:
        return None
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


@dataclass
class Tally:
    """The runs of one rule or one action."""

    name: str
    runs: int = 0
    succeeded: int = 0
    failed: int = 0  # failed, timed out or interrupted
    skipped: int = 0  # a limit's record: the run never started
    dry_runs: int = 0
    durations: list[float] = field(default_factory=list)  # started → finished, seconds

    def add(self, run: RunRow) -> None:
        self.runs += 1
        self.succeeded += run.state == _SUCCEEDED
        self.failed += run.state in _FAILED
        self.skipped += run.state == _SKIPPED
        self.dry_runs += run.dry_run
        if run.started_at is not None and run.finished_at is not None:
            self.durations.append(run.finished_at - run.started_at)

    @property
    def success_rate(self) -> float | None:
        """Succeeded among the finished runs that started (skipped and unfinished left out)."""
        done = self.succeeded + self.failed
        return None if done == 0 else self.succeeded / done

    def percentiles(self) -> dict[str, float | None]:
        ordered = sorted(self.durations)
        return {f"p{p}": percentile(ordered, p) for p in PERCENTILES}

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "runs": self.runs, "succeeded": self.succeeded,
                "failed": self.failed, "skipped": self.skipped, "dry_runs": self.dry_runs,
                "success_rate": self.success_rate,
                "duration_s": self.percentiles()}  # fmt: skip


@dataclass
class Stats:
    since: float
    until: float
    rules: dict[str, Tally] = field(default_factory=dict)
    actions: dict[str, Tally] = field(default_factory=dict)
    first: float | None = None  # the first and last run counted
    last: float | None = None

    def ran(self, action: str) -> int:
        """How many runs holding `action` really ran it: not skipped, not a dry run."""
        t = self.actions.get(action)
        return 0 if t is None else t.runs - t.skipped - t.dry_runs

    def as_json(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "first": self.first, "last": self.last,
                "rules": [t.as_json() for t in self.rules.values()],
                "actions": [t.as_json() for t in self.actions.values()]}  # fmt: skip


def count(runs: Iterable[RunRow], since: float, until: float, action: str | None = None) -> Stats:
    """Tally `runs` by rule and by action (a run counts once for each action it holds); with
    `action`, only the runs holding it."""
    found = Stats(since, until)
    for run in runs:
        if action is not None and action not in run.actions:
            continue
        found.first = run.created_at if found.first is None else found.first
        found.last = run.created_at
        found.rules.setdefault(run.rule, Tally(run.rule)).add(run)
        for name in dict.fromkeys(run.actions):
            if action is None or name == action:
                found.actions.setdefault(name, Tally(name)).add(run)
    for tallies in (found.rules, found.actions):
        ordered = sorted(tallies.values(), key=lambda t: (-t.runs, t.name))
        tallies.clear()
        tallies.update((t.name, t) for t in ordered)
    return found


def stats(
    store: Store, since: float, until: float, *, rule: str | None = None,
    action: str | None = None, target: str | None = None,
) -> Stats:  # fmt: skip
    """The runs created in [since, until), streamed from the store and tallied."""
    return count(store.reports.runs(since, until, rule=rule, target=target), since, until, action)
