"""`opsmedic run` (the service) and `opsmedic replay` (events from a file, then exit)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from opsmedic.cli import ConfigOpt, app, err, out
from opsmedic.errors import Problem
from opsmedic.model import Event, Run

if TYPE_CHECKING:
    from rich.table import Table

    from opsmedic.runtime import Runtime

# The runtime (config, rules, engine, store) and asyncio are imported by the commands that
# use them: every command module is imported for `opsmedic --help`, which must not pay for it.

_CHUNK = 500  # events per submission: large enough to batch, small enough to stream


@app.command()
def run(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """Run the engine, the probes and the rules watcher until SIGINT or SIGTERM."""
    import asyncio

    from opsmedic.logs import configure_logging
    from opsmedic.runtime import build, find_config, run_forever

    rt = build(find_config(config))
    if ctx.obj["log_level"] is None:  # the service logs at its configured level
        configure_logging(rt.config.log.level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_forever(rt, stop)

    asyncio.run(main())


@app.command()
def replay(
    events: Annotated[Path, typer.Argument(help="a JSON-lines file, one event per line")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print what would run; run nothing, store nothing")
    ] = False,
    rules: Annotated[Path | None, typer.Option(help="rules path (default: from config)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Feed events through rules and actions; exit when every run has finished.

    A bad line is reported with its line number and skipped; the rest is processed.
    """
    import asyncio

    from opsmedic.runtime import build, find_config

    if not events.is_file():
        raise typer.BadParameter(f"{events} is not a file", param_hint="EVENTS")
    rt = build(find_config(config), rules_path=rules, dry_run=dry_run, with_store=not dry_run)
    would: list[Run] = []
    if dry_run:
        rt.engine.on_finished = would.append
    bad = asyncio.run(_replay(rt, events))
    stats = rt.engine.stats()
    if dry_run:
        out.print(_would_table(would))
    summary = ", ".join(f"{n} {state}" for state, n in sorted(stats["finished"].items())) or "none"
    out.print(
        f"replayed {stats['events']} events from {events} ({bad} bad lines skipped): "
        f"runs {summary}; suppressed: {stats['suppressed_throttle']} by throttle, "
        f"{stats['suppressed_in_flight']} in flight, {stats['pending_for']} waiting for `for:`, "
        f"{stats['limited']} over limit"
    )


async def _replay(rt: Runtime, path: Path) -> int:
    import asyncio

    from opsmedic.sources.events import read_jsonl

    await rt.engine.start()
    bad = 0
    chunk: list[Event] = []
    pending: list[asyncio.Task[object]] = []
    for item in read_jsonl(path):
        if isinstance(item, Problem):
            bad += 1
            err.print(escape(str(item)))
            continue
        chunk.append(item)
        if len(chunk) >= _CHUNK:
            pending.append(asyncio.create_task(rt.engine.submit(chunk)))
            chunk = []
            # Let the engine work while the file is read; keep a bounded number in flight.
            if len(pending) >= 8:
                await pending.pop(0)
    if chunk:
        pending.append(asyncio.create_task(rt.engine.submit(chunk)))
    await asyncio.gather(*pending)
    await rt.engine.close()
    return bad


def _would_table(runs: list[Run]) -> Table:
    from rich.table import Table

    table = Table(title="dry-run: what would have run")
    for column in ("rule", "target", "step", "parameters", "note"):
        table.add_column(column, overflow="fold")
    for run in runs:
        if not run.steps:
            table.add_row(run.rule, run.target, "-", "", escape(run.message))
        for step in run.steps:
            table.add_row(run.rule, run.target, step.action, escape(str(step.params)),
                          escape(step.message))  # fmt: skip
    return table
