"""Runs waiting for a human's yes: parked in the store, resumed or ended on a decision, timed
out by the engine; a decision is noticed by a cheap poll, or at once when the API wakes it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opsmedic.clock import Clock
from opsmedic.config.types import PlainText
from opsmedic.engine.decisions import secs
from opsmedic.engine.journal import Journal
from opsmedic.errors import ApprovalConflict
from opsmedic.model import (
    OWN_SOURCE,
    Approval,
    Event,
    IncidentChanges,
    Run,
    RunState,
    Status,
    TimelineEntry,
)
from opsmedic.rules.model import Rule, Step
from opsmedic.store.approval_rows import APPROVED, TIMED_OUT, describe
from opsmedic.store.incident_rows import IncidentRows
from opsmedic.store.store import Store

# How often waiting runs are checked for a decision made elsewhere (the CLI writes the store)
# and for their deadline: one indexed read per second, and none at all while nothing waits.
POLL_S = 1.0
TIMEOUT_BY = "opsmedic (timeout)"


def how_to(run_id: str, step: int) -> dict[str, str]:
    """The ways to decide the wait before `step` (from 1), as the notification and the log
    carry them: naming the step, so that a command run again cannot decide a later wait."""
    body = f'{{"step": {step}}}'
    return {
        "approve": f"opsmedic runs approve {run_id} --step {step}",
        "reject": f"opsmedic runs reject {run_id} --step {step}",
        "api": f"POST /api/v1/runs/{run_id}/approve (or /reject) {body}, scope operate",
    }


def steps_digest(rule: Rule) -> str:
    """A digest of what `rule`'s runs do: every step of `do:` and `on_failure`, with its
    parameters and options (not where it is written: a line moved is no change)."""

    def spec(step: Step) -> list[Any]:
        approve = step.approve
        return [step.action, step.raw, step.continue_on_failure, step.timeout,
                step.max_attempts, approve and [approve.timeout, approve.on_timeout]]  # fmt: skip

    steps = [[spec(s) for s in rule.steps], [spec(s) for s in rule.on_failure]]
    # Keys in the order written (not sorted: a mapping may mix int and str keys), so a
    # reordering counts as a change, the safe side; default=str: a YAML date by its text.
    encoded = json.dumps(steps, default=str, ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8", "surrogatepass")).hexdigest()


class Decision(BaseModel):
    """A person's approve or reject, as the API's body and the dashboard's form give it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    comment: PlainText = Field(default="", max_length=2000)
    step: int | None = Field(default=None, ge=1, description="only if the run waits before "
                             "this step (from 1); another: 409, nothing decided")  # fmt: skip


class Approvals:
    """The engine's side of approvals. A waiting run holds no task and no concurrency slot:
    only its deadline is kept here (rebuilt from the store at start), so a restart leaves it
    waiting and a pool full of waits blocks nothing."""

    def __init__(
        self, *, store: Store | None, journal: Journal, clock: Clock, log: Any,
        rules: Callable[[str], Rule | None],
        resume: Callable[[Run, Rule, Event], Awaitable[None]],
        end: Callable[[Run], Awaitable[None]], announce: Callable[[list[Event]], None],
    ) -> None:  # fmt: skip
        self._store, self._journal, self._clock, self._log = store, journal, clock, log
        self._rules = rules
        self._resume, self._end, self._announce = resume, end, announce
        self._deadlines: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # A replay: nobody is there to answer, and a wait it left would look live to the
        # next `opsmedic run` (a yes to last night's event). Its runs end before the step.
        self.unattended = False
        self.not_waited = 0  # runs ended so, unattended: replay's summary counts them

    async def start(self) -> list[Run]:
        """Take up the waits the store holds; returns their runs (the engine keeps their
        in-flight locks)."""
        waiting: list[Run] = []
        if self._store is not None:
            store = self._store
            for wait in await self._journal.call(store.approvals.waits):
                self._deadlines[wait.run_id] = wait.deadline
                waiting.append(await self._journal.call(store.get_run, wait.run_id))
            # A deadline that passed while the service was down is applied now, before
            # anything else: its on_timeout decides (a late yes is refused by the store).
            await self._expire(store)
            self._wake.set()
        self._task = asyncio.create_task(self._loop(), name="opsmedic-approvals")
        return waiting

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def wake(self) -> None:
        """Look for decisions now (after a person's: no wait for the poll)."""
        self._wake.set()

    async def decide(
        self, store: Store, ref: str, decision: str, by: str, asked: Decision, now: float
    ) -> Approval:
        """A person's decision on run `ref`'s wait (the API's and the dashboard's): taken
        once in the store (UnknownRun, ApprovalConflict as ApprovalTable.decide says), then
        acted on by this engine at once."""
        step = None if asked.step is None else asked.step - 1
        wait = await asyncio.to_thread(store.approvals.decide, ref, decision, by,
                                       asked.comment, now, step)  # fmt: skip
        self.wake()
        return wait

    async def park(self, run: Run, rule: Rule, event: Event) -> bool:
        """Record the run waiting before its next step and say so (timeline, log, an
        `approval_requested` event that rules can notify on). False when that could not be
        recorded (the run is then failed) or nobody can answer (`unattended`: the run is
        skipped): the caller finishes it."""
        step_index = len(run.steps)
        step = rule.steps[step_index]
        assert step.approve is not None
        now = self._clock.now()
        if self.unattended:
            self.not_waited += 1
            run.state, run.finished_at = RunState.SKIPPED, now
            run.message = (f"step {step_index + 1} ({step.action}) needs approval and a replay "
                           "waits for nobody; the run ends here")  # fmt: skip
            return False
        wait = Approval(run.id, step_index, step.action, now, now + step.approve.timeout,
                        step.approve.on_timeout, run.incident_id,
                        digest=steps_digest(rule))  # fmt: skip
        ways = how_to(run.id, step_index + 1)
        run.message += (f", {secs(step.approve.timeout)}s at most (then "
                        f"{step.approve.on_timeout}): {ways['approve']}")  # fmt: skip
        changes = IncidentChanges()
        if run.incident_id:
            changes.timeline.append(TimelineEntry(run.incident_id, now, "approval_requested",
                                                  run.message, run.id))  # fmt: skip
        try:
            assert self._store is not None
            parked = await self._journal.call(self._store.approvals.wait, run, wait,
                                              IncidentRows.of(changes))  # fmt: skip
        except Exception as exc:
            parked, problem = False, str(exc)
        else:
            problem = "the run was not running any more"
        if not parked:
            self._log.error("run.wait_unrecorded", run_id=run.id, error=problem)
            run.state, run.finished_at = RunState.FAILED, now
            run.message = f"could not record the wait for approval: {problem}"
            return False
        self._deadlines[run.id] = wait.deadline
        self._log.warning("run.waiting_approval", run_id=run.id, rule=run.rule,
                          target=run.target, step=step_index + 1, action=step.action,
                          timeout_s=step.approve.timeout, on_timeout=step.approve.on_timeout,
                          **ways)  # fmt: skip
        self._announce([Event(
            source=OWN_SOURCE, kind="approval_requested", resource=event.resource,
            host=event.host, severity="warning", status=Status.FIRING, time=now,
            labels={"rule": run.rule, "target": run.target, "run_id": run.id},
            payload={"message": run.message, "run_id": run.id, "event_id": event.id,
                     "step": step_index + 1, "action": step.action,
                     "timeout_s": step.approve.timeout, "on_timeout": step.approve.on_timeout,
                     **ways},
        )])  # fmt: skip
        return True

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await self._wake.wait()
            self._wake.clear()
            if not self._deadlines or self._store is None:
                continue
            try:
                await self._expire(self._store)
                waits = await self._journal.call(self._store.approvals.waits, list(self._deadlines))
                for wait in waits:
                    if wait.decision:
                        await self._decided(self._store, wait)
            except Exception:  # the store is down: the next round tries again
                self._log.exception("approvals.poll_failed")

    async def _expire(self, store: Store) -> None:
        now = self._clock.now()
        for run_id in [r for r, deadline in self._deadlines.items() if deadline <= now]:
            # The same conditional update as a human's decision: whichever comes first stands.
            with contextlib.suppress(ApprovalConflict):
                await self._journal.call(store.approvals.decide, run_id, TIMED_OUT, TIMEOUT_BY,
                                         "nobody answered in time", now)  # fmt: skip

    async def _decided(self, store: Store, wait: Approval) -> None:
        """Go on with a decided run, or end it, after claiming it (once, of all engines)."""
        run: Run | None = await self._journal.call(store.approvals.resume, wait.run_id)
        self._deadlines.pop(wait.run_id, None)
        if run is None:
            return
        go = wait.decision == APPROVED or (wait.decision == TIMED_OUT and wait.on_timeout == "run")
        rule = self._rules(run.rule)
        self._log.warning("run.approval_decided", run_id=run.id, rule=run.rule,
                          decision=wait.decision, by=wait.decided_by, comment=wait.comment,
                          step=wait.step + 1)  # fmt: skip
        if go and rule is not None and unchanged(rule, run, wait):
            event = await self._journal.call(store.get_event, run.event_id)
            await self._resume(run, rule, event)
            return
        run.state, run.finished_at = RunState.SKIPPED, self._clock.now()
        if go:  # what would run now is not what was approved
            run.message = f"rule {run.rule} changed while the run waited; not resumed"
        else:
            run.message = f"{describe(wait)}; the run ends here"
        if wait.decision == TIMED_OUT and wait.on_timeout == "escalate":
            run.message += "; escalated"
            event = await self._journal.call(store.get_event, run.event_id)
            self._announce([_escalation(run, event, wait)])
        await self._end(run)


def unchanged(rule: Rule, run: Run, wait: Approval) -> bool:
    """Whether `rule` still does what the run was parked to do: its steps, parameters
    included (an edited argv is another command than the one approved)."""
    if not wait.digest:  # parked before the digest was kept: the action names, as then
        return rule.actions == run.actions
    return steps_digest(rule) == wait.digest


def _escalation(run: Run, event: Event, wait: Approval) -> Event:
    """Like the planner's limit escalation, with its own reason."""
    return Event(
        source=OWN_SOURCE, kind="escalation", resource=event.resource, host=event.host,
        labels={"rule": run.rule, "reason": "approval_timeout", "target": run.target},
        severity="critical", status=Status.FIRING, time=wait.decided_at or run.created_at,
        payload={"message": run.message, "event_id": event.id, "run_id": run.id,
                 "step": wait.step + 1, "action": wait.action},
    )  # fmt: skip
