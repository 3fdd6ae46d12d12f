"""`opsmedic logs hunt`: the error events of log files, each once with its count."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opsmedic.cli import ConfigOpt, app, err
from opsmedic.cli.logsources import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_S, Wanted
from opsmedic.cli.output import JsonOpt, print_json, print_lines
from opsmedic.errors import HuntInputError

if TYPE_CHECKING:
    from opsmedic.loghunt import HuntOptions, HuntReport, Source
    from opsmedic.loghunt.archives import ArchiveSource
    from opsmedic.loghunt.drain import Drain

logs_app = typer.Typer(help="Search logs (docs/loghunt.md).", no_args_is_help=True)
app.add_typer(logs_app, name="logs")

PROGRESS_BYTES = 32 << 20  # below this a hunt takes well under a second: no bar
# The machinery is imported inside the command: `opsmedic --help` must stay fast.
DEFAULT_PATTERN = "ERROR|FATAL|CRITICAL|Traceback|panic"  # = loghunt.DEFAULT_PATTERN (tested)


@logs_app.command("hunt")
def hunt_command(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="log files or globs (rotated .1, .gz, .zst; archives .tar.zst, .tar.gz, .zip)"
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="from this time: ISO 8601 (no zone: UTC) or an age: 15m, 2h")
    ] = None,
    until: Annotated[str | None, typer.Option(help="up to this time, as --since")] = None,
    context: Annotated[int, typer.Option("--context", "-C", help="lines around each event")] = 3,
    mode: Annotated[
        str,
        typer.Option(
            help="masked: duplicates judged with variables masked; exact; template: the "
            "matching lines clustered into templates (Drain)"
        ),
    ] = "masked",
    state: Annotated[
        Path | None,
        typer.Option(help="--mode template: the templates learned, read before and saved after"),
    ] = None,
    pattern: Annotated[
        str, typer.Option(help="regex of the levels, matched on word boundaries")
    ] = DEFAULT_PATTERN,
    max_events: Annotated[int, typer.Option(help="distinct events shown; more are counted")] = 1000,
    max_lines: Annotated[int, typer.Option(help="lines of output at most")] = 20_000,
    time_budget: Annotated[
        float | None, typer.Option(help="seconds at most; stops early and says so")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="processes for a big plain file (≥ 64 MiB); 0: one per CPU (each holds its "
            "own table of keys: more memory)"
        ),
    ] = 1,
    ripgrep: Annotated[
        bool, typer.Option(help="use rg (if installed) to find the level words faster")
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    command: Annotated[
        list[str] | None,
        typer.Option(help="a command whose output to hunt: 'kubectl logs web-1' (no shell)"),
    ] = None,
    journal: Annotated[
        list[str] | None, typer.Option(help="a systemd unit whose journal to hunt")
    ] = None,
    ssh: Annotated[
        str | None,
        typer.Option(help="run --command and --journal on this host of the config's ssh_hosts"),
    ] = None,
    command_timeout: Annotated[
        float, typer.Option(help="seconds a --command or --journal may run")
    ] = DEFAULT_TIMEOUT_S,
    command_max_bytes: Annotated[
        int, typer.Option(help="bytes of a command's output hunted at most")
    ] = DEFAULT_MAX_BYTES,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find error events (tracebacks whole), each once at its first occurrence, with context,
    its count and where it was first and last seen."""
    from opsmedic.loghunt import HuntOptions, hunt, open_files
    from opsmedic.loghunt.hunt import check
    from opsmedic.loghunt.timestamps import parse_when

    now = datetime.now(UTC)
    options = HuntOptions(
        pattern=pattern,
        context=context,
        mode=mode,  # type: ignore[arg-type]  # check() refuses any other, naming --mode
        since=None if since is None else parse_when(since, "--since", now),
        until=None if until is None else parse_when(until, "--until", now),
        max_events=max_events,
        max_lines=max_lines,
        time_budget_s=time_budget,
        workers=workers,
        ripgrep=ripgrep,
    )
    check(options)
    templates = _templates(options, state)
    wanted = Wanted(command or [], journal or [], ssh, command_timeout, command_max_bytes)
    if not (paths or wanted.commands or wanted.units):
        raise HuntInputError("name what to hunt: PATH…, --command or --journal")
    runs = wanted.checked()
    opened, notes = open_files(paths or [])
    sources: list[Source | ArchiveSource] = [*opened]
    try:
        sources.extend(wanted.sources(runs, options, config))
        total = sum(s.size or 0 for s in sources)
        if quiet or total < PROGRESS_BYTES or not err.is_terminal:
            report = hunt(sources, options, templates=templates)
        else:
            report = _with_bar(sources, options, total, templates)
    finally:
        for source in sources:
            source.close()
    report.stats.notes[:0] = notes
    if state is not None and templates is not None:
        _save(state, templates, report)
    _print(report, options, as_json)


def _templates(options: HuntOptions, state: Path | None) -> Drain | None:
    """The templates learned before (--state), or None: new ones, or not template mode."""
    if state is None:
        return None
    if options.mode != "template":
        raise HuntInputError(f"--state {state}: only with --mode template")
    from opsmedic.loghunt.drain_state import load_state  # pydantic: only for a state file

    return load_state(state)


def _save(state: Path, templates: Drain, report: HuntReport) -> None:
    from opsmedic.files import NotDurable
    from opsmedic.loghunt.drain_state import save_state

    try:
        save_state(state, templates)
    except NotDurable as exc:
        report.stats.notes.append(f"--state {state}: saved, but not synced to disk: {exc}")
    except OSError as exc:
        raise HuntInputError(f"--state {state}: cannot write: {exc.strerror or exc}") from exc


def _with_bar(
    sources: Sequence[Source | ArchiveSource],
    options: HuntOptions,
    total: int,
    templates: Drain | None,
) -> HuntReport:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from opsmedic.loghunt import hunt

    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), console=err, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("hunting", total=total)
        return hunt(sources, options, progress=lambda n: bar.advance(task, n), templates=templates)


def _print(report: HuntReport, options: HuntOptions, as_json: bool) -> None:
    from opsmedic.loghunt.render import as_json as report_json
    from opsmedic.loghunt.render import text_lines

    if as_json:
        print_json(report_json(report))
        return
    print_lines(text_lines(report))
