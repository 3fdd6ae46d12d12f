"""`opsmedic runs`, `opsmedic runs show ID` and `opsmedic prune`: reading and trimming history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from opsmedic.cli import ConfigOpt, app, out
from opsmedic.model import Run, RunState

if TYPE_CHECKING:
    from rich.table import Table

    from opsmedic.store.store import Store

# Config, the store (SQLAlchemy) and rich's tables are imported by the commands that use
# them: every command module is imported for `opsmedic --help`, which must not pay for them.

runs_app = typer.Typer(help="Read the run history.", invoke_without_command=True)
app.add_typer(runs_app, name="runs")

_STATE_STYLE = {"succeeded": "green", "failed": "red", "timed_out": "red", "skipped": "yellow",
                "interrupted": "magenta", "running": "cyan", "planned": "cyan"}  # fmt: skip


def open_store(config: ConfigOpt) -> Store:
    from opsmedic.config.loader import load_config
    from opsmedic.runtime import find_config
    from opsmedic.store.store import Store

    store = Store(load_config(find_config(config))[0].store)
    store.migrate()
    return store


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):  # a time no calendar shows: say it as is
        return f"{ts:g}"


def seconds(text: str, option: str) -> float:
    from opsmedic.config.types import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def styled(state: RunState | str) -> str:
    return f"[{_STATE_STYLE.get(str(state), 'white')}]{state}[/]"


def runs_table(runs: list[Run], title: str, *, narrow: bool = False) -> Table:
    """Runs as a table; `narrow` (for 80 columns) keeps the id's tail, which `runs show`
    accepts, and leaves out time, target and actions."""
    from rich.table import Table

    table = Table(title=title)
    columns = ["id", "created (UTC)", "rule", "target", "actions", "state", "took", "message"]
    wide = ("created (UTC)", "target", "actions")
    for column in columns:
        if not (narrow and column in wide):
            table.add_column(column, overflow="fold")
    for run in runs:
        took = (
            f"{run.finished_at - run.started_at:.2f}s" if run.finished_at and run.started_at else ""
        )
        cells = {
            "id": run.id[-8:] if narrow else run.id, "created (UTC)": when(run.created_at),
            "rule": run.rule, "target": run.target, "actions": ",".join(run.actions),
            "state": styled(run.state), "took": took, "message": escape(run.message[:120]),
        }  # fmt: skip
        table.add_row(*(cells[c] for c in columns if not (narrow and c in wide)))
    return table


@runs_app.callback()
def runs(
    ctx: typer.Context,
    rule: Annotated[str | None, typer.Option(help="only this rule")] = None,
    since: Annotated[str, typer.Option(help="how far back, e.g. 30m, 24h, 7d")] = "24h",
    state: Annotated[RunState | None, typer.Option(help="only runs in this state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    config: ConfigOpt = None,
) -> None:
    """List recent runs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    store = open_store(config)
    start = datetime.now(UTC).timestamp() - seconds(since, "--since")
    found = store.list_runs(rule=rule, since=start, state=state, limit=limit)
    out.print(runs_table(found, f"runs since {since}" + (f" for rule {rule}" if rule else "")))
    if not found:
        out.print("no runs")


@runs_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="a run id or a unique part of it (≥ 4 chars)")],
    config: ConfigOpt = None,
) -> None:
    """Everything about one run: event, steps, rendered parameters, outcome and output."""
    from rich.panel import Panel

    store = open_store(config)
    run = store.get_run(run_id)
    event = store.get_event(run.event_id)
    head = (
        f"rule [bold]{run.rule}[/]   state {styled(run.state)}   queue {run.queue}"
        f"{'   dry-run' if run.dry_run else ''}\ntarget {run.target}\n"
        f"created {when(run.created_at)}  started {when(run.started_at)}  "
        f"finished {when(run.finished_at)}\nmessage {escape(run.message)}\n"
        f"event {event.id}: {event.source}/{event.kind} {event.status} value={event.value!r} "
        f"labels={escape(str(event.labels))}"
    )
    out.print(Panel(head, title=f"run {run.id}"))
    for n, step in enumerate(run.steps, start=1):
        label = " (on_failure)" if step.on_failure else ""
        body = (f"state {styled(step.state)}  attempts {step.attempts}  "
                f"took {step.duration_ms or 0:.1f} ms\nparams {escape(str(step.params))}\n"
                f"message {escape(step.message)}")  # fmt: skip
        if step.output:
            body += f"\n[dim]{escape(step.output)}[/dim]"
        out.print(Panel(body, title=f"step {n}: {step.action}{label}"))


@app.command()
def prune(
    older_than: Annotated[str, typer.Option(help="delete history older than this, e.g. 30d")],
    config: ConfigOpt = None,
) -> None:
    """Delete old events, runs and resolved incidents; unfinished runs and open incidents stay."""
    age = seconds(older_than, "--older-than")
    if age <= 0:
        raise typer.BadParameter("must be more than 0", param_hint="--older-than")
    store = open_store(config)
    result = store.prune(datetime.now(UTC).timestamp() - age)
    out.print(f"pruned {result.events} events, {result.runs} runs and {result.incidents} "
              f"resolved incidents older than {older_than}")  # fmt: skip
