"""`opsmedic incidents`, `incidents show ID` and `opsmedic token create|revoke|list`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.text import Text

from opsmedic.cli import ConfigOpt, app, out
from opsmedic.cli.history import open_store, print_fields, since_epoch, when
from opsmedic.cli.output import Cell, JsonOpt, plain, print_json, print_table
from opsmedic.model import Incident, IncidentStatus

incidents_app = typer.Typer(help="Read incidents and their timelines.", invoke_without_command=True)
app.add_typer(incidents_app, name="incidents")
token_app = typer.Typer(help="Make and revoke API tokens (stored only as hashes).")
app.add_typer(token_app, name="token")

_STATUS_STYLE = {"open": "red", "mitigated": "yellow", "resolved": "green"}


def _status(incident: Incident) -> Text:
    """Its status, and that it flaps: the on-call reads one line, not hundreds."""
    text = Text(str(incident.status), style=_STATUS_STYLE[incident.status.value])
    if incident.flapping:
        text.append(f" (flapping, {incident.flaps} flaps)", style="magenta")
    elif incident.flaps:
        text.append(f" ({incident.flaps} flaps)")
    return text


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
    from opsmedic.store.public import incident_json

    if ctx.invoked_subcommand is not None:
        return
    start = since_epoch(since)
    found = open_store(config).list_incidents(status=status, since=start, limit=limit)
    if as_json:
        print_json([incident_json(i) for i in found])
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
    from opsmedic.store.public import incident_detail_json

    incident, alerts, timeline = open_store(config).get_incident(incident_id)
    if as_json:
        print_json(incident_detail_json(incident, alerts, timeline))
        return
    print_fields(f"incident {incident.id}", [
        ("id", incident.id), ("title", incident.title), ("status", _status(incident)),
        ("severity", incident.severity), ("events", str(incident.events)), ("key", incident.key),
        ("opened", when(incident.opened_at)), ("mitigated", when(incident.mitigated_at)),
        ("resolved", when(incident.resolved_at)),
    ])  # fmt: skip
    print_table("alerts", ["fingerprint", "status", "first seen", "last seen", "events"],
                [[a.fingerprint, a.status, when(a.first_seen), when(a.last_seen), str(a.events)]
                 for a in alerts])  # fmt: skip
    if plain():
        sys.stdout.write("\n")  # a blank line between sections
    print_table("timeline", ["time (UTC)", "what", "message", "ref"],
                [[when(t.time), t.kind, t.message, t.ref] for t in timeline])  # fmt: skip


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="who or what uses it, e.g. alertmanager")],
    scope: Annotated[
        list[str], typer.Option(help="ingest, read, operate or admin (repeat, or a, b)")
    ],
    config: ConfigOpt = None,
) -> None:
    """Create a token and print its secret once; only its hash is stored."""
    from opsmedic.tokens import Scope, digest, mint

    try:
        # `--scope ingest --scope read` or `--scope ingest,read`
        scopes = [Scope(w.strip()) for s in scope for w in s.split(",")]
    except ValueError:
        raise typer.BadParameter(
            "use ingest, read, operate or admin", param_hint="--scope"
        ) from None
    # A config names the store to create; without one, no stray database in the cwd.
    store = open_store(config, create=True)
    try:
        record, secret = mint(name, scopes, datetime.now(UTC).timestamp())
        store.add_token(record, digest(secret))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--name") from None
    typer.echo(secret)
    typer.echo(f"token {record.name!r} ({', '.join(record.scopes)}) created; the secret above is "
               "shown only now", err=True)  # fmt: skip


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="the token's name or id")],
    config: ConfigOpt = None,
) -> None:
    """Revoke a token (a running service stops accepting it within 5 s)."""
    store = open_store(config)
    try:
        record = store.revoke_token(name, datetime.now(UTC).timestamp())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME") from None
    out.print(f"revoked token {record.name!r} ({record.id})")


@token_app.command("list")
def token_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Tokens with their scopes; never their secrets."""
    from opsmedic.store.public import token_json

    found = open_store(config).list_tokens()
    if as_json:
        print_json([token_json(t) for t in found])
        return
    print_table("tokens", ["id", "name", "scopes", "created (UTC)", "revoked (UTC)"],
                [[t.id, t.name, ",".join(t.scopes), when(t.created_at), when(t.revoked_at)]
                 for t in found], empty="no tokens")  # fmt: skip
