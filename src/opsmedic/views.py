"""The public JSON of events, runs, incidents, tokens, rules and deployments: one set of models
for the API's read, operate and admin replies (and /openapi.json) and the CLI's `--json`. The
ingest reply, built as plain data on the hot path, is documented by its own model in
api/ingest.py.

docs/api.md documents these shapes; later changes may add fields, never rename or drop one.
Field order is the order of the keys served.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, WithJsonSchema

from opsmedic.lifecycle import durations
from opsmedic.model import (
    Approval,
    DeploymentState,
    Event,
    Incident,
    IncidentAlert,
    IncidentStatus,
    Run,
    RunState,
    Status,
    StepRecord,
    TimelineEntry,
    TokenRecord,
)
from opsmedic.utf8 import escape_surrogates, text, valid_utf8

# A JSON number served as it was read: a `float` field would turn a stored 5 into 5.0.
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
_FAILED = (RunState.FAILED, RunState.TIMED_OUT)


class View(BaseModel):
    """A public shape, built from the domain object of the same name (its attributes)."""

    model_config = ConfigDict(from_attributes=True)


class EventView(View):
    id: str
    source: str
    kind: str
    resource: str
    host: str
    labels: dict[str, str]
    value: Any
    severity: str
    status: Status
    fingerprint: str
    time: Number
    payload: dict[str, Any]
    # "" means "no incident" inside the engine; the public shape says so with null, as runs do.
    incident_id: str | None

    @classmethod
    def of(cls, event: Event) -> EventView:
        # Labels and payload are kept exactly as sent (a lone surrogate included, JSON's
        # escapes can spell one); what is served is valid UTF-8 that every strict decoder reads.
        data = {**event.as_dict(), "incident_id": event.incident_id or None}
        # Deeper than any JSON encoder writes: handed on as is, the caller's encoder says so.
        with contextlib.suppress(RecursionError):
            data = valid_utf8(data)
        return cls.model_validate(data)


class StepView(View):
    action: str
    params: dict[str, Any]
    state: RunState
    message: str
    output: str
    details: dict[str, Any]
    attempts: int
    started_at: Number | None
    duration_ms: Number | None
    on_failure: bool


class RunView(View):
    id: str
    rule: str
    event_id: str
    target: str
    fingerprint: str
    actions: list[str]
    queue: str
    dry_run: bool
    state: RunState
    message: str
    steps: list[StepView]
    created_at: Number
    started_at: Number | None
    finished_at: Number | None
    incident_id: str | None
    rerun_of: str | None
    trigger: str  # "event" (the engine) or "manual" (run by hand)
    started_by: str | None  # who ran it by hand: "cli alice", "api TOKEN"
    forced: bool  # a disabled rule run by hand with force
    # The index in `steps` of the step that decided the outcome (see deciding_step).
    deciding_step: int | None

    @classmethod
    def of(cls, run: Run) -> RunView:
        # The text a run holds is the world's (targets, file names, output): served as the
        # store writes it, NUL as U+FFFD and a lone surrogate of the message as its byte.
        return cls(
            id=text(run.id),
            rule=text(run.rule),
            event_id=text(run.event_id),
            target=text(run.target),
            fingerprint=text(run.fingerprint),
            actions=run.actions,
            queue=text(run.queue),
            dry_run=run.dry_run,
            state=run.state,
            message=text(escape_surrogates(run.message)),
            steps=[StepView.model_validate(step) for step in run.steps],
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            incident_id=run.incident_id or None,
            rerun_of=run.rerun_of or None,
            trigger=run.trigger,
            started_by=text(run.started_by) or None,
            forced=run.forced,
            deciding_step=deciding_step(run),
        )


class ApprovalView(View):
    """A run's wait for approval before one step (`step` counts from 1) and its decision
    (`decision` null while it waits)."""

    run_id: str
    step: int
    action: str
    requested_at: Number
    deadline: Number
    on_timeout: str
    decision: str | None
    decided_by: str | None
    decided_at: Number | None
    comment: str

    @classmethod
    def of(cls, wait: Approval) -> ApprovalView:
        return cls(
            run_id=wait.run_id, step=wait.step + 1, action=text(wait.action),
            requested_at=wait.requested_at, deadline=wait.deadline, on_timeout=wait.on_timeout,
            decision=wait.decision or None, decided_by=text(wait.decided_by) or None,
            decided_at=wait.decided_at, comment=text(wait.comment),
        )  # fmt: skip


class RunDetailView(RunView):
    """One run (`GET /api/v1/runs/ID`, `runs show --json`): with its waits for approval."""

    approvals: list[ApprovalView]

    @classmethod
    def of_waits(cls, run: Run, waits: Sequence[Approval]) -> RunDetailView:
        return cls(**dict(RunView.of(run)), approvals=[ApprovalView.of(w) for w in waits])


def deciding_step(run: Run) -> int | None:
    """The index in `run.steps` of the step that decided the outcome: the first failed main
    step, else the last main step (on_failure steps only react, they never decide)."""
    main = [i for i, step in enumerate(run.steps) if not step.on_failure]
    failed = next((i for i in main if run.steps[i].state in _FAILED), None)
    if failed is not None:
        return failed
    return main[-1] if main else None


class IncidentView(View):
    """An incident in a listing: its member alerts are counted in `events`, not listed."""

    key: str
    title: str
    opened_at: Number
    source: str
    severity: str
    status: IncidentStatus
    updated_at: Number
    mitigated_at: Number | None
    resolved_at: Number | None
    events: int
    flaps: int
    flapping: bool
    id: str
    acknowledged_at: Number | None
    acknowledged_by: str
    assignee: str
    closed_at: Number | None


class AlertView(View):
    fingerprint: str
    status: str
    first_seen: Number
    last_seen: Number
    events: int


class EvidenceStepView(View):
    action: str
    state: RunState
    on_failure: bool
    message: str
    output: str  # bounded; a cut one ends with a marker that says so
    cut: int  # characters of the step's output left out here (0: whole)


class EvidenceView(View):
    """What an investigation run collected, on its incident (engine/evidence.py)."""

    run_id: str
    rule: str
    state: RunState
    steps: list[EvidenceStepView]


class TimelineView(View):
    time: Number
    kind: str
    message: str
    ref: str
    evidence: EvidenceView | None = None  # on `evidence` lines only


class LogHuntEventView(BaseModel):
    """One distinct error of a hunt: its key, how often it came, where it was first and last
    seen (`{source, line, time}`); its lines are in the run's step."""

    key: str
    headline: str = ""  # the key in one line: its first (without a masked time) … its last
    count: int
    first: dict[str, Any]
    last: dict[str, Any]


class LogHuntView(BaseModel):
    """The latest `loghunt` step of an incident's runs, from its stored details
    (actions/loghunt_result.py): the top events, the summary, what was left out."""

    run_id: str
    rule: str
    finished_at: Number | None
    message: str
    summary: str
    since: str | None  # the window's start; null: the whole files
    distinct: int
    occurrences: int
    events: list[LogHuntEventView]  # the first of the report (most: 20), in order of first seen
    events_cut: int  # reported events not kept on the run
    notes: list[str]
    stopped: str | None  # why the hunt stopped early (its time budget), null if it did not

    @classmethod
    def of(cls, run: Run, step: StepRecord) -> LogHuntView:
        d = step.details
        stats = d.get("stats") or {}
        return cls(
            run_id=run.id, rule=run.rule, finished_at=run.finished_at, message=step.message,
            summary=str(d.get("summary", "")), since=(d.get("window") or {}).get("since"),
            distinct=int(d.get("distinct", 0)), occurrences=int(stats.get("occurrences", 0)),
            events=[LogHuntEventView.model_validate(e) for e in d.get("events", [])],
            events_cut=int(d.get("events_cut", 0)), notes=list(stats.get("notes", [])),
            stopped=stats.get("stopped"),
        )  # fmt: skip


class IncidentDetailView(IncidentView):
    """An incident with its member alerts (and their times) and its timeline in order."""

    alerts: list[AlertView]
    timeline: list[TimelineView]
    # Seconds from opening to the first acknowledgement, mitigation and resolution (or close),
    # read from the timeline (lifecycle.durations); null until then.
    tta: Number | None
    ttm: Number | None
    ttr: Number | None
    # The latest log hunt of the incident's runs (the `loghunt` action); null: none ran.
    loghunt: LogHuntView | None = None

    @classmethod
    def of(
        cls,
        incident: Incident,
        alerts: Sequence[IncidentAlert],
        timeline: Sequence[TimelineEntry],
        loghunt: tuple[Run, StepRecord] | None = None,
    ) -> IncidentDetailView:
        summary = dict(IncidentView.model_validate(incident))
        times = durations(incident.opened_at, list(timeline))
        found = {"alerts": alerts, "timeline": timeline, "tta": times.tta, "ttm": times.ttm,
                 "ttr": times.ttr, "loghunt": loghunt and LogHuntView.of(*loghunt)}  # fmt: skip
        return cls.model_validate({**summary, **found})


class IncidentActionView(View):
    """What a person's action made of an incident, and the timeline line that records it."""

    incident: IncidentView
    line: TimelineView

    @classmethod
    def of(cls, incident: Incident, line: TimelineEntry) -> IncidentActionView:
        return cls(incident=IncidentView.model_validate(incident),
                   line=TimelineView.model_validate(line))  # fmt: skip


class TokenView(View):
    id: str
    name: str
    scopes: list[str]
    created_at: Number
    revoked_at: Number | None


class NewTokenView(TokenView):
    """A token just created, with its secret: shown this once, never stored."""

    token: str

    @classmethod
    def of(cls, record: TokenRecord, secret: str) -> NewTokenView:
        return cls.model_validate({**dict(TokenView.model_validate(record)), "token": secret})


class RevokedView(View):
    revoked: str
    id: str


class RuleView(View):
    name: str
    description: str
    file: str
    line: int
    actions: list[str]
    queue: str
    dry_run: bool | None


class RulesView(View):
    """The rules in force and the problems of the last reload (empty when it was accepted)."""

    rules: list[RuleView]
    errors: list[str]


class ReloadedView(View):
    """How many rules are in force after a reload."""

    rules: int


class DeploymentView(View):
    """A deployment (not its owner and heartbeat, which only recovery reads)."""

    id: str
    service: str
    env: str
    version: str
    previous_version: str
    strategy: str
    requested_by: str
    forced: bool
    state: DeploymentState
    reason: str
    last_known_good: bool
    rolled_back_to: str
    created_at: Number
    updated_at: Number
    finished_at: Number | None
    # The switch runs (`switches`) and each check's verdict, counts and last samples (`verify`).
    checks: dict[str, Any]
