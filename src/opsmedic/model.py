"""The vocabulary every part shares: Event, Outcome, Run, Incident, Deployment, and the records
the engine, the sources and the store hand each other (plain data; the little behaviour is
formatting)."""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

JSON = dict[str, Any]


# Per-process random part plus a counter: unique without a syscall per id (ids are minted
# for every event, so os.urandom each time was a measurable share of ingest).
_PROCESS_TAG = secrets.token_hex(3)
_SEQUENCE = itertools.count()


def new_id() -> str:
    """A 24-hex-char id ordered by creation time (ms): time, process tag, sequence."""
    return f"{time.time_ns() // 1_000_000:012x}{_PROCESS_TAG}{next(_SEQUENCE) & 0xFFFFFF:06x}"


# The source of the events opsmedic makes itself (deployments, flags, escalations): rules
# trust them, so the event API refuses it from senders (api/ingest.py).
OWN_SOURCE = "opsmedic"


class Status(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class RunState(StrEnum):
    PLANNED = "planned"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"
    # Paused before a step that needs a human's yes (engine/approvals.py): durable, not
    # running, so a restart leaves it waiting and it holds no concurrency slot.
    WAITING_APPROVAL = "waiting_approval"

    @property
    def finished(self) -> bool:
        return self not in (RunState.PLANNED, RunState.RUNNING, RunState.WAITING_APPROVAL)


class Queue(StrEnum):
    """A rule's queue: each has its own pool of execution slots (engine/pools.py), and an
    investigation's outputs become evidence on its incident instead of mitigating it."""

    REMEDIATION = "remediation"
    INVESTIGATION = "investigation"


# The longest text of an Event's identity fields, in characters, as the generic event API
# takes them (sources/events.py). Two are keys of an index, for every source (webhooks,
# pollers, probes too): the id and the fingerprint. PostgreSQL refuses an index entry past
# about 2,700 bytes (a third of a page), and 255 characters are at most 1,020 bytes of UTF-8;
# a longer one is refused, naming the field, before it is queued (store/codec.py). The others
# reach an index only through an incident's grouping key, which is hashed past a length
# (engine/incidents.py), so a real alert with a long title is never refused for it.
FIELD_MAX = {"source": 200, "kind": 200, "resource": 1000, "host": 255, "severity": 50,
             "fingerprint": 255, "id": 64}  # fmt: skip
INDEXED_FIELDS = ("id", "fingerprint")


def fingerprint_of(source: str, kind: str, resource: str, host: str, labels: dict[str, str]) -> str:
    """Identity of the observed thing (not of its value): same inputs, same 16-hex fingerprint."""
    h = hashlib.blake2b(digest_size=8)
    # surrogatepass: JSON may carry lone surrogates; they must not crash identity.
    for part in (source, kind, resource, host):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\xff")
    for k in sorted(labels):
        h.update(f"{k}\xfe{labels[k]}\xff".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


@dataclass(slots=True)
class Event:
    """Something observed by a probe or received from a monitoring tool."""

    source: str
    kind: str = ""
    resource: str = ""
    host: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    value: float | str | None = None
    severity: str = "info"
    status: Status = Status.FIRING
    fingerprint: str = ""
    time: float = 0.0
    payload: JSON = field(default_factory=dict)
    id: str = ""
    # Set by the engine when the event joins an incident (firing events that group).
    incident_id: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = fingerprint_of(
                self.source, self.kind, self.resource, self.host, self.labels
            )
        if not self.id:
            self.id = new_id()
        if not self.time:
            self.time = time.time()

    @property
    def target(self) -> str:
        """What a remediation acts on: host:resource, else either one, else the fingerprint."""
        if self.host and self.resource:
            return f"{self.host}:{self.resource}"
        return self.resource or self.host or self.fingerprint

    def as_dict(self) -> JSON:
        return {
            "id": self.id,
            "source": self.source,
            "kind": self.kind,
            "resource": self.resource,
            "host": self.host,
            "labels": dict(self.labels),
            "value": self.value,
            "severity": self.severity,
            "status": str(self.status),
            "fingerprint": self.fingerprint,
            "time": self.time,
            "payload": self.payload,
            "incident_id": self.incident_id,
        }


@dataclass(slots=True)
class Outcome:
    """What an action reports back; `output` is an excerpt (stdout/stderr, response body)."""

    ok: bool
    message: str = ""
    details: JSON = field(default_factory=dict)
    output: str = ""
    duration_ms: float = 0.0
    # Events the action announces (a DNS failover done): the engine submits them like any
    # other, so rules, incidents and reports see the change itself, not only the run.
    events: list[Event] = field(default_factory=list)


@dataclass(slots=True)
class StepRecord:
    """One action step of a run, as recorded: rendered params, state, outcome, timings."""

    action: str
    params: JSON
    state: RunState = RunState.PLANNED
    message: str = ""
    output: str = ""
    details: JSON = field(default_factory=dict)
    attempts: int = 0
    started_at: float | None = None
    duration_ms: float | None = None
    on_failure: bool = False


@dataclass(slots=True)
class Run:
    """One planned execution of one rule's actions for one event."""

    rule: str
    event_id: str
    target: str
    fingerprint: str
    actions: list[str]
    queue: str = "remediation"
    dry_run: bool = False
    state: RunState = RunState.PLANNED
    message: str = ""
    steps: list[StepRecord] = field(default_factory=list)
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    id: str = field(default_factory=new_id)
    incident_id: str = ""
    rerun_of: str = ""  # the interrupted run this one re-runs after a crash
    # Who ran it by hand ("cli alice", "api TOKEN"); empty: the engine, for an event.
    started_by: str = ""
    forced: bool = False  # a manual run of a disabled rule, started with --force

    @property
    def trigger(self) -> str:
        """`manual` for a run started by hand (engine/manual.py), else `event`."""
        return "manual" if self.started_by else "event"


@dataclass(slots=True)
class Approval:
    """A run's wait for a human's yes before one step, and the decision that ended it: bound
    to the run and the step, decided once (`decision` empty while it waits)."""

    run_id: str
    step: int  # the index of the step in the rule's `do:` (0-based)
    action: str
    requested_at: float
    deadline: float
    on_timeout: str  # skip | run | escalate
    incident_id: str = ""
    decision: str = ""  # approved | rejected | timed_out
    decided_by: str = ""
    decided_at: float | None = None
    comment: str = ""
    # What the run would do once resumed, when it parked: a digest of the rule's steps, each
    # with its parameters (engine/approvals.py); "" for a wait recorded before it was kept.
    digest: str = ""


class DeploymentState(StrEnum):
    """started → verifying → promoted | rolled_back | failed."""

    STARTED = "started"
    VERIFYING = "verifying"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self not in (DeploymentState.STARTED, DeploymentState.VERIFYING)


@dataclass(slots=True)
class Deployment:
    """One version of one service put into one environment, and what became of it.

    `owner` (host:pid) and `heartbeat_at` say who drives it, so that a deployment whose
    process died is found at the next start; `last_known_good` marks a promoted version that
    a rollback may return to; `checks` holds the switch runs and each check's measurements."""

    service: str
    env: str
    version: str
    previous_version: str = ""
    strategy: str = "switch"
    requested_by: str = ""
    forced: bool = False
    state: DeploymentState = DeploymentState.STARTED
    reason: str = ""
    checks: JSON = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    last_known_good: bool = False
    rolled_back_to: str = ""
    owner: str = ""
    heartbeat_at: float | None = None
    id: str = field(default_factory=new_id)


class IncidentStatus(StrEnum):
    """The states of lifecycle.py's machine; closed is final (docs/incidents.md)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    CLOSED = "closed"


@dataclass(slots=True)
class Incident:
    """Events sharing a grouping key, from the first firing one until all of them resolve.

    `alerts` maps each member fingerprint to its last status: the incident resolves when
    every one of them has.
    """

    key: str
    title: str
    opened_at: float
    source: str = ""
    severity: str = "info"
    status: IncidentStatus = IncidentStatus.OPEN
    updated_at: float = 0.0
    mitigated_at: float | None = None
    resolved_at: float | None = None
    events: int = 0
    alerts: dict[str, str] = field(default_factory=dict)
    # Times it was reopened by an alert firing again soon after it resolved; `flapping` once
    # that happened often enough (config incidents.flapping).
    flaps: int = 0
    flapping: bool = False
    id: str = field(default_factory=new_id)
    # What people did (lifecycle.py): who acknowledged it and when, to whom it is assigned,
    # when it was closed; `human_actions` counts their actions, so that the engine's copy of
    # an incident never overwrites a state someone set after the engine last read it.
    acknowledged_at: float | None = None
    acknowledged_by: str = ""
    assignee: str = ""
    closed_at: float | None = None
    human_actions: int = 0
    human_at: float | None = None


@dataclass(slots=True)
class TimelineEntry:
    """One line of an incident's story: what happened, when, and the event or run it names."""

    incident_id: str
    time: float
    kind: str  # event_received, rule_matched, run_started, run_finished, notification_sent,
    #            status_changed; people's: acknowledged, note, resolved, closed, reopened, assigned
    message: str
    ref: str = ""
    # An investigation run's step outputs, bounded (engine/evidence.py); None on other lines.
    evidence: JSON | None = None


@dataclass(frozen=True, slots=True)
class IncidentAlert:
    """One member alert of an incident: its last status, when it was first and last seen, and
    how many of its events the incident counted."""

    fingerprint: str
    status: str
    first_seen: float
    last_seen: float
    events: int


@dataclass(slots=True)
class Observation:
    """One probe reading: ok or not, the value, and what was observed."""

    ok: bool
    value: float | str | None
    message: str = ""
    resource: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    # The event's severity; None: "info" when ok, "critical" when not. A probe with grades
    # (tls_cert: warning at 30 days, critical at 14) says which.
    severity: str | None = None


# What a source hands its events to (the engine's submit, wrapped); probes and pollers use it.
Emit = Callable[[list[Event]], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as stored: never the secret, only its hash."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: float
    revoked_at: float | None


# Alerts named on one timeline line of an incident; the rest are counted.
SHOWN_ALERTS = 5


@dataclass(slots=True)
class AlertDelta:
    """What one batch changed for one member alert; `events` is added to the stored count."""

    status: str
    first_seen: float
    last_seen: float
    events: int = 0


@dataclass(slots=True)
class IncidentChanges:
    """Incidents to upsert, member alerts to merge, timeline lines to append: one batch."""

    incidents: dict[str, Incident] = field(default_factory=dict)
    alerts: dict[tuple[str, str], AlertDelta] = field(default_factory=dict)
    timeline: list[TimelineEntry] = field(default_factory=list)
    # Alerts of one incident that fire (or resolve) in one batch share a timeline line, as an
    # Alertmanager group does one notification: (incident, what) → the line and its alerts.
    received: dict[tuple[str, str], tuple[TimelineEntry, list[str]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.incidents or self.alerts or self.timeline)

    def lines(self) -> list[TimelineEntry]:
        """The timeline, with the shared lines of received alerts written out."""
        for entry, names in self.received.values():
            shown = "; ".join(names[:SHOWN_ALERTS])
            more = f"; and {len(names) - SHOWN_ALERTS} more" if len(names) > SHOWN_ALERTS else ""
            noun = "alert" if len(names) == 1 else f"{len(names)} alerts"
            entry.message = f"{noun} {entry.message}: {shown}{more}"
        self.received.clear()
        return self.timeline


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """The error budget one SLO's samples spent over a span of minutes (an incident's), and
    its period's budget: what slo/ measures for the post-mortems reports/ writes."""

    slo: str
    service: str
    objective: float  # percent
    window: str  # as configured: 30d, month…
    unit: str  # "requests" (occurrences) or "minutes" (of bad time slices)
    first_minute: int  # the span read (epoch minutes, both ends included)
    last_minute: int
    bad: int  # in the span, in `unit`
    total: int  # in the span: requests, or minutes of slices with samples
    window_first: int  # the period read (the SLO's window ending at the span's end)
    window_last: int
    # What the period's budget allows, in `unit`: None when the period has no samples.
    allowed: float | None
