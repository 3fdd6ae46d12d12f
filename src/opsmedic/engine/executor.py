"""Execute one run: render each step, run its action under timeout and retry, record outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from opsmedic.clock import Clock
from opsmedic.config.located import dotted
from opsmedic.config.schema import Config
from opsmedic.errors import ActionError, RetryableError, TemplateError
from opsmedic.model import Event, Outcome, Queue, Run, RunState, StepRecord
from opsmedic.paths import validation_context
from opsmedic.plugins import (
    ActionContext,
    FlagControl,
    ProbeOnce,
    Registry,
    ReleaseControl,
    ScaleControl,
)
from opsmedic.rules.model import Rule, Step
from opsmedic.templating import StepVars, Templates, template_context
from opsmedic.utf8 import valid_utf8

_FAILED = (RunState.FAILED, RunState.TIMED_OUT)
_UNLIMITED = contextlib.nullcontext()  # actions without a per-action limit
# Added to a step's timeout for the engine's own deadline: an action that enforces the
# timeout itself (run_command kills its process group: TERM, 2 s, KILL) gets to finish and
# report its output before the engine gives up on it. Short timeouts get a short grace.
GRACE_S = 5.0


class Executor:
    """Runs a rule's steps in order; an action's exception becomes a failed step, never a crash.

    Each action's context gets its own section of `settings` (the plugins' validated config
    sections by key) and `probe_once` (run a configured probe once by name; None: no probes).
    """

    def __init__(
        self, registry: Registry, config: Config, clock: Clock, log: Any, *,
        settings: Mapping[str, BaseModel], probe_once: ProbeOnce | None,
    ) -> None:  # fmt: skip
        self.registry = registry
        self._config = config
        self._settings = settings
        self._probe_once = probe_once
        self._clock = clock
        self._log = log
        self._templates = Templates()
        # Per queue too: an investigation's attempt never waits behind a remediation's.
        self._per_action = {
            (queue.value, name): asyncio.Semaphore(n)
            for name, n in config.actions.concurrency.per_action.items()
            for queue in Queue
        }
        # The release controller the deploy and rollback actions reach (runtime.py sets it).
        self.releases: ReleaseControl | None = None
        self.flags: FlagControl | None = None  # the flag service, for set_flag
        self.scaling: ScaleControl | None = None  # the scaler, for scale (runtime.py sets it)
        # An incident's first event's time by id, where the engine knows it (loop.py sets it).
        self.opened_at: Callable[[str], float | None] = lambda incident_id: None
        # Where events an action announces go (the engine's inbox); None: they are dropped.
        self.announce: Callable[[list[Event]], None] | None = None
        # A dry run cannot know outcomes and assumes success; `replay --dry-run
        # --assume-failed` sets this to show each run's on_failure steps instead.
        self.assume_failed = False
        # Runs whose steps someone watches as each one ends (a run by hand): run id → callback.
        self.watchers: dict[str, Callable[[StepRecord], None]] = {}

    async def execute(
        self, run: Run, rule: Rule, event: Event, variables: Mapping[str, Any] | None = None,
        *, approved: bool = False,
    ) -> Run:  # fmt: skip
        """Fill `run.steps`, `run.state` and `run.message`; the caller records the result.
        `variables` join the templates' context (a deployment's `service`, `version`…).

        A step with `approve:` stops the run before it, `waiting_approval` (not in a dry run);
        it goes on from there, the steps already in `run.steps` kept, when called again with
        `approved` (engine/approvals.py)."""
        steps_seen: list[StepVars] = [_step_vars(r) for r in run.steps]
        context = _context(run, rule, event, variables, steps_seen)
        failed = any(r.state in _FAILED for r in run.steps)  # before a wait, continue_on_failure
        state = RunState.FAILED if failed else RunState.SUCCEEDED
        first = len(run.steps)  # a waiting run has one record per main step before its wait
        for i, step in enumerate(rule.steps[first:], start=first):
            if step.approve is not None and not run.dry_run and not (approved and i == first):
                run.state = RunState.WAITING_APPROVAL
                run.message = f"waiting for approval of step {i + 1} ({step.action})"
                return run
            record = await self._step(step, run, context, event)
            self._record(run, record)
            steps_seen.append(_step_vars(record))
            if record.state in _FAILED and not step.continue_on_failure:
                state = record.state
                break
            if record.state in _FAILED:
                state = RunState.FAILED
        if state in _FAILED or (run.dry_run and self.assume_failed):
            for step in rule.on_failure:
                record = await self._step(step, run, context, event)
                record.on_failure = True
                self._record(run, record)
        if run.dry_run:
            state = RunState.SKIPPED
        run.state = state
        run.finished_at = self._clock.now()
        run.message = _summary(run)
        return run

    def waiting_params(self, run: Run, rule: Rule, event: Event) -> Any:
        """The parameters the step a waiting run stops before would get if it ran now (for
        the person asked to approve it): rendered as `execute` renders them, from the run's
        steps so far. Raises TemplateError."""
        step = rule.steps[len(run.steps)]
        context = _context(run, rule, event, None, [_step_vars(r) for r in run.steps])
        return self._templates.render(step.raw, context, f"{step.path}: {step.action}")

    def _record(self, run: Run, record: StepRecord) -> None:
        run.steps.append(record)
        watcher = self.watchers.get(run.id)
        if watcher is not None:
            watcher(record)

    async def _step(
        self, step: Step, run: Run, context: dict[str, Any], event: Event
    ) -> StepRecord:
        spec = self.registry.action(step.action)
        record = StepRecord(action=step.action, params={}, started_at=self._clock.now())
        log = self._log.bind(run_id=run.id, rule=run.rule, action=step.action, target=run.target)
        t0 = time.perf_counter()
        params = self._prepare(step, spec, context, record)
        if params is not None:
            if run.dry_run:
                record.state, record.message = RunState.SKIPPED, "dry-run: not executed"
            else:
                await self._attempts(step, spec, params, run, record, log, event)
        record.duration_ms = round((time.perf_counter() - t0) * 1000, 3)
        _as_valid_utf8(record)
        log.info("action", outcome=str(record.state), duration_ms=record.duration_ms,
                 attempts=record.attempts, message=record.message)  # fmt: skip
        return record

    def _prepare(
        self, step: Step, spec: Any, context: dict[str, Any], record: StepRecord
    ) -> BaseModel | None:
        """The step's params rendered into `record` and validated as its action takes them;
        None when they cannot be (`record` failed, saying why)."""
        try:
            rendered = self._templates.render(step.raw, context, f"{step.path}: {step.action}")
            record.params = rendered if isinstance(rendered, dict) else {"value": rendered}
            # The config's directory: a rendered path is checked on disk where it will be used.
            params: BaseModel = spec.params.model_validate(
                rendered, context=validation_context(self._config.base_dir)
            )
        except TemplateError as exc:
            record.state, record.message = RunState.FAILED, f"bad parameters: {_one_line(exc)}"
        except ValidationError as exc:
            record.state, record.message = RunState.FAILED, f"bad parameters: {_fields(exc)}"
        else:
            return params
        return None

    def preview(self, rule: Rule, event: Event) -> list[StepRecord]:
        """`rule`'s main steps as a run for `event` would start them, rendered and validated
        as a run's are and acted on by nothing (the dashboard's rule test): skipped, or failed
        with the parameter error. A template reading an earlier step's outcome (`steps[0]`)
        cannot render before that step runs, and fails here."""
        context = template_context(event, rule.name, "", [])
        records = []
        for step in rule.steps:
            record = StepRecord(action=step.action, params={})
            spec = self.registry.action(step.action)
            if self._prepare(step, spec, context, record) is not None:
                record.state, record.message = RunState.SKIPPED, "a test: not executed"
            _as_valid_utf8(record)
            records.append(record)
        return records

    async def _attempts(
        self, step: Step, spec: Any, params: Any, run: Run, record: StepRecord, log: Any,
        event: Event,
    ) -> None:  # fmt: skip
        policy = self._config.actions.retry
        attempts = step.max_attempts or policy.max_attempts
        # An action's own `timeout` parameter (run_command's) sets the budget when the step
        # has none, so `timeout: 2m` there is not cut at the 60 s default.
        own = getattr(params, "timeout", None)
        timeout = step.timeout or (own if isinstance(own, float) else self._config.actions.timeout)
        grace = min(GRACE_S, timeout)
        config = self._config
        ctx = ActionContext(
            clock=self._clock, log=log, dry_run=False, run_id=run.id, rule=run.rule,
            target=run.target, timeout=timeout, default_timeout=config.actions.timeout,
            base_dir=config.base_dir,
            state_dir=config.state_dir, output_limit=config.actions.output_limit,
            ssh_hosts=config.ssh_hosts, probe_once=self._probe_once, releases=self.releases,
            flags=self.flags, scaling=self.scaling, event_time=event.time,
            incident_opened_at=self.opened_at(run.incident_id) if run.incident_id else None,
            settings=spec.settings.pick(self._settings) if spec.settings else None,
        )  # fmt: skip
        for attempt in range(1, attempts + 1):
            record.attempts = attempt
            try:
                # The timeout starts once the action may run, not while it queues for a slot.
                async with self._per_action.get((run.queue, step.action), _UNLIMITED):
                    async with asyncio.timeout(timeout + grace):
                        outcome: Outcome = await spec.run(params, ctx)
            except RetryableError as exc:
                record.state, record.message = RunState.FAILED, f"retryable: {exc}"
                if attempt < attempts:
                    # Bounded exponential backoff with jitter, so retries of many runs spread out.
                    delay = min(policy.backoff * 2 ** (attempt - 1), policy.max_backoff)
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311
                continue
            except TimeoutError:
                record.state = RunState.TIMED_OUT
                record.message = f"timed out after {timeout:g}s (+{grace:g}s grace)"
            except ActionError as exc:
                record.state, record.message = RunState.FAILED, _one_line(exc)
            except Exception as exc:  # an action's bug is recorded, never a crash of the engine
                log.exception("action.crashed")
                record.state = RunState.FAILED
                record.message = f"action crashed: {type(exc).__name__}: {_one_line(exc)}"
            else:
                record.state = RunState.SUCCEEDED if outcome.ok else RunState.FAILED
                if not outcome.ok and outcome.details.get("timed_out"):
                    record.state = RunState.TIMED_OUT
                # An action that found nothing to do (a pid already gone, a leashed kill)
                # says so; it is not a failure, and not a success that changed anything.
                if outcome.ok and outcome.details.get("skipped"):
                    record.state = RunState.SKIPPED
                record.message, record.output = outcome.message, outcome.output
                record.details = outcome.details
                if outcome.events and self.announce is not None:
                    self.announce(outcome.events)
            return


def _as_valid_utf8(record: StepRecord) -> None:
    """Make a step's record valid UTF-8 (utf8.py valid_utf8), in place."""
    # The one place where what an action reported from the world (file names, command
    # output, response bodies) is recorded, so the stored run is one every reader can serve.
    record.message, record.output = valid_utf8(record.message), valid_utf8(record.output)
    try:
        record.params, record.details = valid_utf8(record.params), valid_utf8(record.details)
    except RecursionError:  # nested past Python's stack: it could not be stored either
        record.details = {"unrecorded": "details nested too deeply to record"}
        record.params = valid_utf8({k: str(v)[:200] for k, v in record.params.items()})


def _step_vars(record: StepRecord) -> StepVars:
    return {
        "action": record.action,
        "state": str(record.state),
        "message": record.message,
        "details": record.details,
    }


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", "; ")
    return text[:500] or type(exc).__name__


def _fields(exc: ValidationError) -> str:
    """`field: message; …`, as the rules' loader says it: not pydantic's text, whose input
    dumps and errors.pydantic.dev links are no help in a run's record."""
    found = (f"{dotted(tuple(e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
             for e in exc.errors(include_url=False))  # fmt: skip
    return _one_line(Exception("; ".join(found)))


def _summary(run: Run) -> str:
    main = [s for s in run.steps if not s.on_failure]
    bad = next((s for s in main if s.state in _FAILED), None)
    if run.dry_run:
        return "dry-run: would run " + ", ".join(s.action for s in main)
    if bad is not None:
        return f"{bad.action}: {bad.message}"
    # No steps at all: a blue/green service's optional switch steps, left out.
    last = main[-1].message if main else ""
    return f"{len(main)} step(s) succeeded" + (f": {last}" if last else "")


def _context(
    run: Run, rule: Rule, event: Event, variables: Mapping[str, Any] | None,
    steps_seen: list[StepVars],
) -> dict[str, Any]:  # fmt: skip
    # Later steps see what earlier ones reported (a kill's victim, an archive's size), so a
    # notify step can tell people exactly what was done: `{{ steps[0].details.pid }}`.
    return {**(variables or {}), **template_context(event, rule.name, run.id, steps_seen)}
