"""`opsmedic rules run NAME`: run a rule's steps by hand, each step's outcome as it ends."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from opsmedic.cli import ConfigOpt, err, out
from opsmedic.cli.actor import actor
from opsmedic.cli.history import state_cell
from opsmedic.cli.output import JsonOpt, cell, print_json
from opsmedic.cli.setup import rules_app
from opsmedic.errors import ConfigError, Problem

if TYPE_CHECKING:
    from opsmedic.model import Event, Run, StepRecord

# The fields `--set` may give: the generic event's, and labels.NAME / payload.NAME.
SET_FIELDS = ("source", "kind", "resource", "host", "severity", "status", "value", "fingerprint")


@rules_app.command("run")
def run_rule(
    name: Annotated[str, typer.Argument(help="the rule's name (a disabled one needs --force)")],
    event_file: Annotated[
        Path | None,
        typer.Option("--event", metavar="FILE", help="the event as JSON (POST /api/v1/events)"),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="an event field (source, kind, host, resource, severity, status, value, "
            "labels.NAME, payload.NAME), over --event or the default event; repeatable",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="render and record the steps, act on nothing")] = (
        False
    ),
    force: Annotated[bool, typer.Option(help="run a disabled rule; recorded as forced")] = False,
    as_user: Annotated[
        str | None, typer.Option("--as", help="who to record (with your user name; default: that)")
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Run a rule's steps now, by hand, through the live checks: protected targets, the
    rule's limit and its in-flight lock. Recorded as a manual run; no incident is made.
    Exit 0 when the run succeeded (or, dry, was rendered), 1 when it did not."""
    import asyncio
    import time

    from opsmedic.engine.manual import RunAsk, event_by_hand
    from opsmedic.runtime import build, build_registry, find_config

    data = _event_data(event_file, sets or [])
    try:
        event = event_by_hand(data, time.time())
    except ValueError as exc:
        raise _bad_event(event_file, exc) from None
    started_by = f"cli {actor(as_user)}"
    # Direct on the store, as `deploy` and `rollback` are: no engine loop is started here, so
    # no crash recovery runs against the runs of a service that may be running (see docs).
    rt = build(find_config(config), registry=build_registry())
    manual, store = rt.engine.manual, rt.store
    assert manual is not None  # build() opens the store
    assert store is not None

    # The events a step announces (a recheck's result) are stored, not planned: no engine
    # loop runs in this process to plan them.
    def announce(events: list[Event]) -> None:
        store.record(events, [])

    rt.engine.executor.announce = announce
    stream = err if as_json else out
    ask = RunAsk(name, event, started_by, force=force, dry_run=dry_run)

    async def main() -> Run:
        # The run carries this process as its owner, its lease renewed while it runs: a
        # service starting meanwhile leaves it alone (docs/engine.md, crash recovery).
        leases = rt.engine.leases
        if leases is not None:
            leases.start()
        try:
            run, task = await manual.start(ask, lambda step: _print_step(stream, step))
            stream.print(Text(f"run {run.id} of {run.rule} on {run.target}: started by "
                              f"{run.started_by}{' (forced)' if run.forced else ''}"))  # fmt: skip
            return await task
        finally:
            if leases is not None:
                await leases.close()

    run = asyncio.run(main())
    if as_json:
        from opsmedic.views import RunView

        print_json(RunView.of(run).model_dump())
    else:
        out.print(Text.assemble(state_cell(run.state), f" {run.message} ({run.id})"))
    if run.state not in ("succeeded", "skipped"):
        raise typer.Exit(1)


def _print_step(stream: Any, step: StepRecord) -> None:
    part = " (on_failure)" if step.on_failure else ""
    line = Text.assemble(
        "  ", state_cell(step.state), f" {step.action}{part} ({step.duration_ms or 0:.0f} ms)",
        f": {step.message}" if step.message else "",
    )  # fmt: skip
    stream.print(line)
    if step.output:
        stream.print(cell(step.output.rstrip("\n")), style="dim")


def _event_data(event_file: Path | None, sets: list[str]) -> dict[str, Any]:
    """The event's JSON: the file's object (if any), with each `--set` over it."""
    import orjson

    data: dict[str, Any] = {}
    if event_file is not None:
        try:
            parsed = orjson.loads(event_file.read_bytes())
        except OSError as exc:
            raise typer.BadParameter(
                f"{event_file}: cannot read: {exc.strerror or exc}", param_hint="--event"
            ) from None
        except orjson.JSONDecodeError as exc:
            raise typer.BadParameter(f"{event_file}: not JSON: {exc}",
                                     param_hint="--event") from None  # fmt: skip
        if not isinstance(parsed, dict):
            raise typer.BadParameter(f"{event_file}: one event object, not "
                                     f"{type(parsed).__name__}", param_hint="--event")  # fmt: skip
        data = parsed
    for item in sets:
        key, eq, value = item.partition("=")
        head, dot, sub = key.partition(".")
        if not eq or not (key in SET_FIELDS or (head in ("labels", "payload") and dot and sub)):
            raise typer.BadParameter(
                f"{item!r}: use KEY=VALUE with KEY one of {', '.join(SET_FIELDS)}, labels.NAME "
                "or payload.NAME",
                param_hint="--set",
            )
        if dot:
            section = data.setdefault(head, {})
            if not isinstance(section, dict):
                raise typer.BadParameter(f"{item!r}: the event's {head} is not an object",
                                         param_hint="--set")  # fmt: skip
            section[sub] = value
        else:
            data[key] = _number(value) if key == "value" else value
    return data


def _number(text: str) -> float | str:
    """`value=91.5` is the number an ingested event would carry; other text stays text."""
    try:
        return float(text)
    except ValueError:
        return text


def _bad_event(event_file: Path | None, exc: ValueError) -> Exception:
    """An invalid event: at the file:line:col of the field in --event FILE, else the usage
    error of --set (exit 2 either way)."""
    if event_file is None:
        return typer.BadParameter(f"the event: {exc}", param_hint="--set")
    from opsmedic.config.located import load_yaml

    field = str(exc).partition(": ")[0]
    try:
        # JSON is YAML's flow style: the YAML reader gives each value's place.
        line, col = load_yaml(event_file.read_text(), str(event_file)).where(
            tuple(field.split("."))
        )
    except (ConfigError, OSError, UnicodeDecodeError):
        line, col = 1, 1
    return ConfigError([Problem(str(event_file), line, col, "", str(exc))])
