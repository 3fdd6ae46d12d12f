"""`opsmedic archive`: run archive_logs by hand, with a progress bar and a summary table."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from opsmedic.cli import ConfigOpt, app, out
from opsmedic.errors import ConfigError, Problem

if TYPE_CHECKING:
    from rich.console import Console

    from opsmedic.actions.archive_logs import ArchiveReport, Params

# The archive machinery (zstandard, asyncssh, psutil) is imported inside the command:
# `opsmedic --help` imports every command module and must stay fast.


@app.command()
def archive(
    dirs: Annotated[list[Path], typer.Argument(help="log directories", show_default=False)],
    to: Annotated[str, typer.Option(help="a local directory or sftp://host/path")],
    include: Annotated[list[str], typer.Option(help="glob on file names; repeat for more")],
    exclude: Annotated[list[str] | None, typer.Option(help="glob to leave out; repeatable")] = None,
    fmt: Annotated[str, typer.Option("--format", help="tar.zst, tar.gz or zip")] = "tar.zst",
    per: Annotated[str, typer.Option(help="run: one archive; file: one per file")] = "run",
    level: Annotated[int | None, typer.Option(help="compression level")] = None,
    min_age: Annotated[str, typer.Option(help="skip files modified more recently")] = "5m",
    recursive: Annotated[bool, typer.Option(help="descend into subdirectories")] = False,
    keep_originals: Annotated[bool, typer.Option(help="archive but delete nothing")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only show what would be archived and why not")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    config: ConfigOpt = None,
) -> None:
    """Archive logs now: verified archive first, originals deleted only after (exit 1 if not)."""
    import asyncio
    import socket

    from pydantic import ValidationError

    from opsmedic.actions.archive_logs import Params
    from opsmedic.actions.archive_logs import archive as run_archive
    from opsmedic.config.loader import load_config
    from opsmedic.runtime import find_config, plugin_sections

    loaded, _ = load_config(find_config(config), plugin_sections())
    raw = {
        "dir": [str(d.absolute()) for d in dirs], "to": to, "include": include,
        "exclude": exclude or [], "format": fmt, "per": per, "level": level,
        "min_age": min_age, "recursive": recursive, "delete": not keep_originals,
    }  # fmt: skip
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        problems = [Problem("opsmedic archive", 0, 0, _option(e["loc"]), e["msg"]) for e in
                    exc.errors()]  # fmt: skip
        raise ConfigError(problems) from None
    host = socket.gethostname()
    if dry_run or quiet:
        report = asyncio.run(
            run_archive(params, loaded, host, time_limit=loaded.actions.timeout, dry_run=dry_run)
        )
    else:
        report = _with_progress(
            lambda bar: run_archive(
                params,
                loaded,
                host,
                time_limit=loaded.actions.timeout,
                progress=bar.advance,
                on_total=bar.set_total,
            )
        )
    _print(report, params)
    if report.selection.problems or report.error is not None:
        raise typer.Exit(1)


def _option(loc: tuple[object, ...]) -> str:
    name = str(loc[0]) if loc else "params"
    return "--" + {"dir": "dirs", "delete": "keep-originals"}.get(name, name).replace("_", "-")


def _with_progress(
    begin: Callable[[ArchiveBar], Coroutine[Any, Any, ArchiveReport]],
) -> ArchiveReport:
    """Run with a bar over the bytes read: once writing, once verifying."""
    import asyncio

    with ArchiveBar(out) as bar:
        return asyncio.run(begin(bar))


class ArchiveBar:
    """A rich bar whose total is set once the files are selected, so it can show an ETA."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=True,
        )  # fmt: skip
        # No total until selection ends: rich shows a pulsing bar and no ETA until then.
        self.task = self.progress.add_task("archiving (write + verify)", total=None)

    def __enter__(self) -> ArchiveBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def set_total(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)


def _print(report: ArchiveReport, params: Params) -> None:
    from rich.table import Table

    from opsmedic.actions.archive_logs import outcome_of

    sel = report.selection
    for problem in sel.problems:
        out.print(f"[red]error[/red] {escape(problem)}")
    if report.dry_run:
        table = Table(title=f"would archive to {escape(report.destination)} ({params.format})")
        table.add_column("file", overflow="fold")
        table.add_column("bytes", justify="right")
        for c in sel.candidates:
            table.add_row(escape(str(c.path)), f"{c.identity.size:,}")
        out.print(table)
    if sel.skipped:
        skipped = Table(title="left in place")
        skipped.add_column("file", overflow="fold")
        skipped.add_column("why", overflow="fold")
        for s in sel.skipped:
            skipped.add_row(escape(str(s.path)), escape(s.reason))
        out.print(skipped)
    outcome = outcome_of(report)
    if not report.dry_run and report.archives:
        table = Table(title="archives")
        for column in ("archive", "files", "in", "out", "ratio"):
            table.add_column(column, justify="left" if column == "archive" else "right")
        for w in report.archives:
            size_in = sum(m.size for m in w.members)
            ratio = f"{size_in / w.bytes_out:.2f}" if w.bytes_out else "-"
            table.add_row(escape(w.name), str(len(w.members)), f"{size_in:,}",
                          f"{w.bytes_out:,}", ratio)  # fmt: skip
        out.print(table)
    colour = "green" if outcome.ok else "red"
    out.print(f"[{colour}]{escape(outcome.message)}[/{colour}]")
