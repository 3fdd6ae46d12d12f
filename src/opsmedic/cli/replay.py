"""`opsmedic replay`: events from a file through the rules and the engine, then exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from opsmedic.cli import ConfigOpt, app, err, out
from opsmedic.cli.output import Cell, plain, print_json, print_table
from opsmedic.errors import Problem
from opsmedic.model import Event, Run

if TYPE_CHECKING:
    from opsmedic.engine.loop import Accepted
    from opsmedic.runtime import Runtime
    from opsmedic.sources.events import Numbered

# The runtime (config, rules, engine, store) and asyncio are imported by the commands that
# use them: every command module is imported for `opsmedic --help`, which must not pay for it.

_CHUNK = 500  # events per submission: large enough to batch, small enough to stream
_ELSEWHERE = "replay an export into another store, or with --dry-run"


class Format(StrEnum):
    """What `replay --format` reads: opsmedic's own events, or one webhook body per line of a
    tool the API receives (the built-in webhooks, sources/webhooks BUILTIN_WEBHOOKS; literal
    so `--help` imports no mapper)."""

    OPSMEDIC = "opsmedic"
    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    DATADOG = "datadog"
    OPSGENIE = "opsgenie"
    PAGERDUTY = "pagerduty"
    DYNATRACE = "dynatrace"


@app.command()
def replay(
    events: Annotated[
        Path, typer.Argument(help="a JSON-lines file: one event (or webhook body) per line")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print what would run; run nothing, store nothing")
    ] = False,
    assume_failed: Annotated[
        bool,
        typer.Option(
            "--assume-failed",
            help="with --dry-run: assume every run fails, show its on_failure steps",
        ),
    ] = False,
    fmt: Annotated[
        Format,
        typer.Option("--format", help="opsmedic events, or raw webhook bodies of that tool"),
    ] = Format.OPSMEDIC,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the summary and runs as JSON")
    ] = False,
    rules: Annotated[Path | None, typer.Option(help="rules path (default: from config)")] = None,
    explain: Annotated[
        bool,
        typer.Option("--explain", help="per event: each rule, each condition, each outcome"),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Feed events through rules and actions in time order; exit when every run has finished.

    A bad line is reported with its line number and skipped; the rest is processed.
    """
    import asyncio

    from opsmedic.runtime import build, build_registry, find_config

    if not events.is_file():
        raise typer.BadParameter(f"{events} is not a file", param_hint="EVENTS")
    if assume_failed and not dry_run:
        raise typer.BadParameter("only with --dry-run (a real replay knows its outcomes)",
                                 param_hint="--assume-failed")  # fmt: skip
    rt = build(
        find_config(config),
        rules_path=rules,
        dry_run=dry_run,
        with_store=not dry_run,
        registry=build_registry(),
    )
    rt.engine.executor.assume_failed = assume_failed
    runs: list[Run] = []
    if dry_run or as_json:  # kept only when shown: a long replay's memory stays flat
        rt.engine.on_finished = runs.append
    explained: list[dict[str, Any]] = []
    shown = _explainer(rt, explained if as_json else None) if explain else None
    read = asyncio.run(_replay(rt, events, fmt, shown))
    summary = _summary(rt, events, read, dry_run, assume_failed)
    if as_json:
        from opsmedic.views import RunView

        # The public shape of a run, as `runs --json` and the API give it (docs/api.md).
        extra = {"explained": explained} if explain else {}
        print_json({**summary, "runs": [RunView.of(r).model_dump() for r in runs], **extra})
        return
    if dry_run:
        _print_would_run(runs)
    out.print(escape(_summary_line(summary)))


def _summary(
    rt: Runtime, path: Path, read: Replayed, dry_run: bool, assume_failed: bool
) -> dict[str, Any]:
    """The replay's figures: `--json` prints them as they are, the summary line from them."""
    stats = rt.engine.stats()
    assumed = ("failed" if assume_failed else "succeeded") if dry_run else None
    return {
        "file": str(path), "events": read.events, "dry_run": dry_run, "assumed": assumed,
        "bad_lines": [{"line": p.line, "reason": p.message.removeprefix("skipped: ")}
                      for p in read.bad],
        "finished": dict(sorted(stats["finished"].items())),
        "suppressed": {"throttle": stats["suppressed_throttle"],
                       "in_flight": stats["suppressed_in_flight"],
                       "for": stats["pending_for"], "limit": stats["limited"],
                       "held": stats["held"]},
        # Runs that stopped before a step with `approve:` (ended skipped, not left waiting).
        "needs_approval": rt.engine.approvals.not_waited,
    }  # fmt: skip


def _summary_line(s: dict[str, Any]) -> str:
    runs = ", ".join(f"{n} {state}" for state, n in s["finished"].items()) or "none"
    sup = s["suppressed"]
    line = (
        f"replayed {s['events']} events from {s['file']} ({len(s['bad_lines'])} bad lines "
        f"skipped): runs {runs}; suppressed: {sup['throttle']} by throttle, {sup['in_flight']} "
        f"in flight, {sup['for']} waiting for `for:`, {sup['limit']} over limit"
    )
    if sup["held"]:  # a failing dependency (docs/rules.md), a silence, window or inhibit rule
        line += f", {sup['held']} held"
    if s["needs_approval"]:
        line += f"; {s['needs_approval']} ended before a step that needs approval (skipped)"
    if s["assumed"] is not None:  # a dry run cannot know outcomes: say which one it assumed
        line += f"; dry-run: every run assumed to have {s['assumed']}"
    return line


@dataclass(slots=True)
class Replayed:
    """What a replay read: its events (escalations it caused not counted), its bad lines."""

    events: int = 0
    bad: list[Problem] = field(default_factory=list)


Explainer = Callable[[list[Event], list["Accepted"]], None]


def _explainer(rt: Runtime, kept: list[dict[str, Any]] | None) -> Explainer:
    """What `--explain` does with each submission's replies: print each event's explanation,
    or keep it for the JSON (`kept`), as `opsmedic explain` shows a stored one."""
    from opsmedic.cli.explain import explanation, print_explanation
    from opsmedic.engine.explain import explain

    def show(events: list[Event], accepted: list[Accepted]) -> None:
        for event, reply in zip(events, accepted, strict=True):
            verdicts = explain(rt.engine.planner.ruleset, event,
                               {d.rule: d for d in reply.decisions})  # fmt: skip
            if kept is None:
                print_explanation(event, verdicts)
            else:
                kept.append(explanation(event, verdicts))

    return show


async def _replay(
    rt: Runtime, path: Path, fmt: str = Format.OPSMEDIC, explain: Explainer | None = None
) -> Replayed:
    """Submit the file's events in order; bad lines are reported on stderr and skipped."""
    import asyncio

    from opsmedic.sources.events import read_jsonl, read_webhook_lines

    # Each event is planned once the runs of earlier events for its alert have finished, as
    # they would have live by its time: replay and `run` decide the same (docs/cli.md#replay).
    rt.engine.in_event_order = True
    rt.engine.approvals.unattended = True  # no run left waiting for a human after the replay
    await rt.engine.start()
    read = Replayed()
    chunk: list[Numbered] = []
    pending: list[asyncio.Task[object]] = []
    if fmt == Format.OPSMEDIC:
        items = read_jsonl(path)
    else:
        items = read_webhook_lines(path, rt.registry.webhook(fmt))
    for item in items:
        if isinstance(item, Problem):
            _skip(read, item)
            continue
        chunk.append(item)
        if len(chunk) >= _CHUNK:
            if fresh := await _not_stored(rt, path, chunk, read):
                pending.append(asyncio.create_task(_submit(rt, fresh, explain)))
            chunk = []
            # Let the engine work while the file is read; keep a bounded number in flight.
            if len(pending) >= 8:
                await pending.pop(0)
    if chunk and (fresh := await _not_stored(rt, path, chunk, read)):
        pending.append(asyncio.create_task(_submit(rt, fresh, explain)))
    await asyncio.gather(*pending)
    await rt.engine.close()
    return read


async def _submit(rt: Runtime, events: list[Event], explain: Explainer | None) -> None:
    accepted = await rt.engine.submit(events)
    if explain is not None:
        explain(events, accepted)


def _skip(read: Replayed, problem: Problem) -> None:
    read.bad.append(problem)
    err.print(escape(str(problem)))


async def _not_stored(
    rt: Runtime, path: Path, chunk: list[Numbered], read: Replayed
) -> list[Event]:
    """The chunk's events but those whose id the store already holds, each skipped with its
    line named: an export replayed into the store it came from. Fed in, one such event
    would make the store refuse its whole batch (the ids are the events' primary keys)."""
    import asyncio

    stored: set[str] = set()
    if rt.store is not None:  # a dry run stores nothing, so nothing can clash
        stored = await asyncio.to_thread(rt.store.stored_event_ids, [e.id for _, e in chunk])
    fresh: list[Event] = []
    for n, event in chunk:
        if event.id not in stored:
            fresh.append(event)
            continue
        why = f"skipped: event {event.id} is already in the store ({_ELSEWHERE})"
        _skip(read, Problem(str(path), n, 1, "", why))
    read.events += len(fresh)
    return fresh


def _print_would_run(runs: list[Run]) -> None:
    """What a dry run would have run, one row per step: the CLI's shared table, so a pipe
    gets tab-separated lines as from every other listing."""
    rows: list[list[Cell]] = []
    for run in runs:
        if not run.steps:
            rows.append([run.rule, run.target, "-", "", run.message])
        for step in run.steps:
            rows.append([run.rule, run.target, step.action, str(step.params), step.message])
    print_table("dry-run: what would have run", ["rule", "target", "step", "parameters", "note"],
                rows)  # fmt: skip
    if plain():
        sys.stdout.write("\n")  # a blank line ends the rows before the summary line
