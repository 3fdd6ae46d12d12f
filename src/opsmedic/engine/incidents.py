"""Incidents: group firing events by key, follow them to mitigated and resolved, keep a timeline."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from opsmedic.engine.evidence import evidence_line
from opsmedic.lifecycle import Action, next_status
from opsmedic.model import (
    OWN_SOURCE,
    AlertDelta,
    Event,
    Incident,
    IncidentChanges,
    IncidentStatus,
    Queue,
    Run,
    RunState,
    Status,
    TimelineEntry,
)

_DONE = (IncidentStatus.RESOLVED, IncidentStatus.CLOSED)
# Steps whose success tells people something: they appear on the timeline as notifications.
NOTIFYING_ACTIONS = frozenset({"notify", "annotate"})
# What people set, which the engine takes from the store when it catches up (adopt).
_LIFECYCLE_FIELDS = ("status", "mitigated_at", "resolved_at", "acknowledged_at",
                     "acknowledged_by", "assignee", "closed_at", "human_actions",
                     "human_at")  # fmt: skip
ALL_LABELS = "..."  # Alertmanager's spelling of "group by every label": one incident per alert
_SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}
# A grouping key is a key of an index (incidents.key); one built from long labels (an alert
# name of 30,000 characters) could not be indexed by PostgreSQL (about 2,700 bytes at most)
# and failed its commit. Past this many characters the key is its head and a hash of it all,
# so that the alert is still grouped, deterministically, instead of refused.
KEY_MAX = 200
_KEY_DIGEST = 16  # bytes: 32 hex characters


class Grouping:
    """The grouping key of an event, like Alertmanager's `group_by`, configurable per source.

    Without a setting for its source an event groups by alert name (`labels.alertname`, else
    `kind`, else `source`) and service (`labels.service`, else `resource`).
    """

    def __init__(self, group_by: Mapping[str, list[str]]) -> None:
        self._by_source = dict(group_by)

    def key(self, event: Event) -> str:
        return bounded_key(self._key(event))

    def _key(self, event: Event) -> str:
        fields = self._by_source.get(event.source) or self._by_source.get("default")
        if fields is None:
            return f"{_name(event)}/{_service(event)}"
        if ALL_LABELS in fields:
            return f"{event.source}:{event.fingerprint}"
        return f"{event.source}:" + ",".join(f"{f}={field_value(event, f)}" for f in fields)


def bounded_key(key: str) -> str:
    """`key` itself up to KEY_MAX characters, else its head and a hash of the whole."""
    if len(key) <= KEY_MAX:
        return key
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=_KEY_DIGEST)
    return f"{key[: KEY_MAX - 2 * _KEY_DIGEST - 1]}#{digest.hexdigest()}"


def field_value(event: Event, path: str) -> str:
    """The text of one grouping field: source, kind, resource, host, severity or labels.X."""
    if path.startswith("labels."):
        return event.labels.get(path[len("labels.") :], "")
    return str(getattr(event, path))


def _name(event: Event) -> str:
    return event.labels.get("alertname") or event.kind or event.source


def _service(event: Event) -> str:
    return event.labels.get("service") or event.resource


@dataclass(frozen=True, slots=True)
class Reopening:
    """When a resolved incident comes back instead of a new one opening, and when its coming
    back so often makes it flapping (config `incidents`; times are event times, seconds)."""

    within: float = 1800.0  # its alert fires again at most this long after it resolved
    flaps: int = 3  # this many reopenings …
    flap_window: float = 3600.0  # … within this long: flapping


class IncidentTracker:
    """The open and mitigated incidents, and those recently resolved, in memory; each call
    returns what to write.

    The engine is the only writer: it calls `observe` for every event before planning, and
    the returned changes are committed in the same transaction as the event itself.
    """

    def __init__(
        self, grouping: Grouping, known: Iterable[Incident] = (),
        reopening: Reopening = Reopening(), in_event_order: bool = False,
    ) -> None:  # fmt: skip
        self._grouping = grouping
        self._reopening = reopening
        incidents = list(known)
        self._active = {i.key: i for i in incidents if i.status not in _DONE}
        self._by_id = {incident.id: incident for incident in self._active.values()}
        # An alert stays with the incident it joined, even if its grouping key changes (a
        # resolve that lacks the trigger's fields, a severity that drops on recovery).
        self._by_fp = {fp: i for i in self._active.values() for fp in i.alerts}
        # A replay (`Engine.in_event_order`) observes later events before earlier runs finish,
        # where live each run had finished first. Observations are counted, so a run's
        # mitigation is followed by the reopening a later firing alert caused live.
        self.in_event_order = in_event_order
        self._observed = 0
        self._fired: dict[str, int] = {}  # incident id: observation of its last (re)firing
        self._run_seen: dict[str, int] = {}  # run id: observation of its event
        # Resolved incidents by member alert, in the order they resolved, for a flap to find.
        self._resolved: dict[str, Incident] = {}
        for incident in sorted(incidents, key=lambda i: i.resolved_at or 0.0):
            if incident.status is IncidentStatus.RESOLVED:
                self._remember(incident)
        # Reopening times per incident within the flap window (not stored: after a restart
        # the rate starts afresh; the count and the flag are stored).
        self._flap_times: dict[str, deque[float]] = {}

    def __len__(self) -> int:
        return len(self._active)

    def observe(self, event: Event, changes: IncidentChanges) -> None:
        """Attach `event` to its incident (opening one on a first firing event)."""
        if event.source == OWN_SOURCE and event.kind in ("escalation", "approval_requested"):
            # About a rule's limit or a run's wait, not the world: no resolution to wait for
            # (grouped, they opened an incident that never resolved, of unrelated hosts).
            return
        firing = event.status is Status.FIRING
        self._observed += 1
        incident = self._by_fp.get(event.fingerprint)
        if incident is None:
            key = self._grouping.key(event)
            incident = self._active.get(key)
            if incident is None:
                if not firing:
                    return  # a resolution no open incident holds: nothing to follow
                incident = self._reopen(event, changes) or self._open(key, event, changes)
            self._by_fp[event.fingerprint] = incident
        status, at = event.status.value, event.time
        before = incident.alerts.get(event.fingerprint)
        event.incident_id = incident.id
        incident.events += 1
        if at > incident.updated_at:
            incident.updated_at = at
        incident.alerts[event.fingerprint] = status
        changes.incidents[incident.id] = incident
        delta = changes.alerts.get((incident.id, event.fingerprint))
        if delta is None:
            changes.alerts[(incident.id, event.fingerprint)] = AlertDelta(status, at, at, 1)
        else:
            delta.status, delta.events = status, delta.events + 1
            delta.first_seen, delta.last_seen = min(delta.first_seen, at), max(delta.last_seen, at)
        if firing:
            if _SEVERITY_RANK.get(event.severity, 0) > _SEVERITY_RANK.get(incident.severity, 0):
                incident.severity = event.severity
            # A repeat of a firing alert adds a count, not a line; so does each flip of a
            # flapping incident, which one line said (the on-call reads the count).
            if before != "firing":
                if not incident.flapping:
                    what = "firing" if before is None else "firing again"
                    _received(changes, incident, what, event)
                if self.in_event_order:
                    self._fired[incident.id] = self._observed
                if incident.status is IncidentStatus.MITIGATED:
                    self._refired(changes, incident, event.time)
        elif before == "firing":
            if not incident.flapping:
                _received(changes, incident, "resolved", event)
            if all(status == "resolved" for status in incident.alerts.values()):
                incident.resolved_at = event.time
                self._status(changes, incident,
                             next_status(incident.status, Action.ALERTS_RESOLVED), event.time,
                             "resolved: every alert of the incident resolved")  # fmt: skip
                self._forget(incident)
                self._remember(incident)

    def _refired(self, changes: IncidentChanges, incident: Incident, at: float) -> None:
        """An alert of a mitigated incident fired: open again, or acknowledged if it was."""
        acked = incident.acknowledged_at is not None
        status = next_status(incident.status, Action.FIRED, acknowledged=acked)
        still = " (still acknowledged)" if status is IncidentStatus.ACKNOWLEDGED else ""
        self._status(changes, incident, status, at,
                     f"reopened: an alert fired after the mitigation{still}")  # fmt: skip

    def _forget(self, incident: Incident) -> None:
        """No longer follow `incident` as active nor as recently resolved."""
        if self._active.get(incident.key) is incident:
            del self._active[incident.key]
        self._by_id.pop(incident.id, None)
        self._fired.pop(incident.id, None)
        for fp in incident.alerts:
            if self._by_fp.get(fp) is incident:
                del self._by_fp[fp]
            if self._resolved.get(fp) is incident:
                del self._resolved[fp]

    def opened_at(self, incident_id: str) -> float | None:
        """When an active incident's first event came; None for one not active here."""
        incident = self._by_id.get(incident_id)
        return None if incident is None else incident.opened_at

    def acknowledged(self, incident_id: str) -> bool:
        """Whether someone acknowledged this incident since it (re)opened."""
        incident = self._by_id.get(incident_id)
        return incident is not None and incident.acknowledged_at is not None

    def adopt(self, stored: Incident) -> None:
        """Catch up with what people did to an incident (as the store has it): its state, and
        whether the engine still follows it (not once closed: a new alert opens a new one)."""
        known = self._by_id.get(stored.id) or next(
            (i for i in self._resolved.values() if i.id == stored.id), None
        )
        if known is not None and known.human_actions >= stored.human_actions:
            return
        incident = known or stored
        if known is not None:  # the engine's alerts and counts are newer than the store's
            for name in _LIFECYCLE_FIELDS:
                setattr(known, name, getattr(stored, name))
        self._forget(incident)
        if incident.status is IncidentStatus.RESOLVED:
            self._remember(incident)
        elif incident.status is not IncidentStatus.CLOSED and incident.key not in self._active:
            self._active[incident.key] = self._by_id[incident.id] = incident
            for fp in incident.alerts:
                self._by_fp[fp] = incident

    def _remember(self, incident: Incident) -> None:
        """Keep a resolved incident for its alerts to reopen, and forget those resolved
        longer ago than the reopen window (in the order they resolved)."""
        if self._reopening.within <= 0 or incident.resolved_at is None:
            return
        for fp in incident.alerts:
            self._resolved.pop(fp, None)  # to the end: the order is the order of resolving
            self._resolved[fp] = incident
        horizon = incident.resolved_at - self._reopening.within
        while self._resolved:
            fp, oldest = next(iter(self._resolved.items()))
            if oldest.resolved_at is not None and oldest.resolved_at >= horizon:
                break
            del self._resolved[fp]
            self._flap_times.pop(oldest.id, None)

    def _reopen(self, event: Event, changes: IncidentChanges) -> Incident | None:
        """The resolved incident this firing alert belonged to, open again, if it resolved
        at most `within` before (in event time) and its key is free; a flap is counted."""
        incident = self._resolved.get(event.fingerprint)
        if incident is None or incident.resolved_at is None or incident.key in self._active:
            return None
        gap = event.time - incident.resolved_at
        if gap > self._reopening.within:
            return None
        for fp in incident.alerts:
            self._resolved.pop(fp, None)
            self._by_fp[fp] = incident
        self._active[incident.key] = incident
        self._by_id[incident.id] = incident
        incident.resolved_at = incident.acknowledged_at = None  # a new round, to acknowledge
        incident.acknowledged_by = ""
        incident.flaps += 1
        times = self._flap_times.setdefault(incident.id, deque())
        times.append(event.time)
        while times and times[0] < event.time - self._reopening.flap_window:
            times.popleft()
        # The line is written unless the incident is flapping already (see _status).
        self._status(changes, incident, next_status(incident.status, Action.FIRED), event.time,
                     f"reopened: {_describe(event)} fired again {max(gap, 0.0):g} s after it "
                     f"resolved (flap {incident.flaps})")  # fmt: skip
        if not incident.flapping and len(times) >= self._reopening.flaps:
            incident.flapping = True
            self._line(changes, incident, event.time, "status_changed",
                       f"flapping: {len(times)} reopenings within "
                       f"{self._reopening.flap_window:g} s; from now on its alerts' firing and "
                       f"resolving are counted (flaps, events), not listed")  # fmt: skip
        return incident

    def planned(self, event: Event, runs: Iterable[Run], changes: IncidentChanges) -> None:
        """The runs rules planned (or skipped) for `event`, which has joined an incident."""
        for run in runs:
            run.incident_id = event.incident_id
            if self.in_event_order and run.state is RunState.PLANNED:
                self._run_seen[run.id] = self._observed
            what = "skipped" if run.state is RunState.SKIPPED else "planned"
            dry = " (dry-run)" if run.dry_run else ""
            message = f"rule {run.rule} matched; run {what}{dry}: {', '.join(run.actions)}"
            changes.timeline.append(
                TimelineEntry(event.incident_id, run.created_at, "rule_matched", message, run.id)
            )

    def started(self, run: Run) -> IncidentChanges:
        changes = IncidentChanges()
        if run.incident_id:
            changes.timeline.append(TimelineEntry(
                run.incident_id, run.started_at or run.created_at, "run_started",
                f"run of {run.rule} started", run.id,
            ))  # fmt: skip
        return changes

    def finished(self, run: Run, now: float) -> IncidentChanges:
        """A finished run: its notifications, its result, an investigation's evidence, and
        mitigation when a remediation succeeded."""
        changes = IncidentChanges()
        seen = self._run_seen.pop(run.id, None)
        if not run.incident_id:
            return changes
        at = run.finished_at or now
        for step in run.steps:
            if step.action in NOTIFYING_ACTIONS and step.state is RunState.SUCCEEDED:
                changes.timeline.append(TimelineEntry(
                    run.incident_id, at, "notification_sent", f"{step.action}: {step.message}",
                    run.id,
                ))  # fmt: skip
        changes.timeline.append(TimelineEntry(
            run.incident_id, at, "run_finished", f"run of {run.rule} {run.state}: {run.message}",
            run.id,
        ))  # fmt: skip
        if (evidence := evidence_line(run, at)) is not None:
            changes.timeline.append(evidence)
        incident = self._by_id.get(run.incident_id)
        if (
            incident is not None
            and run.state is RunState.SUCCEEDED
            and not run.dry_run
            and run.queue != Queue.INVESTIGATION  # diagnostics collected change nothing
            # As the state machine says: mitigated already, nothing new (a resolved or closed
            # incident is not followed here; the store refuses a write made before it was).
            and (status := next_status(incident.status, Action.RUN_SUCCEEDED)) != incident.status
        ):
            incident.mitigated_at = at
            self._status(changes, incident, status, at, f"mitigated: run of {run.rule} succeeded")
            if seen is not None and self._fired.get(incident.id, 0) > seen:
                self._refired(changes, incident, at)
        return changes

    def _open(self, key: str, event: Event, changes: IncidentChanges) -> Incident:
        name, service = _name(event), _service(event)
        title = f"{name} on {service}" if name and service else name or service or key
        incident = Incident(key=key, title=title, opened_at=event.time, source=event.source,
                            severity=event.severity, updated_at=event.time)  # fmt: skip
        self._active[key] = incident
        self._by_id[incident.id] = incident
        self._line(changes, incident, event.time, "status_changed",
                   f"opened by {event.source}: {title}", event.id)  # fmt: skip
        return incident

    def _status(
        self, changes: IncidentChanges, incident: Incident, status: IncidentStatus, at: float,
        message: str,
    ) -> None:  # fmt: skip
        incident.status = status
        incident.updated_at = max(incident.updated_at, at)
        changes.incidents[incident.id] = incident
        if not incident.flapping:  # a flapping incident's every flip is not a line
            self._line(changes, incident, at, "status_changed", message)

    @staticmethod
    def _line(
        changes: IncidentChanges, incident: Incident, at: float, kind: str, message: str,
        ref: str = "",
    ) -> None:  # fmt: skip
        changes.timeline.append(TimelineEntry(incident.id, at, kind, message, ref))


def _received(changes: IncidentChanges, incident: Incident, what: str, event: Event) -> None:
    """Add `event` to this batch's line for its incident ("3 alerts firing: a; b; c"); the
    text is written once, by `IncidentChanges.lines`, when the batch is done."""
    found = changes.received.get((incident.id, what))
    if found is None:
        entry = TimelineEntry(incident.id, event.time, "event_received", what, event.id)
        changes.timeline.append(entry)
        found = changes.received[(incident.id, what)] = (entry, [])
    found[1].append(_describe(event))


def _describe(event: Event) -> str:
    parts = [event.source] + ([_name(event)] if _name(event) != event.source else [])
    if service := _service(event):
        parts.append(service)
    if event.host:
        parts.append(f"host {event.host}")
    return " ".join(p for p in parts if p)
