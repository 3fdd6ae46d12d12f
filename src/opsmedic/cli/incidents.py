"""`opsmedic incidents` and `incidents show ID`: incidents and their timelines."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from opsmedic.cli import ConfigOpt, app, out
from opsmedic.cli.history import open_store, print_fields, since_epoch, state_cell, when
from opsmedic.cli.output import Cell, JsonOpt, cell, plain, print_json, print_table
from opsmedic.model import Incident, IncidentStatus

if TYPE_CHECKING:
    from opsmedic.views import LogHuntView

incidents_app = typer.Typer(help="Read incidents and their timelines.", invoke_without_command=True)
app.add_typer(incidents_app, name="incidents")

_STATUS_STYLE = {"open": "red", "acknowledged": "magenta", "mitigated": "yellow",
                 "resolved": "green", "closed": "dim"}  # fmt: skip


def _status(incident: Incident) -> Text:
    """Its status, and that it flaps: the on-call reads one line, not hundreds."""
    text = Text(str(incident.status), style=_STATUS_STYLE[incident.status.value])
    if incident.flapping:
        text.append(f" (flapping, {incident.flaps} flaps)", style="magenta")
    elif incident.flaps:
        text.append(f" ({incident.flaps} flaps)")
    return text


def _took(seconds: float | None) -> str:
    from opsmedic.engine.decisions import secs

    return "-" if seconds is None else f"{secs(seconds)} s"


@incidents_app.callback()
def incidents(
    ctx: typer.Context,
    status: Annotated[IncidentStatus | None, typer.Option(help="only this status")] = None,
    since: Annotated[str, typer.Option(help="opened within, e.g. 24h, 7d")] = "7d",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List incidents, newest first."""
    from opsmedic.views import IncidentView

    if ctx.invoked_subcommand is not None:
        return
    start = since_epoch(since)
    found = open_store(config).list_incidents(status=status, since=start, limit=limit)
    if as_json:
        print_json([IncidentView.model_validate(i).model_dump() for i in found])
        return
    columns = ["id", "opened (UTC)", "status", "severity", "title", "events", "source"]
    rows: list[list[Cell]] = [
        [i.id, when(i.opened_at), _status(i), i.severity, i.title, str(i.events), i.source]
        for i in found
    ]
    print_table(f"incidents opened in the last {since}", columns, rows, empty="no incidents")


@incidents_app.command("show")
def show(
    incident_id: Annotated[str, typer.Argument(help="an incident id or a unique part (≥ 4)")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """One incident: status, member alerts, and its timeline in order."""
    from opsmedic.views import IncidentDetailView

    store = open_store(config)
    incident, alerts, timeline = store.get_incident(incident_id)
    view = IncidentDetailView.of(incident, alerts, timeline, store.loghunts.latest(incident.id))
    if as_json:
        print_json(view.model_dump())
        return
    acked = f"{when(incident.acknowledged_at)} by {incident.acknowledged_by}"
    print_fields(f"incident {incident.id}", [
        ("id", incident.id), ("title", incident.title), ("status", _status(incident)),
        ("severity", incident.severity), ("events", str(incident.events)), ("key", incident.key),
        ("opened", when(incident.opened_at)),
        ("acknowledged", acked if incident.acknowledged_at is not None else "-"),
        ("assignee", incident.assignee or "-"), ("mitigated", when(incident.mitigated_at)),
        ("resolved", when(incident.resolved_at)), ("closed", when(incident.closed_at)),
        ("TTA / TTM / TTR", " / ".join(_took(s) for s in (view.tta, view.ttm, view.ttr))),
    ])  # fmt: skip
    print_table("alerts", ["fingerprint", "status", "first seen", "last seen", "events"],
                [[a.fingerprint, a.status, when(a.first_seen), when(a.last_seen), str(a.events)]
                 for a in alerts])  # fmt: skip
    if plain():
        sys.stdout.write("\n")  # a blank line between sections
    print_table("timeline", ["time (UTC)", "what", "message", "ref"],
                [[when(t.time), t.kind, t.message, t.ref] for t in timeline])  # fmt: skip
    _print_evidence([t.evidence for t in timeline if t.evidence is not None])
    if view.loghunt is not None:
        _print_loghunt(view.loghunt)


def _print_evidence(found: list[dict[str, Any]]) -> None:
    """What investigation runs collected, after the timeline that names them; each output as
    stored (bounded, a cut one ending with a marker that says so). In a pipe one row per
    step; at a terminal one panel per step, so that the output keeps its own lines."""
    from opsmedic.views import EvidenceView

    if not found:
        return
    shown = [(e, n, step) for e in map(EvidenceView.model_validate, found)
             for n, step in enumerate(e.steps, start=1)]  # fmt: skip
    if plain():
        sys.stdout.write("\n")
        rows: list[list[Cell]] = [[e.run_id, e.rule, str(n), step.action, state_cell(step.state),
                                   step.message, step.output] for e, n, step in shown]  # fmt: skip
        print_table("evidence", ["run", "rule", "step", "action", "state", "message", "output"],
                    rows)  # fmt: skip
        return
    from rich.panel import Panel

    for evidence, n, step in shown:
        # The title stays short (rich cuts a long one); the rest folds inside the panel.
        body = Text(f"run {evidence.run_id} of {evidence.rule}: ").append_text(
            state_cell(step.state)
        )
        body.append(f": {step.message}\n\n", style="bold").append_text(cell(step.output))
        title = Text(f"evidence, step {n}: {step.action}")  # Text: an action's name is no markup
        out.print(Panel(body, title=title, title_align="left"))


def _print_loghunt(hunt: LogHuntView) -> None:
    """The latest log hunt: what it read, then its top events with counts and sightings."""
    if plain():
        sys.stdout.write("\n")
    shown = f"{len(hunt.events)} shown" + (
        f", {hunt.distinct - len(hunt.events)} more in the run (opsmedic runs show {hunt.run_id})"
        if hunt.distinct > len(hunt.events) else ""
    )  # fmt: skip
    print_fields("Log hunt", [
        ("log hunt", f"run {hunt.run_id} of {hunt.rule}"), ("finished", when(hunt.finished_at)),
        ("since", hunt.since or "the files' start"),
        ("found", f"{hunt.distinct} distinct errors, {hunt.occurrences} occurrences; {shown}"),
        *[("note", note) for note in hunt.notes],
        *([("stopped early", hunt.stopped)] if hunt.stopped else []),
    ])  # fmt: skip
    print_table("Log hunt: top events", ["count", "first seen", "last seen", "event"],
                [[str(e.count), _sighting(e.first), _sighting(e.last), e.headline or e.key]
                 for e in hunt.events], empty="no errors found")  # fmt: skip


def _sighting(seen: dict[str, Any]) -> str:
    time = f" {seen['time']}" if seen.get("time") else ""
    return f"{seen.get('source')}:{seen.get('line')}{time}"
