"""Decide which runs an event starts: match, then `for:`, in-flight lock, throttle and limit."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from opsmedic.engine.decisions import Outcome, RuleOutcome, clock, secs
from opsmedic.engine.pools import Pools
from opsmedic.errors import RunRefused
from opsmedic.model import OWN_SOURCE, Event, Run, RunState, Status
from opsmedic.rules.model import LimitSpec, Rule, key_of
from opsmedic.rules.ruleset import RuleSet

_GC_EVERY = 10_000  # events between sweeps of expired throttle and limit state


@dataclass(slots=True)
class Decision:
    """What one event leads to: runs to execute, runs only recorded, events to feed back."""

    runs: list[tuple[Run, Rule]] = field(default_factory=list)
    recorded: list[Run] = field(default_factory=list)
    escalations: list[Event] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # rules matched whose runs were held
    # Each rule matched, with its outcome: why not, for those that started no run.
    outcomes: list[RuleOutcome] = field(default_factory=list)


@dataclass(slots=True)
class PlannerStats:
    events: int = 0
    matched: int = 0
    planned: int = 0
    pending_for: int = 0
    suppressed_in_flight: int = 0
    suppressed_throttle: int = 0
    limited: int = 0
    held: int = 0
    stopped_acknowledged: int = 0  # matches of `on_acknowledge: stop` rules, not acted on
    queue_full: int = 0  # investigations refused: their pool's backlog was full


@dataclass(frozen=True, slots=True)
class WindowState:
    """One key's throttle or limit as the planner holds it now: `used` of `allowed` runs in
    the window; no run for this key before `held_until` (event time; None: not held)."""

    key: tuple[str, ...]
    used: int
    allowed: int
    held_until: float | None


@dataclass(slots=True)
class RuleWindows:
    """A rule's throttles and limits by key (the first `shown` of each, newest first)."""

    throttles: list[WindowState] = field(default_factory=list)
    throttles_total: int = 0
    limits: list[WindowState] = field(default_factory=list)
    limits_total: int = 0


class Planner:
    """The engine's decisions, kept apart from I/O so they are fast and easy to test.

    `for:`, throttle and limit windows are measured on event time, so a replay of last night's
    events decides them as the live engine did. The in-flight lock is the exception: it
    lasts as long as the action really runs, so a replay asks `in_flight_for` before each
    event and lets earlier runs finish first (engine/loop.py). All state here is in memory;
    limit windows (per target) are restored from the store at start-up.
    """

    def __init__(self, ruleset: RuleSet, now: Callable[[], float], dry_run: bool = False) -> None:
        self.ruleset = ruleset
        self.dry_run = dry_run
        self.stats = PlannerStats()
        self._now = now
        self._pending: dict[tuple[str, str], float] = {}
        self._pending_by_fp: dict[str, set[str]] = defaultdict(set)
        self._in_flight: set[tuple[str, str]] = set()
        # Fingerprints with a run in flight, counted: `in_flight_for` skips the rule match
        # for every other event (a replay asks before each one).
        self._flying: dict[str, int] = {}
        self._last_fired: dict[tuple[str, tuple[str, ...]], float] = {}
        self._windows: dict[tuple[str, tuple[str, ...]], deque[float]] = {}
        self._escalated: set[tuple[str, tuple[str, ...]]] = set()
        # The engine's pools, asked before a run is planned (a full investigation queue
        # refuses); None plans regardless (a replay in event order waits for room instead).
        self.pools: Pools | None = None

    def reload(self, ruleset: RuleSet) -> None:
        """Swap rules; state of rules that still exist is kept, the rest dropped."""
        self.ruleset = ruleset
        names = {r.name for r in ruleset}
        self._pending = {k: v for k, v in self._pending.items() if k[0] in names}
        self._last_fired = {k: v for k, v in self._last_fired.items() if k[0] in names}
        self._windows = {k: v for k, v in self._windows.items() if k[0] in names}

    def forget_history(self) -> None:
        """Drop throttles, limit windows and pauses, before they are restored from the store."""
        self._last_fired.clear()
        self._windows.clear()
        self._escalated.clear()

    def restore(self, recent: list[tuple[str, str, float, Event | None]]) -> None:
        """Refill limit windows from runs the store recorded (before a restart, or before a
        commit that failed): keyed by the run's target, or by its event's `per` fields."""
        for rule_name, target, created_at, event in sorted(recent, key=lambda r: r[2]):
            rule = self.ruleset.get(rule_name)
            if rule is None or rule.limit is None:
                continue
            per = rule.limit.per
            key: tuple[str, tuple[str, ...]]
            if per == ["target"]:
                key = (rule_name, (target,))
            elif event is not None:
                key = (rule_name, key_of(event, per))
            else:
                continue
            self._windows.setdefault(key, deque()).append(created_at)

    def restore_throttles(self, fired: list[tuple[str, Event]]) -> None:
        """Refill throttles from the runs (and their events) recorded before a restart, so a
        repeated alert does not run a rule again inside its window."""
        for rule_name, event in fired:
            rule = self.ruleset.get(rule_name)
            if rule is not None and rule.throttle is not None:
                key = (rule_name, key_of(event, rule.throttle.per))
                self._last_fired[key] = max(self._last_fired.get(key, event.time), event.time)

    def restore_escalations(self, escalations: list[Event]) -> None:
        """Mark the limit pauses already escalated before a restart (after `restore`): those
        whose escalation came after the last run their window counts, so that the next
        event refused in the same pause escalates nothing."""
        for event in escalations:
            if event.labels.get("reason", "limit") != "limit":  # an approval's timeout
                continue
            name, target = event.labels.get("rule", ""), event.labels.get("target", "")
            key = (name, (target,))
            window = self._windows.get(key)
            if window and window[-1] <= event.time:
                self._escalated.add(key)

    def done(self, run: Run) -> None:
        """Release the (rule, fingerprint) in-flight lock when a run finishes."""
        lock = (run.rule, run.fingerprint)
        if lock in self._in_flight:
            self._in_flight.discard(lock)
            left = self._flying[run.fingerprint] - 1
            if left:
                self._flying[run.fingerprint] = left
            else:
                del self._flying[run.fingerprint]

    def keep_in_flight(self, run: Run) -> None:
        """Take the in-flight lock of a run the store kept across a restart (one waiting for
        approval): the alert must not start the rule a second time meanwhile."""
        lock = (run.rule, run.fingerprint)
        if lock not in self._in_flight:
            self._in_flight.add(lock)
            self._flying[run.fingerprint] = self._flying.get(run.fingerprint, 0) + 1

    def in_flight_for(self, event: Event) -> bool:
        """Whether a rule `event` matches still has a run in flight for the event's alert."""
        if event.fingerprint not in self._flying:
            return False
        fp = event.fingerprint
        return any((r.name, fp) in self._in_flight for r in self.ruleset.match(event))

    def decide(self, event: Event, held: bool = False, acknowledged: bool = False) -> Decision:
        """`held`: the event's service depends on one that is failing (engine/holds.py);
        `acknowledged`: someone acknowledged its incident (rules' `on_acknowledge`)."""
        decision = Decision()
        matched = self.ruleset.match(event)
        self._reset_pending(event, matched)
        for rule in matched:
            self.stats.matched += 1
            if acknowledged and rule.on_acknowledge == "stop":
                self.stats.stopped_acknowledged += 1
                decision.outcomes.append(RuleOutcome(rule.name, Outcome.ACKNOWLEDGED,
                                                     "on_acknowledge: stop"))  # fmt: skip
                continue
            self._decide_rule(rule, event, decision, held)
        for rule in self.ruleset.match_disabled(event):
            decision.outcomes.append(RuleOutcome(rule.name, Outcome.DISABLED, "enabled: false"))
        self.stats.events += 1
        if self.stats.events % _GC_EVERY == 0:
            self._gc(event.time)
        return decision

    def windows(self, now: float, shown: int = 20) -> dict[str, RuleWindows]:
        """Each rule's throttles and limits at `now` (rules holding none left out), for people
        (the dashboard): one pass over the state, changing nothing (expired entries wait for
        the next sweep, and are not shown)."""
        # Disabled rules too: a forced run by hand takes a place in its rule's limit.
        rules = {r.name: r for r in (*self.ruleset, *self.ruleset.disabled.values())}
        found: dict[str, RuleWindows] = defaultdict(RuleWindows)
        for (name, key), last in self._last_fired.items():
            throttle = rules[name].throttle if name in rules else None
            if throttle is not None and now - last < throttle.once_within:
                found[name].throttles.append(WindowState(key, 1, 1, last + throttle.once_within))
        for (name, key), times in self._windows.items():
            limit = rules[name].limit if name in rules else None
            inside = [t for t in times if t > now - limit.within] if limit is not None else []
            if limit is not None and inside:
                full = len(inside) >= limit.max_runs
                # Held until enough of the oldest runs leave the window for one more.
                until = inside[-limit.max_runs] + limit.within if full else None
                found[name].limits.append(WindowState(key, len(inside), limit.max_runs, until))
        for state in found.values():
            state.throttles.sort(key=lambda w: w.held_until or 0.0, reverse=True)
            state.limits.sort(key=lambda w: (w.held_until is None, -w.used))
            state.throttles_total, state.limits_total = len(state.throttles), len(state.limits)
            del state.throttles[shown:], state.limits[shown:]
        return dict(found)

    def _reset_pending(self, event: Event, matched: list[Rule]) -> None:
        """A `for:` must hold continuously: a non-matching event for the same alert resets it."""
        waiting = self._pending_by_fp.get(event.fingerprint)
        if not waiting:
            return
        still = {r.name for r in matched}
        for name in [n for n in waiting if n not in still]:
            waiting.discard(name)
            self._pending.pop((name, event.fingerprint), None)
        if not waiting:
            del self._pending_by_fp[event.fingerprint]

    def _decide_rule(self, rule: Rule, event: Event, decision: Decision, held: bool) -> None:
        if rule.for_s > 0:
            since = self._pending.setdefault((rule.name, event.fingerprint), event.time)
            self._pending_by_fp[event.fingerprint].add(rule.name)
            if event.time - since < rule.for_s:
                self.stats.pending_for += 1
                why = f"for: {secs(rule.for_s)}s; matching for {secs(event.time - since)}s"
                decision.outcomes.append(RuleOutcome(rule.name, Outcome.WAITING_FOR, why))
                return
        lock = (rule.name, event.fingerprint)
        if lock in self._in_flight:
            # The same alert never runs the same rule twice at once.
            self.stats.suppressed_in_flight += 1
            found = RuleOutcome(rule.name, Outcome.IN_FLIGHT, "a run for this alert is running")
            decision.outcomes.append(found)
            return
        if held:
            # Acting on this service would treat a symptom. Before throttle and limit, which a
            # held match must not use up: once the dependency recovers the next match runs.
            self.stats.held += 1
            decision.held.append(rule.name)
            decision.outcomes.append(RuleOutcome(rule.name, Outcome.HELD))  # its reason: loop.py
            return
        if rule.throttle is not None:
            tkey = (rule.name, key_of(event, rule.throttle.per))
            last = self._last_fired.get(tkey)
            if last is not None and event.time - last < rule.throttle.once_within:
                self.stats.suppressed_throttle += 1
                why = f"once_within {secs(rule.throttle.once_within)}s; last run at {clock(last)}"
                decision.outcomes.append(RuleOutcome(rule.name, Outcome.THROTTLED, why))
                return
        # Before the limit, which a refused run must not use up.
        if self.pools is not None and (full := self.pools.refusal(rule.queue)):
            self.stats.queue_full += 1
            decision.outcomes.append(RuleOutcome(rule.name, Outcome.QUEUE_FULL, full))
            return
        if rule.limit is not None and not self._within_limit(rule, event, decision):
            return
        if rule.throttle is not None:
            self._last_fired[(rule.name, key_of(event, rule.throttle.per))] = event.time
        self._lock(lock)
        if self.pools is not None:
            self.pools.book(rule.queue)
        self.stats.planned += 1
        run = self._run(rule, event)
        decision.runs.append((run, rule))
        decision.outcomes.append(RuleOutcome(rule.name, Outcome.PLANNED, f"run {run.id}"))

    def by_hand(self, rule: Rule, event: Event, *, dry_run: bool) -> Run:
        """The run of a rule started by hand (engine/manual.py): no match, `for:` or throttle
        decides it, but it takes the in-flight lock and a place in the rule's limit as a live
        run does (a dry run acts on nothing and takes neither). Raises RunRefused."""
        run = self._run(rule, event)
        run.dry_run = run.dry_run or dry_run
        if run.dry_run:
            return run
        lock = (rule.name, event.fingerprint)
        if lock in self._in_flight:
            raise RunRefused(f"a run of {rule.name} for this alert ({event.target}) is in flight")
        if rule.limit is not None:
            key, window = self._window(rule, rule.limit, event)
            if len(window) >= rule.limit.max_runs:
                raise RunRefused(_limit_reached(rule.limit, key[1]))
            window.append(event.time)
        self._lock(lock)
        return run

    def give_back(self, run: Run, rule: Rule, event: Event) -> None:
        """Undo `by_hand` for a run that was never started: its lock and its limit place."""
        if run.dry_run:
            return  # it took neither: the lock may be a live run's
        self.done(run)
        if rule.limit is None:
            return
        window = self._windows.get((rule.name, key_of(event, rule.limit.per)))
        if window and event.time in window:
            window.remove(event.time)

    def _lock(self, lock: tuple[str, str]) -> None:
        self._in_flight.add(lock)
        self._flying[lock[1]] = self._flying.get(lock[1], 0) + 1

    def _window(
        self, rule: Rule, limit: LimitSpec, event: Event
    ) -> tuple[tuple[str, tuple[str, ...]], deque[float]]:
        """The limit key of `event` and its window, emptied of the times it no longer holds."""
        key = (rule.name, key_of(event, limit.per))
        window = self._windows.setdefault(key, deque())
        while window and window[0] <= event.time - limit.within:
            window.popleft()
        return key, window

    def _within_limit(self, rule: Rule, event: Event, decision: Decision) -> bool:
        assert rule.limit is not None
        key, window = self._window(rule, rule.limit, event)
        if len(window) < rule.limit.max_runs:
            window.append(event.time)
            self._escalated.discard(key)
            return True
        self.stats.limited += 1
        decision.outcomes.append(RuleOutcome(rule.name, Outcome.OVER_LIMIT,
            f"limit: {rule.limit.max_runs} runs within {secs(rule.limit.within)}s for "
            f"{'/'.join(key[1])}"))  # fmt: skip
        if key not in self._escalated:
            # Escalate once per pause: a flapping alert must not become a notification storm.
            self._escalated.add(key)
            run = self._run(rule, event)
            run.state = RunState.SKIPPED
            run.finished_at = run.created_at
            run.message = f"{_limit_reached(rule.limit, key[1])}; paused and escalated"
            decision.recorded.append(run)
            decision.escalations.append(self._escalation(rule, event, run))
        return False

    def _run(self, rule: Rule, event: Event) -> Run:
        dry = self.dry_run if rule.dry_run is None else rule.dry_run or self.dry_run
        return Run(
            rule=rule.name, event_id=event.id, target=event.target, fingerprint=event.fingerprint,
            actions=rule.actions, queue=rule.queue, dry_run=dry, created_at=self._now(),
        )  # fmt: skip

    @staticmethod
    def _escalation(rule: Rule, event: Event, run: Run) -> Event:
        return Event(
            source=OWN_SOURCE, kind="escalation", resource=event.resource, host=event.host,
            labels={"rule": rule.name, "reason": "limit", "target": event.target},
            value=rule.limit.max_runs if rule.limit else None, severity="critical",
            status=Status.FIRING, time=event.time,
            payload={"message": run.message, "event_id": event.id, "run_id": run.id},
        )  # fmt: skip

    def _gc(self, now: float) -> None:
        """Drop throttle and limit state whose window has passed, so memory stays bounded."""
        rules = {r.name: r for r in self.ruleset}
        self._last_fired = {
            k: t for k, t in self._last_fired.items()
            if (r := rules.get(k[0])) is not None and r.throttle is not None
            and now - t < r.throttle.once_within
        }  # fmt: skip
        self._windows = {
            k: w for k, w in self._windows.items() if w and now - w[-1] < _horizon(rules, k[0])
        }


# How a limit's refusal opens its message (a skipped run's too): explain.py reads it back.
LIMIT_REACHED = "limit reached"


def _limit_reached(limit: LimitSpec, key: tuple[str, ...]) -> str:
    return (
        f"{LIMIT_REACHED}: {limit.max_runs} runs within {secs(limit.within)}s for {'/'.join(key)}"
    )


def _horizon(rules: dict[str, Rule], name: str) -> float:
    rule = rules.get(name)
    return rule.limit.within if rule is not None and rule.limit is not None else 0.0
