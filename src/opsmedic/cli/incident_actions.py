"""`opsmedic incidents ack|note|resolve|close|reopen|assign ID`: people act on an incident."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import typer

from opsmedic.cli import ConfigOpt, out
from opsmedic.cli.actor import actor, checked
from opsmedic.cli.history import open_store
from opsmedic.cli.incidents import incidents_app
from opsmedic.cli.output import JsonOpt, print_json
from opsmedic.lifecycle import NOTE_MAX, WHO_MAX, Action

IdArg = Annotated[str, typer.Argument(help="an incident id or a unique part (≥ 4)")]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="who acts (recorded with your login name; default: that name)"),
]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="why, on the timeline")]


def _act(ref: str, action: Action, who: str | None, text: str, as_json: bool,
         config: ConfigOpt) -> None:  # fmt: skip
    """Act through the store: the running engine catches up within a second while events
    flow (Engine._catch_up), and its writes of the incident are refused until it has."""
    from opsmedic.views import IncidentActionView

    name = actor(who)
    incident, line = open_store(config).incident_action(ref, action, name, time.time(), text)
    if as_json:
        print_json(IncidentActionView.of(incident, line).model_dump())
        return
    out.print(f"incident {incident.id} is {incident.status}: {line.message}", markup=False)


def _with_reason(action: Action) -> Callable[..., None]:
    def command(incident_id: IdArg, who: AsOpt = None, reason: ReasonOpt = None,
                as_json: JsonOpt = False, config: ConfigOpt = None) -> None:  # fmt: skip
        text = "" if reason is None else checked(reason, NOTE_MAX, "--reason")
        _act(incident_id, action, who, text, as_json, config)

    return command


for _action, _help in (
    (Action.ACK, "Acknowledge an incident: you have it (TTA is measured to this)."),
    (Action.RESOLVE, "Resolve an incident by hand; a firing alert of it reopens it."),
    (Action.CLOSE, "Close an incident: final; its alerts firing again open a new one."),
    (Action.REOPEN, "Reopen a mitigated or resolved incident."),
):
    incidents_app.command(str(_action), help=_help)(_with_reason(_action))


@incidents_app.command("note")
def note(
    incident_id: IdArg,
    text: Annotated[str, typer.Argument(help=f"the note (at most {NOTE_MAX} characters)")],
    who: AsOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Add a note to an incident's timeline."""
    _act(incident_id, Action.NOTE, who, checked(text, NOTE_MAX, "TEXT", multiline=True),
         as_json, config)  # fmt: skip


@incidents_app.command("assign")
def assign(
    incident_id: IdArg,
    to: Annotated[str, typer.Argument(help="whom to assign it to")],
    who: AsOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Assign an incident to someone."""
    _act(incident_id, Action.ASSIGN, who, checked(to, WHO_MAX, "TO"), as_json, config)
