"""The decision loop: events in, batched and committed, runs planned, claimed and executed."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from opsmedic.clock import Clock
from opsmedic.config.schema import Config
from opsmedic.engine.approvals import Approvals
from opsmedic.engine.decisions import Outcome, RuleOutcome, SuppressionLog
from opsmedic.engine.evidence import evidence_of_interrupted
from opsmedic.engine.executor import Executor
from opsmedic.engine.holds import Hold, Holds
from opsmedic.engine.incidents import Grouping, IncidentTracker, Reopening
from opsmedic.engine.journal import Journal, isolable
from opsmedic.engine.leases import Leases
from opsmedic.engine.manual import ManualRuns
from opsmedic.engine.muting import Muting
from opsmedic.engine.planner import Planner
from opsmedic.engine.pools import Pool, Pools
from opsmedic.errors import IncidentMoved, StoreRefused
from opsmedic.logs import get_logger
from opsmedic.model import Event, Incident, IncidentChanges, IncidentStatus, Run, RunState
from opsmedic.plugins import ProbeOnce, Registry
from opsmedic.rules.model import Rule
from opsmedic.rules.ruleset import RuleSet
from opsmedic.store.codec import EncodedEvent, encode_event
from opsmedic.store.decision_rows import DecisionRows
from opsmedic.store.incident_rows import IncidentRows
from opsmedic.store.store import Recovery, Store

_MAX_BATCH = 2000  # events planned and committed together at most
# People's actions on incidents: looked for at most this often (seconds) while events flow,
# back this far before the last look (a commit that took its time, another host's clock).
_LOOK_EVERY, _LOOK_SLACK = 1.0, 300.0
# A run's end is recorded with its incident's change made again this often at most when
# people keep acting on the incident meanwhile (IncidentMoved); then without the change.
_MOVED_RETRIES = 5


@dataclass(slots=True)
class Accepted:
    """What a caller gets back once its event is durable: the ids to follow it by."""

    event_id: str
    run_ids: list[str] = field(default_factory=list)
    held: tuple[tuple[str, str], ...] = ()  # (rule, reason) of each match held
    decisions: list[RuleOutcome] = field(default_factory=list)  # each rule matched: outcome


@dataclass(slots=True)
class _Submission:
    events: list[EncodedEvent]
    done: asyncio.Future[list[Accepted]] | None
    # A batch cut in event order (`Engine.in_event_order`) leaves a submission half planned:
    # the next batch starts at `start`, and the reply waits for the last event.
    start: int = 0
    accepted: list[Accepted] = field(default_factory=list)
    # Planned and committed in a batch of its own: it shared a commit that failed, and one
    # sender's data must not fail another's request a second time.
    alone: bool = False


@dataclass(slots=True)
class _Planned:
    """A batch after planning, before its commit."""

    events: list[EncodedEvent] = field(default_factory=list)
    to_run: list[tuple[Run, Rule, Event]] = field(default_factory=list)
    recorded: list[Run] = field(default_factory=list)
    # Matches held (engine/holds.py): rule, event, hold, and whether it is news (a line).
    held: list[tuple[str, Event, Hold, bool]] = field(default_factory=list)
    replies: list[tuple[_Submission, list[Accepted]]] = field(default_factory=list)
    incidents: IncidentRows = field(default_factory=IncidentRows)
    decisions: DecisionRows = field(default_factory=DecisionRows)
    # The submission planning stopped in, at an event whose alert has a run in flight.
    partial: _Submission | None = None
    # Each submission this batch planned, with its `start` and replies before: a failed
    # commit puts them back as they were.
    begun: list[tuple[_Submission, int, int]] = field(default_factory=list)
    at: float = 0.0  # when it was planned: when its suppressed decisions were recorded


class Engine:
    """One engine per process: `submit` returns after the events and their runs are committed.

    Batching is the trick that keeps durability cheap: while one batch commits, the next one
    gathers, so under load hundreds of events share a transaction and when idle an event
    commits alone. Runs execute as tasks, bounded by their queue's pool (engine/pools.py).
    """

    def __init__(
        self, *, ruleset: RuleSet, registry: Registry, config: Config,
        settings: Mapping[str, BaseModel], probe_once: ProbeOnce | None, store: Store | None,
        clock: Clock, dry_run: bool = False,
    ) -> None:  # fmt: skip
        self.log = get_logger(component="engine")
        self.planner = Planner(ruleset, clock.now, dry_run=dry_run or config.dry_run)
        self.journal = Journal(store, clock.now)
        self.executor = Executor(registry, config, clock, get_logger(), settings=settings,
                                 probe_once=probe_once)  # fmt: skip
        self.executor.announce = self._announce
        self.executor.opened_at = lambda incident_id: self.incidents.opened_at(incident_id)
        self.store = store
        lease = config.actions.lease
        self.leases = Leases(store, self.journal, clock, lease, self.log) if store else None
        # Runs by hand (engine/manual.py), under this engine's in-flight lock and limits.
        self.manual = ManualRuns(self.planner, self.executor, store, clock) if store else None
        self._grouping = Grouping(config.incidents.group_by)
        flapping = config.incidents.flapping
        self._reopening = Reopening(config.incidents.reopen_within, flapping.flaps,
                                    flapping.within)  # fmt: skip
        self.incidents = IncidentTracker(self._grouping, reopening=self._reopening)
        self.holds = Holds.of(config.services)
        self._noted = self.holds or Holds({})  # which holds have their timeline line
        # Silences, maintenance windows, inhibit rules: held through the same path (a Hold).
        # An inhibit rule's source resolving makes its next hold news, as a dependency's does.
        self.muting = Muting(config, on_lift=self._noted.forget)
        self.suppressions = SuppressionLog(config.record_suppressed)
        self._clock = clock
        self._inbox: list[_Submission] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.pools = Pools(config.actions.concurrency)
        self.planner.pools = self.pools
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._busy = False
        self.finished: dict[str, int] = {}
        self._in_event_order = False
        # Called with every run once it is final (executed, skipped or limited): CLI and demo.
        self.on_finished: Callable[[Run], None] | None = None
        # Called with (rule, dependency) for every match held: the metrics.
        self.on_held: Callable[[str, str], None] | None = None
        # Called with each batch's events once committed: the SLIs' samples (slo/watch.py).
        self.on_committed: Callable[[list[Event]], None] | None = None
        self.approvals = Approvals(store=store, journal=self.journal, clock=clock, log=self.log,
                                   rules=lambda name: self.planner.ruleset.get(name),
                                   resume=functools.partial(self._spawn, approved=True),
                                   end=self._end_waiting,
                                   announce=self._announce)  # fmt: skip
        # When the engine last looked for people's actions on incidents, and whether the API
        # saw one since (acted_on_incidents): see _catch_up.
        self._looked, self._acted = clock.now(), False

    async def start(self, *, recover: bool = False) -> list[Run]:
        """Start the loop; with `recover` (`opsmedic run` only: never a replay or a CLI
        command beside a live service) returns the runs whose engine is gone (a crash left
        them `running`), now marked `interrupted`."""
        self.journal.start()
        recovery = Recovery([], [])
        if self.leases is not None:
            self.leases.start()  # before recovery: its re-runs are this engine's runs
        if self.store is not None:
            if recover:
                recovery = await self.journal.call(
                    self.store.interrupt_running, self._clock.now(), self._rerun_of,
                    evidence_of_interrupted,
                )  # fmt: skip
            await self._reload_state()
            if self.holds is not None:  # a rollback before the restart still holds dependents
                self.holds.restore(await self.journal.call(self.holds.stored, self.store))
            for run in recovery.interrupted:
                self.log.warning("run.interrupted", run_id=run.id, rule=run.rule, target=run.target)
        self._loop_task = asyncio.create_task(self._loop(), name="opsmedic-engine")
        for run in await self.approvals.start():  # waits outlive a restart, and so do their locks
            self.planner.keep_in_flight(run)
        for run in recovery.reruns:
            assert self.store is not None
            event: Event = await self.journal.call(self.store.get_event, run.event_id)
            rule = self.planner.ruleset.get(run.rule)
            assert rule is not None  # _rerun_of only re-runs rules of the current set
            await self._spawn(run, rule, event)
        return recovery.interrupted

    @property
    def in_event_order(self) -> bool:
        """Replay sets this: an event whose alert still has a run of a rule it matches in
        flight waits for the runs in flight to finish, as they would have by its time live
        (runs take no event time), instead of being suppressed because a file is read faster;
        incidents follow the same timeline (IncidentTracker)."""
        return self._in_event_order

    @in_event_order.setter
    def in_event_order(self, on: bool) -> None:
        self._in_event_order = self.incidents.in_event_order = on
        self.planner.pools = None if on else self.pools  # a replay's file waits, never refused

    def reload(self, ruleset: RuleSet) -> None:
        self.planner.reload(ruleset)
        self.log.info("rules.reloaded", rules=len(ruleset))

    async def submit(self, events: list[Event]) -> list[Accepted]:
        """Plan and commit `events`; returns once they and their planned runs are durable.

        Raises StoreRefused, before anything is queued, for an event whose JSON columns
        cannot be encoded, or after its own commit when the database refused its data."""
        encoded = []
        for i, event in enumerate(events):
            try:
                encoded.append(encode_event(event))
            except StoreRefused as exc:
                raise StoreRefused(f"event {i}: {exc}") from exc
        fut: asyncio.Future[list[Accepted]] = asyncio.get_running_loop().create_future()
        self._push(_Submission(encoded, fut))
        return await fut

    def _announce(self, events: list[Event]) -> None:
        """Events the engine and its actions make (escalations, action reports): nobody waits."""
        try:
            self._push(_Submission([encode_event(e) for e in events], None))
        except StoreRefused as exc:  # our own events: a bug to log, never a stop
            self.log.error("engine.event_unencodable", error=str(exc))

    def _push(self, submission: _Submission) -> None:
        if self._in_event_order and submission.done is None:
            self._inbox.insert(0, submission)  # announced at their run's event time
        else:
            self._inbox.append(submission)
        self._idle.clear()
        self._wake.set()

    async def drain(self) -> None:
        """Wait until every submitted event is planned and every run has finished."""
        while not self._idle.is_set():
            await self._idle.wait()

    async def close(self) -> None:
        if self.manual is not None:
            await self.manual.drain()
        await self.drain()
        await self.approvals.close()
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self.leases is not None:
            await self.leases.close()
        await self.journal.close()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._busy = True
            while self._inbox:
                batch: list[_Submission] = []
                size = 0
                while self._inbox and size < _MAX_BATCH and not (batch and self._inbox[0].alone):
                    batch.append(self._inbox.pop(0))
                    size += len(batch[-1].events) - batch[-1].start
                    if batch[-1].alone:
                        break
                if self.store is not None and self.muting.due():
                    await self._refresh_silences(self.store)
                await self._catch_up()
                try:
                    planned = self._plan(batch)
                except Exception as exc:  # a bug in planning: its callers hear of it
                    self._fail(batch, exc)
                    continue
                # Planning the next batch waits for this commit (measured: overlapping the
                # two gained nothing here), so what is planned always rests on what is stored.
                await self._commit(planned)
                while planned.partial is not None and self._tasks:
                    await asyncio.wait(set(self._tasks))
            self._busy = False
            self._check_idle()

    def _plan(self, batch: list[_Submission]) -> _Planned:
        """Decide for every event of the batch: its incident, its runs, the replies."""
        planned = _Planned(at=self._clock.now())
        changes = IncidentChanges()
        self.pools.new_batch()
        for n, sub in enumerate(batch):
            planned.begun.append((sub, sub.start, len(sub.accepted)))
            for i in range(sub.start, len(sub.events)):
                encoded = sub.events[i]
                if (
                    self._in_event_order
                    and planned.events
                    and self.planner.in_flight_for(encoded.event)
                ):
                    sub.start, planned.partial = i, sub
                    self._inbox[:0] = batch[n:]  # planned after the runs in flight finish
                    break
                sub.accepted.append(self._plan_event(encoded, planned, changes))
            if planned.partial is not None:
                break
            planned.replies.append((sub, sub.accepted))
        self._lift_ended(changes.incidents.values(), math.inf)  # resolved by the engine
        # Rows now, not at the commit: the next batch may change these incidents before then.
        planned.incidents = IncidentRows.of(changes)
        planned.decisions = self.suppressions.take()
        return planned

    def _plan_event(
        self, encoded: EncodedEvent, planned: _Planned, changes: IncidentChanges
    ) -> Accepted:
        event = encoded.event
        self.incidents.observe(event, changes)
        # Live, silences, windows and inhibit sources' freshness are judged now
        # (docs/silences.md); a replay (in event order) judges at each event's own time.
        at = None if self._in_event_order else self._clock.now()
        hold = self.holds.observe(event, at) if self.holds is not None else None
        muted = self.muting.check(event, at)  # always: an inhibit rule learns its sources here
        hold = hold or muted
        decision = self.planner.decide(event, hold is not None,
                                       self.incidents.acknowledged(event.incident_id))  # fmt: skip
        if event.incident_id:
            self.incidents.planned(
                event, [r for r, _ in decision.runs] + decision.recorded, changes
            )
        planned.events.append(encoded)
        planned.to_run.extend((run, rule, event) for run, rule in decision.runs)
        planned.recorded.extend(decision.recorded)
        # An escalation is committed with the run that records its limit: a crash keeps both
        # or neither, and a restart rebuilds "escalated once per pause" from these events.
        # Bounded: a limited escalation rule escalates once per pause too.
        for escalation in decision.escalations:
            self._plan_event(encode_event(escalation), planned, changes)
        ids = [r.id for r, _ in decision.runs] + [r.id for r in decision.recorded]
        outcomes = decision.outcomes
        if hold is not None and decision.held:  # the hold says which kind it is
            kind = Outcome(hold.outcome)
            outcomes = [o if o.outcome is not Outcome.HELD else RuleOutcome(o.rule, kind,
                        hold.reason) for o in outcomes]  # fmt: skip
        if self.suppressions.enabled:
            at = event.time if self._in_event_order else planned.at  # a replay: its own time
            for found in outcomes:
                if found.outcome is not Outcome.PLANNED:
                    self.suppressions.add(event, found, changes, at)
        if not decision.held:
            return Accepted(event.id, ids, decisions=outcomes)
        assert hold is not None
        planned.held.extend(self._noted.held(decision.held, event, hold, changes))
        held = tuple((name, hold.reason) for name in decision.held)
        return Accepted(event.id, ids, held, outcomes)

    async def _commit(self, planned: _Planned) -> None:
        """Commit a planned batch, answer its submitters, start the runs it claimed."""
        to_run = planned.to_run
        try:
            claimed = await self.journal.record(
                planned.events,
                [r for r, _, _ in to_run] + planned.recorded,
                claim=[r.id for r, _, _ in to_run],
                incidents=planned.incidents,
                decisions=planned.decisions,
            )
        except Exception as exc:  # the callers hear of it; the engine keeps serving
            self.suppressions.forget()
            self._noted.unnote(planned.held)
            for run, _, _ in to_run:
                self.planner.done(run)
            await self._reload_state()
            subs = [sub for sub, _ in planned.replies]
            if planned.partial is not None:
                subs.append(planned.partial)
            if isinstance(exc, IncidentMoved) or (len(subs) > 1 and isolable(exc)):
                # Perhaps one submission's data: plan and commit each again on its own
                # (next, in order), on the state the store has, so only that one fails.
                # IncidentMoved: people acted on an incident meanwhile (an ack, a close): no
                # fault, planned again on the incident as they left it.
                say = self.log.info if isinstance(exc, IncidentMoved) else self.log.warning
                say("engine.batch_retried_alone", submissions=len(subs),
                    error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                for sub, start, replied in planned.begun:  # as before this batch was planned
                    sub.start, sub.alone = start, True
                    del sub.accepted[replied:]
                    for encoded in sub.events[start:]:
                        encoded.event.incident_id = ""
                # The partial submission is at the front of the inbox already (see _plan).
                self._inbox[:0] = [sub for sub, _ in planned.replies]
            else:
                if planned.partial is not None:  # its first events are lost with this batch
                    self._inbox = [s for s in self._inbox if s is not planned.partial]
                self._fail(subs, exc)
            return
        for sub, accepted in planned.replies:
            if sub.done is not None and not sub.done.done():
                sub.done.set_result(accepted)
        if self.on_committed is not None:
            self.on_committed([e.event for e in planned.events])
        for run in planned.recorded:
            self._count(run)
            self.log.warning("run.limited", run_id=run.id, rule=run.rule, target=run.target,
                             message=run.message)  # fmt: skip
        for name, event, hold, news in planned.held:
            if self.on_held is not None:
                self.on_held(name, hold.dependency)
            if news:
                self.log.warning("run.held", rule=name, event_id=event.id, target=event.target,
                                 incident_id=event.incident_id, reason=hold.reason)  # fmt: skip
        for run, rule, event in to_run:
            if run.id in claimed:
                await self._spawn(run, rule, event)
            else:
                self.planner.done(run)
                self.log.info("run.not_claimed", run_id=run.id, rule=run.rule)

    async def _refresh_silences(self, store: Store) -> None:
        try:
            await self.journal.call(self.muting.refresh, store, self._clock.now())
        except Exception as exc:  # the store is down: the batch's own commit says so
            self.log.error("engine.silences_unread", error=str(exc))

    def acted_on_incidents(self) -> None:
        """Someone acted on an incident in this process (the API): look before the next batch."""
        self._acted = True

    async def _catch_up(self) -> None:
        """Adopt people's actions on incidents (acknowledged, resolved, closed, reopened…) taken
        since the last look: at once after one through this process's API, else once per
        _LOOK_EVERY while events flow. In between the store keeps their state (the guarded
        upsert in store/incident_rows.py); this keeps the engine's decisions on it."""
        now = self._clock.now()
        if self.store is None or not (self._acted or now - self._looked >= _LOOK_EVERY):
            return
        since, self._looked, self._acted = self._looked - _LOOK_SLACK, now, False
        try:
            found = await self.journal.call(self.store.incidents_acted_on, since)
        except Exception as exc:  # the store is down: the next look tries again
            self.log.error("engine.catch_up_failed", error=str(exc))
            self._acted = True
            return
        for incident in found:
            self.incidents.adopt(incident)
        self._lift_ended(found)

    def _lift_ended(self, incidents: Iterable[Incident], at: float | None = None) -> None:
        """Inhibit sources (and `depends_on` alerts) whose incident is resolved or closed stop
        holding: those that fired by `at`, or by the person's action (a later repeat holds)."""
        for incident in incidents:
            if incident.status in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED):
                when = at if at is not None else incident.human_at or 0.0
                self.muting.ended(incident.id, when)
                if self.holds is not None:
                    self.holds.ended(incident.id, when)

    async def _reload_state(self) -> None:
        """Incidents, limit windows and throttles as the store has them: at start, and after
        a commit that failed (its changes were made in memory and must not outlive it, or a
        retried alert is lost to a throttle or an incident that the store never saw)."""
        if self.store is None:
            return
        store, now = self.store, self._clock.now()
        rules = list(self.planner.ruleset)
        horizon = max((r.limit.within for r in rules if r.limit), default=0.0)
        window = max((r.throttle.once_within for r in rules if r.throttle), default=0.0)
        try:
            # With those resolved within the reopen window: an alert firing again reopens them.
            since = now - self._reopening.within if self._reopening.within > 0 else None
            active = await self.journal.call(store.active_incidents, since)
            recent = await self.journal.call(store.recent_runs, now - horizon) if horizon else []
            fired = await self.journal.call(store.recent_fired, now - window) if window else []
            paused = await self.journal.call(store.escalations, now - horizon) if horizon else []
        except Exception as exc:  # the store is down: the next commit fails and retries this
            self.log.error("engine.reload_failed", error=str(exc))
            return
        self.incidents = IncidentTracker(
            self._grouping, active, reopening=self._reopening, in_event_order=self._in_event_order
        )
        self.planner.forget_history()
        self.planner.restore(recent)
        self.planner.restore_throttles(fired)
        self.planner.restore_escalations(paused)

    def _fail(self, batch: list[_Submission], exc: Exception) -> None:
        # A refusal is the data's fault and its one line says why (a duplicate event id, a
        # value the database cannot hold); a traceback is kept for what is not understood.
        trace = None if isinstance(exc, StoreRefused) else exc
        self.log.error("engine.batch_failed", error=f"{type(exc).__name__}: {exc}",
                       exc_info=trace)  # fmt: skip
        for sub in batch:
            if sub.done is not None and not sub.done.done():
                sub.done.set_exception(exc)

    async def _spawn(self, run: Run, rule: Rule, event: Event, approved: bool = False) -> None:
        pool = self.pools[run.queue]
        await pool.admit()  # backpressure: planning waits once this queue's backlog is full
        self._idle.clear()
        task = asyncio.create_task(self._execute(run, rule, event, pool, approved))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def _execute(
        self, run: Run, rule: Rule, event: Event, pool: Pool, approved: bool
    ) -> None:
        await pool.acquire()  # in the run's own task: a full pool holds up its own runs only
        try:
            run.state = RunState.RUNNING
            if not approved:  # a resumed run started before its wait
                run.started_at = self._clock.now()
                self.journal.note(IncidentRows.of(self.incidents.started(run)))
            await self.executor.execute(run, rule, event, approved=approved)
            # A waiting run gives its slot back (below) and keeps its in-flight lock.
            if run.state is RunState.WAITING_APPROVAL and await self.approvals.park(
                run, rule, event
            ):
                return
            await self._record_end(run)
        except Exception:
            self.log.exception("run.crashed", run_id=run.id, rule=run.rule)
        finally:
            if run.state is not RunState.WAITING_APPROVAL:
                self.planner.done(run)
            pool.release()

    async def _record_end(self, run: Run) -> None:
        for _ in range(_MOVED_RETRIES):
            ended = self.incidents.finished(run, self._clock.now())
            try:
                await self.journal.finish(run, IncidentRows.of(ended))
                break
            except IncidentMoved as exc:  # resolved or closed by hand meanwhile: as it is now
                assert self.store is not None
                for incident in await self.journal.call(self.store.incidents_by_id, exc.ids):
                    self.incidents.adopt(incident)
        else:
            await self.journal.finish(run)  # acted on again and again: the run's end at least
        self._count(run)
        self.log.info("run.finished", run_id=run.id, rule=run.rule, target=run.target,
                      outcome=str(run.state), message=run.message)  # fmt: skip

    async def _end_waiting(self, run: Run) -> None:
        """Record the end of a run that waited and will not go on (rejected, timed out)."""
        try:
            await self._record_end(run)
        finally:
            self.planner.done(run)

    def _count(self, run: Run) -> None:
        self.finished[str(run.state)] = self.finished.get(str(run.state), 0) + 1
        if self.on_finished is not None:
            self.on_finished(run)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._check_idle()

    def _check_idle(self) -> None:
        if not (self._inbox or self._tasks or self._busy or self._wake.is_set()):
            self._idle.set()

    def _rerun_of(self, old: Run) -> Run | None:
        """The re-run of an interrupted run, if every action it runs says it is safe to repeat
        (called inside the recovery transaction: no I/O here)."""
        rule = self.planner.ruleset.get(old.rule)
        if rule is None or rule.actions != old.actions:
            return None  # the rule changed since: what ran is not what would run now
        names = old.actions + [s.action for s in rule.on_failure]
        specs = [self.executor.registry.actions.get(a) for a in names]
        if not all(s is not None and s.idempotent for s in specs):
            return None
        return Run(rule=rule.name, event_id=old.event_id, target=old.target,
                   fingerprint=old.fingerprint, actions=rule.actions, queue=rule.queue,
                   dry_run=old.dry_run, created_at=self._clock.now(),
                   message=f"re-run of interrupted run {old.id}",
                   incident_id=old.incident_id, rerun_of=old.id, started_by=old.started_by,
                   forced=old.forced)  # fmt: skip

    def stats(self) -> dict[str, Any]:
        return {"finished": dict(self.finished), **dataclasses.asdict(self.planner.stats)}
