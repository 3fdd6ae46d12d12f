"""Runs by hand: a rule's steps now, for an event the on-call gives, under the live checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opsmedic.clock import Clock
from opsmedic.config.located import unknown_name
from opsmedic.engine.executor import Executor
from opsmedic.engine.planner import Planner
from opsmedic.errors import RuleDisabled, RunRefused, UnknownRule
from opsmedic.logs import get_logger
from opsmedic.model import Event, Run, RunState, StepRecord
from opsmedic.rules.model import Rule
from opsmedic.sources.events import parse_event
from opsmedic.store.codec import encode_event
from opsmedic.store.store import Store

# What the steps see when the on-call gives no event: `--set` and `--event` add to it.
DEFAULT_EVENT: Mapping[str, Any] = {"source": "manual", "kind": "run_by_hand"}


def event_by_hand(data: Any, now: float) -> Event:
    """The event a run by hand acts on, from the generic event JSON the API takes, validated
    as an ingested one; raises ValueError naming the field. Its time is `now` (a run's limit
    counts on event time); a `time` given is kept as `payload.given_time`, an `id` as
    `payload.client_id`, as ingest keeps it."""
    if not isinstance(data, dict):
        raise ValueError(f"an event is a JSON object, got {type(data).__name__}")
    data = {**DEFAULT_EVENT, **data}
    client_id, given_time = data.pop("id", None), data.pop("time", None)
    event = parse_event({**data, "time": given_time} if given_time is not None else data)
    if client_id is not None:
        event.payload["client_id"] = client_id
    if given_time is not None:
        event.payload["given_time"] = event.time
    event.time = now
    return event


@dataclass(frozen=True, slots=True)
class RunAsk:
    """What someone asks for: `rule` run now on `event`; `started_by` is recorded."""

    rule: str
    event: Event
    started_by: str
    force: bool = False
    dry_run: bool = False


class ManualRuns:
    """Starts runs by hand through the live engine's planner, executor and store.

    The planner gives the in-flight lock and the limit windows of this process (in the
    service: the live engine's own); the store's check covers runs of other processes. No
    match, `for:` or throttle decides, no incident is made, the event plans nothing.
    """

    def __init__(self, planner: Planner, executor: Executor, store: Store, clock: Clock) -> None:
        self._planner, self._executor, self._store, self._clock = planner, executor, store, clock
        self._tasks: set[asyncio.Task[Run]] = set()
        self.log = get_logger(component="manual")

    def rule(self, name: str, *, force: bool) -> Rule:
        """The rule to run; raises UnknownRule, or RuleDisabled without `force`."""
        ruleset = self._planner.ruleset
        rule = ruleset.get(name)
        if rule is not None:
            return rule
        disabled = ruleset.disabled.get(name)
        if disabled is None:
            known = [r.name for r in ruleset] + list(ruleset.disabled)
            raise UnknownRule(unknown_name("rule", name, known))
        if not force:
            where = f"{disabled.file}:{disabled.line}" if disabled.file else "its file"
            raise RuleDisabled(
                f"rule {name!r} is disabled (enabled: false at {where}); run it anyway with "
                '--force (API: "force": true), recorded as forced'
            )
        return disabled

    async def start(
        self, ask: RunAsk, on_step: Callable[[StepRecord], None] | None = None
    ) -> tuple[Run, asyncio.Task[Run]]:
        """Check and record the run (`running`), then execute it in a task of its own: returns
        the run as it started and the task, which the caller may await for the finished run (a
        caller going away, an API client hanging up, does not cut it). `on_step` hears of each
        step as it ends. Raises UnknownRule, RuleDisabled, RunRefused (in flight, over the
        limit) or StoreError, and then nothing is recorded."""
        rule, event = self.rule(ask.rule, force=ask.force), ask.event
        waits = [i + 1 for i, step in enumerate(rule.steps) if step.approve is not None]
        if waits and not ask.dry_run:
            # A run by hand has its human at hand, and nothing here parks a run to wait.
            raise RunRefused(
                f"rule {rule.name!r} waits for approval before step {waits[0]} (approve:): a run "
                "by hand cannot wait; let a live run ask, or run it with --dry-run to see it"
            )
        encoded = encode_event(event)  # StoreRefused before the planner takes anything
        run = self._planner.by_hand(rule, event, dry_run=ask.dry_run)
        run.started_by, run.forced = ask.started_by, not rule.enabled
        run.state, run.started_at = RunState.RUNNING, self._clock.now()
        try:
            limit = None if run.dry_run else rule.limit
            await asyncio.to_thread(self._store.start_manual, encoded, run, limit)
        except BaseException:
            self._planner.give_back(run, rule, event)
            raise
        self.log.info("run.by_hand", run_id=run.id, rule=run.rule, target=run.target,
                      by=run.started_by, forced=run.forced, dry_run=run.dry_run)  # fmt: skip
        if on_step is not None:
            self._executor.watchers[run.id] = on_step
        task = asyncio.create_task(self._execute(run, rule, event), name=f"manual-{run.id}")
        self._tasks.add(task)  # held here: a task only the loop refers to may be collected
        task.add_done_callback(self._tasks.discard)
        return run, task

    async def _execute(self, run: Run, rule: Rule, event: Event) -> Run:
        try:
            await self._executor.execute(run, rule, event)
            await asyncio.to_thread(self._store.finish, [run])
        finally:
            self._executor.watchers.pop(run.id, None)
            if not run.dry_run:  # a dry run took no lock: another run's must stay
                self._planner.done(run)
        self.log.info("run.finished", run_id=run.id, rule=run.rule, target=run.target,
                      outcome=str(run.state), message=run.message)  # fmt: skip
        return run

    async def drain(self) -> None:
        """Wait for the runs by hand still executing (the service's shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))
