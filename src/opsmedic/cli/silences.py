"""`opsmedic silence add|list|expire`: hold the remediation of matching events for a while."""

from __future__ import annotations

import getpass
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from opsmedic.cli import ConfigOpt, app, out
from opsmedic.cli.history import open_store, seconds, when
from opsmedic.cli.output import JsonOpt, print_json, print_table

silence_app = typer.Typer(help="Silences: matching events start no remediation while one holds.")
app.add_typer(silence_app, name="silence")


def _instant(text: str | None, option: str) -> float | None:
    """An ISO 8601 time (UTC when it names no zone) as epoch seconds."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"not a time: {text!r} (use ISO 8601, e.g. 2026-12-24T22:00:00+01:00)",
            param_hint=option,
        ) from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _who() -> str:
    try:
        return f"cli {getpass.getuser()}"
    except (KeyError, OSError):  # a uid with no name (containers)
        return "cli ?"


@silence_app.command("add")
def add(
    matchers: Annotated[
        list[str], typer.Argument(help="FIELD OP VALUE, e.g. host=web-1 labels.env=~prod|dr")
    ],
    comment: Annotated[str, typer.Option(help="why (shown on every timeline it holds)")],
    duration: Annotated[str | None, typer.Option(help="how long, e.g. 2h; or --until")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 end (UTC without a zone)")] = None,
    start: Annotated[str | None, typer.Option(help="ISO 8601 start; default now")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Add a silence; a running engine sees it within a second."""
    from opsmedic.config.matchers import new_silence

    span = seconds(duration, "--duration") if duration is not None else None
    try:
        silence = new_silence(
            matchers, now=time.time(), starts_at=_instant(start, "--start"),
            ends_at=_instant(until, "--until"), duration=span, created_by=_who(), comment=comment,
        )  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    open_store(config, create=True).silences.add(silence)
    if as_json:
        print_json(silence.as_dict(time.time()))
        return
    out.print(f"silence {silence.id} holds until {when(silence.ends_at)} UTC")


@silence_app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="expired silences too")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Silences that have not ended (pending and active), soonest end first."""
    now = time.time()
    found = open_store(config).silences.list(ending_after=None if all_ else now)
    if as_json:
        print_json([s.as_dict(now) for s in found])
        return
    columns = ["id", "state", "matchers", "starts (UTC)", "ends (UTC)", "by", "comment"]
    rows = [[s.id, s.state(now), " ".join(str(m) for m in s.matchers), when(s.starts_at),
             when(s.ends_at), s.created_by, s.comment] for s in found]  # fmt: skip
    print_table("silences", columns, rows, empty="no silences")


@silence_app.command("expire")
def expire(
    silence_id: Annotated[str, typer.Argument(help="a silence id or a unique part (≥ 4)")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """End a silence now; what it held runs again from the next event."""
    silence = open_store(config).silences.expire(silence_id, time.time())
    if as_json:
        print_json(silence.as_dict(time.time()))
        return
    out.print(f"silence {silence.id} ended at {when(silence.ends_at)} UTC")
