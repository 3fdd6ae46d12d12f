"""`opsmedic incidents`, `incidents show ID` and `opsmedic token create|revoke|list`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape

from opsmedic.cli import ConfigOpt, app, out
from opsmedic.cli.history import open_store, seconds, when
from opsmedic.model import IncidentStatus

incidents_app = typer.Typer(help="Read incidents and their timelines.", invoke_without_command=True)
app.add_typer(incidents_app, name="incidents")
token_app = typer.Typer(help="Make and revoke API tokens (stored only as hashes).")
app.add_typer(token_app, name="token")

_STATUS_STYLE = {"open": "red", "mitigated": "yellow", "resolved": "green"}


def _status(status: IncidentStatus) -> str:
    return f"[{_STATUS_STYLE[status.value]}]{status}[/]"


@incidents_app.callback()
def incidents(
    ctx: typer.Context,
    status: Annotated[IncidentStatus | None, typer.Option(help="only this status")] = None,
    since: Annotated[str, typer.Option(help="opened within, e.g. 24h, 7d")] = "7d",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    config: ConfigOpt = None,
) -> None:
    """List incidents, newest first."""
    from rich.table import Table

    if ctx.invoked_subcommand is not None:
        return
    store = open_store(config)
    start = datetime.now(UTC).timestamp() - seconds(since, "--since")
    found = store.list_incidents(status=status, since=start, limit=limit)
    table = Table(title=f"incidents opened in the last {since}")
    for column in ("id", "opened (UTC)", "status", "severity", "title", "events", "source"):
        table.add_column(column, overflow="fold")
    for i in found:
        table.add_row(i.id, when(i.opened_at), _status(i.status), i.severity, escape(i.title),
                      str(i.events), i.source)  # fmt: skip
    out.print(table)
    if not found:
        out.print("no incidents")


@incidents_app.command("show")
def show(
    incident_id: Annotated[str, typer.Argument(help="an incident id or a unique part (≥ 4)")],
    config: ConfigOpt = None,
) -> None:
    """One incident: status, member alerts, and its timeline in order."""
    from rich.panel import Panel
    from rich.table import Table

    store = open_store(config)
    incident, alerts, timeline = store.get_incident(incident_id)
    head = (
        f"[bold]{escape(incident.title)}[/]   {_status(incident.status)}   "
        f"severity {incident.severity}   events {incident.events}\n"
        f"key {escape(incident.key)}\nopened {when(incident.opened_at)}  "
        f"mitigated {when(incident.mitigated_at)}  resolved {when(incident.resolved_at)}"
    )
    out.print(Panel(head, title=f"incident {incident.id}"))
    members = Table(title="alerts")
    for column in ("fingerprint", "status", "first seen", "last seen", "events"):
        members.add_column(column)
    for a in alerts:
        members.add_row(a.fingerprint, a.status, when(a.first_seen), when(a.last_seen),
                        str(a.events))  # fmt: skip
    out.print(members)
    lines = Table(title="timeline")
    for column in ("time (UTC)", "what", "message", "ref"):
        lines.add_column(column, overflow="fold")
    for t in timeline:
        lines.add_row(when(t.time), t.kind, escape(t.message), t.ref)
    out.print(lines)


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
    store = open_store(config)
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
def token_list(config: ConfigOpt = None) -> None:
    """Tokens with their scopes; never their secrets."""
    from rich.table import Table

    table = Table(title="tokens")
    for column in ("id", "name", "scopes", "created (UTC)", "revoked (UTC)"):
        table.add_column(column)
    for t in open_store(config).list_tokens():
        table.add_row(t.id, escape(t.name), ",".join(t.scopes), when(t.created_at),
                      when(t.revoked_at))  # fmt: skip
    out.print(table)
