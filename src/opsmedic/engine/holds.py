"""Holds: a service's remediations wait while a service it depends on is the one failing; the
inhibitor behind them is the one that runs the config's `inhibit:` rules too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opsmedic.config.matchers import parse_matcher
from opsmedic.config.services import ServiceConfig
from opsmedic.engine.inhibitor import Inhibition, Inhibitor
from opsmedic.model import OWN_SOURCE, Deployment, Event, IncidentChanges, TimelineEntry
from opsmedic.store.store import Store

# The release controller's state-change events (releases/events.py, which the engine may not
# import): they are about their resource, the service deployed.
_DEPLOYMENT = (OWN_SOURCE, "deployment")
_WENT_WRONG = frozenset({"rolled_back", "failed"})
# Severities that make a service failing, as a matcher of the alerts about it.
_FAILING = parse_matcher("severity=~(?i)warning|error|critical")
# Holds already written down, at most: past it the memory starts afresh (a line is repeated).
_NOTED_MAX = 10_000
_RESTORED = 20  # deployments per service read back at start: the newest of each environment


@dataclass(frozen=True, slots=True)
class Hold:
    """Why the rule runs of an event are held. A failing dependency, a silence, a maintenance
    window and an inhibit rule all hold this way (engine/muting.py), so each gets the same
    path: before throttle and limit, a line on the incident once per cause, the reply's `held`."""

    dependency: str  # what holds: the failing service, or "silence", "maintenance", "inhibit"
    cause: str  # "incident <id>", "deployment <id> rolled_back", "silence <id>"…: noted once
    reason: str  # the sentence on the timeline and in the ingest reply
    outcome: str = "held"  # held (a dependency), silenced (a silence or window) or inhibited


def dependency_rules(services: Mapping[str, ServiceConfig]) -> list[Inhibition]:
    """`depends_on` as inhibit rules: for a service and each service it depends on (declared,
    directly first, then theirs), an alert about the dependency firing at warning or worse
    holds the events about the service: its alerts, and its deployment events."""
    rules = []
    for name, svc in services.items():
        for dep in _closure(services, name) if svc.depends_on else ():
            if dep not in services:
                continue

            def hold(what: str, _fingerprint: str, name: str = name, dep: str = dep) -> Hold:
                return Hold(dep, what, f"held: {name} depends on {dep}, which is failing ({what})")

            source = (parse_matcher(f"labels.service={dep}"), _FAILING)
            deployment = f"source={_DEPLOYMENT[0]}", f"kind={_DEPLOYMENT[1]}", f"resource={name}"
            for target in ((f"labels.service={name}",), deployment):
                rules.append(
                    Inhibition(
                        source,
                        tuple(map(parse_matcher, target)),
                        (),
                        hold,
                        name=f"{name} depends_on {dep}",
                    )
                )
    return rules


class Holds:
    """Which services that others depend on are failing, learnt from the events the engine
    observes, and whether an event's service depends (transitively) on one of them. A firing
    alert about a dependency holds through the Inhibitor, as an `inhibit:` rule does (the
    rules `dependency_rules` writes); a deployment that went wrong has no counterpart there.

    An event is about a service when its `labels.service` names a declared one, or when it is
    a deployment event of the release controller (its resource). A dependency is failing while
    an alert about it fires with severity warning or worse (until it resolves, its incident is
    resolved or closed, or it goes 5 minutes without a repeat: the Inhibitor), or for its
    `hold_dependents` after one of its deployments rolled back or failed (until a later one is
    promoted in that environment). Times are event times, as the planner's windows are.
    """

    def __init__(self, services: Mapping[str, ServiceConfig]) -> None:
        self._needs = {n: _closure(services, n) for n, s in services.items() if s.depends_on}
        watched = {d for deps in self._needs.values() for d in deps if d in services}
        self._window = {name: services[name].hold_dependents for name in watched}
        # Per watched service: its deployments that went wrong, per environment (event time,
        # deployment id, state).
        self._wrong: dict[str, dict[str, tuple[float, str, str]]] = {n: {} for n in watched}
        self._noted: set[tuple[str, str, str]] = set()
        # A recovery: the next hold of its dependents is news again.
        self._alerts = Inhibitor(dependency_rules(services), on_lift=self.forget)

    @staticmethod
    def of(services: Mapping[str, ServiceConfig]) -> Holds | None:
        """None when no service depends on another: the engine then never asks."""
        return Holds(services) if any(s.depends_on for s in services.values()) else None

    def observe(self, event: Event, at: float | None = None) -> Hold | None:
        """Learn from `event` (once it joined its incident); the hold of its rule runs, if any.
        `at` is when it arrived (Inhibitor): the event's time when not given."""
        alerted = self._alerts.observe(event, at)
        deployment = event.kind == _DEPLOYMENT[1] and event.source == _DEPLOYMENT[0]
        service = event.resource if deployment else event.labels.get("service")
        if service is None:
            return None
        if deployment and service in self._wrong:
            self._deployed(service, event)
        if alerted is not None:
            return alerted
        for dependency in self._needs.get(service, ()):
            cause = self._went_wrong(dependency, event.time)
            if cause:
                why = f"held: {service} depends on {dependency}, which is failing ({cause})"
                return Hold(dependency, cause, why)
        return None

    def stored(self, store: Store) -> list[Deployment]:
        """The newest deployments of the services others depend on (a restart forgets what
        the events taught; a deployment's rollback is in the store), oldest first."""
        found = [d for name in self._wrong for d in store.list_deployments(name, limit=_RESTORED)]
        return sorted(found, key=lambda d: d.updated_at)

    def restore(self, deployments: list[Deployment]) -> None:
        """Learn from the deployments `stored` read as if from their last events."""
        for d in deployments:
            self._deploy(d.service, str(d.state), d.env, d.finished_at or d.updated_at, d.id)

    def ended(self, incident_id: str, at: float) -> None:
        """An incident was resolved or closed: its alerts no longer make a service failing."""
        self._alerts.ended(incident_id, at)

    def evicted(self) -> dict[str, int]:
        """Alerts about dependencies dropped at the Inhibitor's cap, by rule (the metrics)."""
        return self._alerts.evicted()

    def forget(self) -> None:
        """A hold lifted (a dependency or an inhibit rule's source recovered): the next hold
        of every cause is news again, with its line, when the source fails again."""
        self._noted.clear()

    def unnote(self, held: list[tuple[str, Event, Hold, bool]]) -> None:
        """The batch that gave these holds their lines was not committed (the lines went with
        it): the next hold of each is news again, so the replanned batch writes the line."""
        for rule, event, hold, news in held:
            if news:
                self._noted.discard((rule, event.fingerprint, hold.cause))

    def held(
        self, rules: list[str], event: Event, hold: Hold, changes: IncidentChanges
    ) -> list[tuple[str, Event, Hold, bool]]:
        """The held matches of `rules` for `event`, each with whether it is news: the first hold
        of the rule for this alert and cause, which gets a line on the event's incident (not
        every repeat of the alert, every probe interval)."""
        found = []
        for rule in rules:
            key = (rule, event.fingerprint, hold.cause)
            news = key not in self._noted
            if news:
                if len(self._noted) >= _NOTED_MAX:
                    self._noted.clear()
                self._noted.add(key)
                if event.incident_id:
                    changes.timeline.append(TimelineEntry(
                        event.incident_id, event.time, "rule_held",
                        f"rule {rule} matched; {hold.reason}", event.id,
                    ))  # fmt: skip
            found.append((rule, event, hold, news))
        return found

    def _deployed(self, service: str, event: Event) -> None:
        state, env = event.labels.get("state", ""), event.labels.get("env", "")
        deployment_id = str(event.payload.get("deployment_id") or event.id)
        self._deploy(service, state, env, event.time, deployment_id)

    def _deploy(self, service: str, state: str, env: str, at: float, deployment_id: str) -> None:
        if state in _WENT_WRONG:
            self._wrong[service][env] = (at, deployment_id, state)
        elif state == "promoted":  # a version passed there since: that went-wrong is over
            self._wrong[service].pop(env, None)

    def _went_wrong(self, dependency: str, now: float) -> str:
        """Which deployment of `dependency` went wrong within its window, or "" when none."""
        window = self._window.get(dependency, 0.0)
        for at, deployment_id, state in self._wrong.get(dependency, {}).values():
            if now - at < window:
                return f"deployment {deployment_id} {state}"
        return ""


def _closure(services: Mapping[str, ServiceConfig], name: str) -> tuple[str, ...]:
    """Every service `name` depends on, directly first, then theirs (a cycle, which the config
    check refuses, ends where it comes back)."""
    found: dict[str, None] = {}
    queue = list(services[name].depends_on)
    while queue:
        dep = queue.pop(0)
        if dep == name or dep in found:
            continue
        found[dep] = None
        known = services.get(dep)
        queue.extend(known.depends_on if known is not None else [])
    return tuple(found)
