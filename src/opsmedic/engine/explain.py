"""Explain one event: per rule, per condition, why it matched or not, and what came of a match."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from opsmedic.engine.decisions import Outcome, RuleOutcome, clock, secs
from opsmedic.engine.planner import LIMIT_REACHED
from opsmedic.model import Event, Run, RunState
from opsmedic.rules.model import Rule, key_of
from opsmedic.rules.ruleset import RuleSet
from opsmedic.store.decision_rows import Suppression
from opsmedic.store.store import Store


@dataclass(slots=True)
class ConditionVerdict:
    condition: str
    holds: bool
    actual: Any


@dataclass(slots=True)
class RuleVerdict:
    """One rule's verdict on one event: its conditions, its outcome and the history behind it."""

    rule: str
    match: bool
    conditions: list[ConditionVerdict]
    outcome: Outcome | None = None  # None: no match, or the store cannot say
    detail: str = ""
    history: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule, "match": self.match,
            "outcome": None if self.outcome is None else str(self.outcome),
            "detail": self.detail, "history": self.history,
            "conditions": [{"condition": c.condition, "holds": c.holds, "actual": c.actual}
                           for c in self.conditions],
        }  # fmt: skip


def plain_value(value: object) -> object:
    """An event value as JSON can carry it: enums as their text, odd objects as their repr."""
    if isinstance(value, StrEnum):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return repr(value)


def conditions(rule: Rule, event: Event) -> list[ConditionVerdict]:
    """Every condition of the rule (the implicit `status: firing` too), tested on `event`."""
    return [
        ConditionVerdict(c.describe, c.test(event), plain_value(c.actual(event)))
        for c in rule.condition.checks
    ]


def explain(
    ruleset: RuleSet, event: Event, outcomes: Mapping[str, RuleOutcome] | None = None
) -> list[RuleVerdict]:
    """Every rule's verdict; a match gets its outcome from `outcomes` (what the engine decided,
    as `replay --explain` has it) when given."""
    verdicts = []
    for rule in ruleset:
        tested = conditions(rule, event)
        failed = next((c for c in tested if not c.holds), None)
        verdict = RuleVerdict(rule.name, failed is None, tested)
        if failed is not None:
            verdict.detail = f"{failed.condition} does not hold (actual: {failed.actual!r})"
        elif outcomes is not None and rule.name in outcomes:
            verdict.outcome, verdict.detail = (
                outcomes[rule.name].outcome,
                outcomes[rule.name].detail,
            )
        verdicts.append(verdict)
    return verdicts


def explain_stored(ruleset: RuleSet, event: Event, store: Store) -> list[RuleVerdict]:
    """Every rule's verdict on a stored event, each match's outcome read from the store: the
    runs the event made, the suppressed decisions recorded, and the alert's and the rule's
    history (the `for:` clock, the last run inside a throttle, the runs a limit counts)."""
    verdicts = explain(ruleset, event)
    runs: dict[str, Run] = {r.rule: r for r in store.history.event_runs(event.id)}
    recorded: dict[str, list[Suppression]] = {}
    for row in store.suppressed.list(fingerprint=event.fingerprint, limit=1000):
        recorded.setdefault(row.rule, []).append(row)
    for verdict in verdicts:
        rule = ruleset.get(verdict.rule)
        if verdict.match and rule is not None:
            _Reasoning(rule, event, store, verdict).decide(
                runs.get(rule.name), recorded.get(rule.name, [])
            )
    return verdicts


@dataclass(slots=True)
class _Reasoning:
    """The outcome of one matched rule for a stored event, and the history that explains it."""

    rule: Rule
    event: Event
    store: Store
    verdict: RuleVerdict

    def decide(self, run: Run | None, recorded: list[Suppression]) -> None:
        waiting = self._for_clock()
        throttled = self._throttle()
        over = self._limit()
        event_id = self.event.id
        exact = next((r for r in recorded if r.last_event_id == event_id), None)
        # The rows this event was counted into: its id (ids order by receipt) lies between
        # their first and last event's. A row from before revision 0016 knows its last only.
        among = [r for r in recorded if r.first_event_id <= event_id <= r.last_event_id
                 and (r.first_event_id or r is exact)]  # fmt: skip
        for row in among:
            self.verdict.history.append(
                f"recorded: {row.outcome} \u00d7{row.count} from {clock(row.first_seen)} "
                f"to {clock(row.last_seen)}: {row.detail}"
            )
        if run is not None:
            limited = run.state is RunState.SKIPPED and run.message.startswith(LIMIT_REACHED)
            self._say(Outcome.OVER_LIMIT if limited else Outcome.PLANNED,
                      run.message if limited else f"run {run.id} ({run.state})")  # fmt: skip
        elif exact is not None:  # what the engine itself recorded for this very event
            self._say(Outcome(exact.outcome), exact.detail)
        elif len(among) == 1:  # coalesced into a row a later event of its alert last set
            row = among[0]
            self._say(Outcome(row.outcome),
                      f"suppressed {row.count} times between {clock(row.first_seen)} and "
                      f"{clock(row.last_seen)} (this event among them); the last: "
                      f"{row.detail}")  # fmt: skip
        elif waiting:
            self._say(Outcome.WAITING_FOR, waiting)
        elif throttled:
            self._say(Outcome.THROTTLED, throttled)
        elif over:
            self._say(Outcome.OVER_LIMIT, over)
        else:
            self.verdict.detail = (
                "no run and no recorded decision for this event: in flight or held at the "
                "time, or recorded under a later event of its alert (see history)"
            )

    def _say(self, outcome: Outcome, detail: str) -> None:
        self.verdict.outcome, self.verdict.detail = outcome, detail

    def _for_clock(self) -> str:
        """Why the rule's `for:` was still waiting at this event ("" when it had held)."""
        rule, event = self.rule, self.event
        if rule.for_s <= 0:
            return ""
        t = event.time
        since: float | None = None
        for other in self.store.history.alert_events(event.fingerprint, t - rule.for_s, t):
            if other.id == event.id:
                continue
            if rule.condition(other):
                since = other.time if since is None else since
                continue
            since = None
            failed = rule.condition.first_failure(other)
            why = failed.describe if failed is not None else "no match"
            self.verdict.history.append(
                f"a {other.status} event at {clock(other.time)} ({other.id}) reset the `for:` "
                f"clock: {why} did not hold"
            )
        start = t if since is None else since
        held = t - start
        self.verdict.history.append(
            f"matching since {clock(start)}: {secs(held)}s of for: {secs(rule.for_s)}s"
        )
        return "" if held >= rule.for_s else f"for: {secs(rule.for_s)}s; matching for {secs(held)}s"

    def _throttle(self) -> str:
        spec = self.rule.throttle
        if spec is None:
            return ""
        prior = self._runs_before(spec.once_within, spec.per)
        if not prior:
            self.verdict.history.append(
                f"throttle: no run within once_within {secs(spec.once_within)}s before"
            )
            return ""
        run, other = prior[0]
        line = f"last run {run.id} at {clock(other.time)}, once_within {secs(spec.once_within)}s"
        self.verdict.history.append(f"throttle: {line}")
        return line

    def _limit(self) -> str:
        spec = self.rule.limit
        if spec is None:
            return ""
        counted = self._runs_before(spec.within, spec.per)
        key = "/".join(key_of(self.event, spec.per))
        line = f"{len(counted)} runs within {secs(spec.within)}s for {key} (limit {spec.max_runs})"
        self.verdict.history.append(f"limit: {line}")
        return line if len(counted) >= spec.max_runs else ""

    def _runs_before(self, window: float, per: list[str]) -> list[tuple[Run, Event]]:
        """The rule's runs for events of the same `per` key within `window` before this one,
        newest first: what a throttle or a limit counts."""
        event, t = self.event, self.event.time
        key = key_of(event, per)
        return [
            (run, other)
            for run, other in self.store.history.rule_runs(self.rule.name, t - window, t)
            if other.id != event.id and key_of(other, per) == key
        ]
