"""The incident state machine: one table (state, action) → state, for the engine and people."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, TypeVar

from opsmedic.errors import IncidentRefused
from opsmedic.model import Incident, IncidentStatus, TimelineEntry
from opsmedic.utf8 import hiding

# Bounds of what people write: a note is a paragraph, a name is a name (API and CLI refuse
# longer ones, naming the field, before anything is stored).
NOTE_MAX = 4000
WHO_MAX = 200
_WHEN = "%Y-%m-%d %H:%M:%S"


class Action(StrEnum):
    """What happens to an incident: the engine's three, then the six people take."""

    FIRED = "fired"  # one of its alerts fires (again)
    RUN_SUCCEEDED = "run_succeeded"  # a run for it succeeded (not a dry run)
    ALERTS_RESOLVED = "alerts_resolved"  # its last firing alert resolved
    ACK = "ack"
    NOTE = "note"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    ASSIGN = "assign"


AUTOMATIC = (Action.FIRED, Action.RUN_SUCCEEDED, Action.ALERTS_RESOLVED)
HUMAN = (Action.ACK, Action.NOTE, Action.RESOLVE, Action.CLOSE, Action.REOPEN, Action.ASSIGN)

_O, _A, _M = IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED
_R, _C = IncidentStatus.RESOLVED, IncidentStatus.CLOSED
# Every allowed transition; a pair missing here is refused. docs/incidents.md shows this
# table and a test compares the two. Closed takes only notes: a firing alert of a closed
# incident opens a new one (the engine forgets closed incidents), and no one reopens it.
TRANSITIONS: dict[IncidentStatus, dict[Action, IncidentStatus]] = {
    _O: {Action.FIRED: _O, Action.RUN_SUCCEEDED: _M, Action.ALERTS_RESOLVED: _R,
         Action.ACK: _A, Action.NOTE: _O, Action.RESOLVE: _R, Action.CLOSE: _C,
         Action.ASSIGN: _O},
    _A: {Action.FIRED: _A, Action.RUN_SUCCEEDED: _M, Action.ALERTS_RESOLVED: _R,
         Action.NOTE: _A, Action.RESOLVE: _R, Action.CLOSE: _C, Action.ASSIGN: _A},
    _M: {Action.FIRED: _O, Action.RUN_SUCCEEDED: _M, Action.ALERTS_RESOLVED: _R,
         Action.ACK: _M, Action.NOTE: _M, Action.RESOLVE: _R, Action.CLOSE: _C,
         Action.REOPEN: _O, Action.ASSIGN: _M},
    _R: {Action.FIRED: _O, Action.RUN_SUCCEEDED: _R, Action.ALERTS_RESOLVED: _R,
         Action.NOTE: _R, Action.CLOSE: _C, Action.REOPEN: _O, Action.ASSIGN: _R},
    _C: {Action.NOTE: _C},
}  # fmt: skip

# The timeline kind of each person's action: TTA and the reports read these.
KINDS = {Action.ACK: "acknowledged", Action.NOTE: "note", Action.RESOLVE: "resolved",
         Action.CLOSE: "closed", Action.REOPEN: "reopened", Action.ASSIGN: "assigned"}  # fmt: skip
# The engine's status lines start so (engine/incidents.py); TTM and TTR read them.
MITIGATED_LINE, RESOLVED_LINE = "mitigated:", "resolved:"


def next_status(
    status: IncidentStatus, action: Action, *, acknowledged: bool = False
) -> IncidentStatus:
    """The state after `action`, or IncidentRefused naming the current state.

    One rule beside the table: a mitigated incident someone acknowledged comes back
    acknowledged, not open, when an alert fires again (the on-call has it already).
    """
    target = TRANSITIONS[status].get(action)
    if target is None:
        raise IncidentRefused(f"the incident is {status}: cannot {action} it ({_allowed(status)})")
    if target is _O and action is Action.FIRED and status is _M and acknowledged:
        return _A
    return target


def offered(incident: Incident, actions: Iterable[Action]) -> list[Action]:
    """Those of `actions` (people's) that `act` takes on `incident` as it is: the dashboard
    shows a button for each, and `act` still decides when one is pressed."""
    taken = incident.acknowledged_at is not None and incident.status in (_A, _M)
    return [a for a in actions
            if a in TRANSITIONS[incident.status] and not (a is Action.ACK and taken)]  # fmt: skip


def _allowed(status: IncidentStatus) -> str:
    allowed = [str(a) for a in HUMAN if a in TRANSITIONS[status]]
    return "allowed: " + ", ".join(allowed)


def clean(value: str, limit: int, *, multiline: bool = False) -> str:
    """`value` without its outer blanks, or ValueError: empty, over `limit` characters, or
    holding a character that would not show as written (utf8.hiding: a control, a bidi
    override; a line break or tab only where `multiline`)."""
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if len(value) > limit:
        raise ValueError(f"at most {limit} characters (got {len(value)})")
    problem = hiding(value, breaks=multiline)  # NUL (refused by PostgreSQL), bidi overrides…
    if problem is not None:
        raise ValueError(problem)
    return value


def act(incident: Incident, action: Action, who: str, at: float, text: str = "") -> TimelineEntry:
    """Apply a person's action to `incident` (in place) and return its timeline line.

    `text` is the note, the assignee, or an optional reason for the other actions.
    """
    if action not in HUMAN:
        raise ValueError(f"{action} is the engine's, not a person's")
    acked = incident.acknowledged_at
    if action is Action.ACK and acked is not None and incident.status in (_A, _M):
        # Taken once a round (a reopening clears it): of people acknowledging at once, one
        # wins and the others hear who has it, as the locked row shows them (store).
        since = datetime.fromtimestamp(acked, UTC).strftime(_WHEN)
        raise IncidentRefused(f"the incident is {incident.status}: already acknowledged by "
                              f"{incident.acknowledged_by} at {since} UTC")  # fmt: skip
    status = next_status(incident.status, action)
    if action is Action.ACK:
        incident.acknowledged_at, incident.acknowledged_by = at, who
        message = f"acknowledged by {who}"
    elif action is Action.NOTE:
        message = f"note by {who}: {text}"
    elif action is Action.ASSIGN:
        incident.assignee = text
        message = f"assigned to {text} by {who}"
    else:
        if action is Action.RESOLVE:
            incident.resolved_at = at
        elif action is Action.CLOSE:
            incident.closed_at = at
        else:  # reopen: a new round, to be acknowledged again
            incident.resolved_at = incident.acknowledged_at = None
            incident.acknowledged_by = ""
        message = f"{KINDS[action]} by hand by {who}"
    if text and action not in (Action.NOTE, Action.ASSIGN):
        message += f": {text}"
    incident.status = status
    incident.human_actions += 1
    incident.updated_at = max(incident.updated_at, at)
    incident.human_at = at
    return TimelineEntry(incident.id, at, KINDS[action], message)


@dataclass(frozen=True, slots=True)
class Durations:
    """Seconds from the incident's opening to its first acknowledgement, mitigation and
    resolution (None until then), read from the timeline."""

    tta: float | None = None
    ttm: float | None = None
    ttr: float | None = None


class _Line(Protocol):
    @property
    def time(self) -> float: ...
    @property
    def kind(self) -> str: ...
    @property
    def message(self) -> str: ...


_L = TypeVar("_L", bound=_Line)


def milestones(timeline: Iterable[_L]) -> tuple[_L | None, _L | None, _L | None]:
    """The first acknowledgement, mitigation and resolution lines of a timeline (in any
    order): what TTA, TTM and TTR count from, and what the post-mortem drafts cite."""
    acked = mitigated = resolved = None
    for line in sorted(timeline, key=lambda t: t.time):
        if acked is None and line.kind == KINDS[Action.ACK]:
            acked = line
        automatic = line.kind == "status_changed"
        if mitigated is None and automatic and line.message.startswith(MITIGATED_LINE):
            mitigated = line
        if resolved is None and (
            (automatic and line.message.startswith(RESOLVED_LINE))
            or line.kind in (KINDS[Action.RESOLVE], KINDS[Action.CLOSE])
        ):
            resolved = line
    return acked, mitigated, resolved


def durations(opened_at: float, timeline: list[TimelineEntry]) -> Durations:
    """TTA, TTM and TTR of an incident from its timeline (in any order)."""
    return Durations(*(None if line is None else max(line.time - opened_at, 0.0)
                       for line in milestones(timeline)))  # fmt: skip
