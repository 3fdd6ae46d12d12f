"""`opsmedic runs`, `runs show ID`, `opsmedic events` and `opsmedic prune`: reading and
trimming history."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from opsmedic.cli import ConfigOpt, app, out
from opsmedic.cli.output import (
    Cell,
    JsonOpt,
    cell,
    json_line,
    plain,
    print_json,
    print_table,
    shorten,
    tsv_line,
)
from opsmedic.errors import StoreError
from opsmedic.model import OWN_SOURCE, Queue, Run, RunState, StepRecord

if TYPE_CHECKING:
    from opsmedic.config.schema import Config
    from opsmedic.store.store import Store

# Config, the store (SQLAlchemy) and rich's tables are imported by the commands that use
# them: every command module is imported for `opsmedic --help`, which must not pay for them.

runs_app = typer.Typer(help="Read the run history.", invoke_without_command=True)
app.add_typer(runs_app, name="runs")

_STATE_STYLE = {"succeeded": "green", "failed": "red", "timed_out": "red", "skipped": "yellow",
                "interrupted": "magenta", "running": "cyan", "planned": "cyan",
                "waiting_approval": "yellow"}  # fmt: skip
NARROW_BELOW = 120  # terminal columns under which the run list leaves out time and target
MAX_EXPORT = 10_000_000  # --limit's ceiling: an export of a whole store is a use, not a bug


def open_store(config: ConfigOpt, *, create: bool = False) -> Store:
    """The config's store, migrated; where there is none it says so instead of leaving an
    empty database behind (only `run`, `init`, `replay` and `demo` create one, and with
    `create` a command that writes, where an opsmedic.yaml names the store)."""
    return open_config_store(config, create=create)[1]


def open_config_store(config: ConfigOpt, *, create: bool = False) -> tuple[Config, Store]:
    """The config and its store (open_store)."""
    from opsmedic.config.loader import load_config
    from opsmedic.runtime import DEFAULT_CONFIG, find_config, plugin_sections
    from opsmedic.store.store import Store

    path = find_config(config)
    # The plugins' sections are validated with the rest: a config `run` accepts, read accepts.
    loaded = load_config(path, plugin_sections())[0]
    store = Store(loaded.store)
    try:
        store.migrate(create=create and path is not None)
    except StoreError as exc:
        if path is not None:
            raise
        raise StoreError(
            f"nothing to read: no {DEFAULT_CONFIG} in {DEFAULT_CONFIG.resolve().parent}, and "
            f"{exc}; run `opsmedic init` to start one, or pass --config"
        ) from None
    return loaded, store


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


def since_epoch(text: str) -> float:
    """--since as an epoch time: now minus the duration."""
    return datetime.now(UTC).timestamp() - seconds(text, "--since")


def styled(state: RunState | str) -> str:
    return f"[{_STATE_STYLE.get(str(state), 'white')}]{state}[/]"


def state_cell(state: RunState | str) -> Text:
    return Text(str(state), style=_STATE_STYLE.get(str(state), "white"))


def decided_by(run: Run) -> str:
    """The step that decided the outcome as `N action` (1-based), or "-" before any step."""
    from opsmedic.views import deciding_step

    index = deciding_step(run)
    return "-" if index is None else f"{index + 1} {run.steps[index].action}"


def started_by(run: Run) -> str:
    """Who started a run: "engine" for an event's, else who ran it by hand (and if forced)."""
    if not run.started_by:
        return "engine"
    return f"{run.started_by} (manual{', forced' if run.forced else ''})"


def print_runs(runs: list[Run], title: str, *, narrow: bool = False) -> None:
    """Runs as a table. At a terminal under 120 columns (or when `narrow`) it keeps the id's
    tail, which `runs show` accepts, and leaves time and target to `show`: eight columns in
    80 would fold every cell into a tower of four-letter pieces."""
    columns = ["id", "created (UTC)", "rule", "target", "step", "state", "took", "message",
               "by"]  # fmt: skip
    narrow = narrow or out.width < NARROW_BELOW
    wide = ("created (UTC)", "target") if narrow and not plain() else ()
    rows: list[list[Cell]] = []
    for run in runs:
        took = (
            f"{run.finished_at - run.started_at:.2f}s" if run.finished_at and run.started_at else ""
        )
        cells: dict[str, Cell] = {
            "id": run.id[-8:] if wide else run.id, "created (UTC)": when(run.created_at),
            "rule": run.rule, "target": run.target, "step": decided_by(run),
            "state": state_cell(run.state), "took": took, "message": shorten(run.message),
            "by": started_by(run),
        }  # fmt: skip
        rows.append([cells[c] for c in columns if c not in wide])
    print_table(title, [c for c in columns if c not in wide], rows, empty="no runs")


@runs_app.callback()
def runs(
    ctx: typer.Context,
    rule: Annotated[str | None, typer.Option(help="only this rule")] = None,
    since: Annotated[str, typer.Option(help="how far back, e.g. 30m, 24h, 7d")] = "24h",
    state: Annotated[RunState | None, typer.Option(help="only runs in this state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    suppressed: Annotated[
        bool, typer.Option("--suppressed", help="decisions that started no run, counted")
    ] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    queue: Annotated[Queue | None, typer.Option(help="only runs of this queue")] = None,
) -> None:
    """List recent runs, newest first; STEP is the step that decided the outcome."""
    from opsmedic.views import RunView

    if ctx.invoked_subcommand is not None:
        return
    start = since_epoch(since)
    if suppressed:
        if state is not None:
            raise typer.BadParameter("runs only: decisions have an outcome",
                                     param_hint="--state")  # fmt: skip
        from opsmedic.cli.suppressed import print_suppressed

        print_suppressed(open_store(config), rule, start, limit, as_json, since)
        return
    found = open_store(config).list_runs(rule=rule, since=start, state=state, limit=limit,
                                         queue=queue)  # fmt: skip
    if as_json:
        print_json([RunView.of(r).model_dump() for r in found])
        return
    of = (f" for rule {rule}" if rule else "") + (f" in queue {queue}" if queue else "")
    print_runs(found, f"runs since {since}{of}")


@runs_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="a run id or a unique part of it (≥ 4 chars)")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Everything about one run: event, steps, rendered parameters, outcome and output."""
    from opsmedic.cli.approvals import print_waits
    from opsmedic.views import RunDetailView, deciding_step

    store = open_store(config)
    run = store.get_run(run_id)
    waits = store.approvals.of_run(run.id)
    if as_json:
        print_json(RunDetailView.of_waits(run, waits).model_dump())
        return
    event = store.get_event(run.event_id)
    print_fields(f"run {run.id}", [
        ("id", run.id), ("rule", run.rule), ("state", state_cell(run.state)), ("queue", run.queue),
        ("dry_run", "yes" if run.dry_run else "no"), ("trigger", run.trigger),
        ("started by", started_by(run)), ("target", run.target),
        ("created", when(run.created_at)), ("started", when(run.started_at)),
        ("finished", when(run.finished_at)), ("message", run.message),
        ("event", f"{event.id}: {event.source}/{event.kind} {event.status} "
                  f"value={event.value!r} labels={event.labels}"),
    ])  # fmt: skip
    print_waits(waits)
    decided = deciding_step(run)
    if not plain():  # at a terminal a step is a panel: ten columns would not fit in 80
        for n, step in enumerate(run.steps, start=1):
            values = _step_values(step, decided=n - 1 == decided)
            print_fields(f"step {n}: {step.action}" + (" (on_failure)" if step.on_failure else ""),
                         list(zip(_STEP_FIELDS, values, strict=True)))  # fmt: skip
        return
    rows = [[str(n), step.action, *_step_values(step, n - 1 == decided)]
            for n, step in enumerate(run.steps, start=1)]  # fmt: skip
    print_table("steps", ["step", "action", *_STEP_FIELDS], rows)


_STEP_FIELDS = ("part", "decided", "state", "attempts", "took", "params", "message", "output")


def _step_values(step: StepRecord, decided: bool) -> list[Cell]:
    return ["on_failure" if step.on_failure else "main", "yes" if decided else "",
            state_cell(step.state), str(step.attempts), f"{step.duration_ms or 0:.1f} ms",
            str(step.params), step.message, step.output]  # fmt: skip


def print_fields(title: str, fields: list[tuple[str, Cell]]) -> None:
    """One record: `field<TAB>value` lines in a pipe, a panel of aligned lines at a terminal."""
    if plain():
        sys.stdout.write("".join(tsv_line(f) + "\n" for f in [("field", "value"), *fields]))
        sys.stdout.write("\n")  # a blank line before the next section
        return
    from rich.panel import Panel
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")  # a long value wraps inside the panel, never cut off
    for name, value in fields:
        grid.add_row(name, cell(value))
    out.print(Panel(grid, title=Text(title)))  # Text: a rule's or action's name is no markup


@app.command()
def events(
    source: Annotated[str | None, typer.Option(help="only events from this source")] = None,
    kind: Annotated[str | None, typer.Option(help="only events of this kind")] = None,
    since: Annotated[str, typer.Option(help="how far back, e.g. 30m, 24h, 7d")] = "24h",
    limit: Annotated[int, typer.Option(min=1, max=MAX_EXPORT)] = 100,
    as_json: JsonOpt = False,
    jsonl: Annotated[
        bool,
        typer.Option("--jsonl", help="one event per line, oldest first: what `replay` reads"),
    ] = False,
    everything: Annotated[
        bool,
        typer.Option(
            "--all",
            help="with --jsonl: also export opsmedic's own events (escalations, announcements)",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """List stored events, newest first, or export them for `opsmedic replay`."""
    from opsmedic.views import EventView

    if as_json and jsonl:
        raise typer.BadParameter("use one of --json and --jsonl", param_hint="--jsonl")
    if everything and not jsonl:
        raise typer.BadParameter("only with --jsonl (listings show every event)",
                                 param_hint="--all")  # fmt: skip
    start = since_epoch(since)
    # The export leaves out what the engine itself derived (source `opsmedic`: escalations,
    # actions' announcements): replay derives them again, and fed in as well they would count
    # twice (two escalations for one limit). Asking for that source by name still gets it.
    own = None if everything or not jsonl or source is not None else OWN_SOURCE
    # One more than asked: a full page alone does not prove that older events exist.
    found = open_store(config).list_events(
        since=start, source=source, kind=kind, limit=limit + 1, not_source=own
    )
    more = len(found) > limit
    found = found[:limit]
    if jsonl:
        # Oldest first: replay feeds events in file order, and `for:` and throttles need time
        # to run forwards.
        sys.stdout.write(
            "".join(json_line(EventView.of(e).model_dump()) + "\n" for e in reversed(found))
        )
        if more:
            typer.echo(f"exported the newest {limit} events: older ones exist (--limit)",
                       err=True)  # fmt: skip
        return
    if as_json:
        print_json([EventView.of(e).model_dump() for e in found])
        return
    columns = ["id", "time (UTC)", "source", "kind", "target", "status", "severity", "value",
               "incident"]  # fmt: skip
    rows = [[e.id, when(e.time), e.source, e.kind, e.target, str(e.status), e.severity,
             "" if e.value is None else str(e.value), e.incident_id]
            for e in found]  # fmt: skip
    print_table(f"events since {since}", columns, rows, empty="no events")


@app.command()
def prune(
    older_than: Annotated[str, typer.Option(help="delete history older than this, e.g. 30d")],
    config: ConfigOpt = None,
) -> None:
    """Delete old events, runs, resolved incidents and ended silences; unfinished runs and open
    incidents stay."""
    age = seconds(older_than, "--older-than")
    if age <= 0:
        raise typer.BadParameter("must be more than 0", param_hint="--older-than")
    store = open_store(config)
    result = store.prune(datetime.now(UTC).timestamp() - age)
    out.print(f"pruned {result.events} events, {result.runs} runs, {result.incidents} "
              f"resolved incidents, {result.silences} ended silences and {result.slo_minutes} "
              f"SLO sample minutes older than "
              f"{older_than}")  # fmt: skip
