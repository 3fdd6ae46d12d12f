"""`opsmedic explain EVENT_ID`: per rule, per condition, why a stored event ran what it ran."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from opsmedic.cli import ConfigOpt, app, out
from opsmedic.cli.output import Cell, JsonOpt, plain, print_json, print_table
from opsmedic.errors import NotFoundError

if TYPE_CHECKING:
    from opsmedic.engine.explain import RuleVerdict
    from opsmedic.model import Event


@app.command()
def explain(
    event_id: Annotated[str, typer.Argument(help="an event id or a unique part of it (≥ 4 chars)")],
    rules: Annotated[Path | None, typer.Option(help="rules path (default: from config)")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Why a stored event did or did not start runs: every rule, each condition, the outcome of
    each match, and the history behind it (the `for:` clock, throttles, limits)."""
    from opsmedic.cli.history import open_store
    from opsmedic.config.loader import load_config
    from opsmedic.engine.explain import explain_stored
    from opsmedic.rules.loader import load_rules
    from opsmedic.runtime import build_registry, find_config

    store = open_store(config)
    try:
        event = store.get_event(event_id)
    except NotFoundError as exc:
        raise typer.BadParameter(str(exc), param_hint="EVENT_ID") from None
    registry = build_registry()
    rules_path = rules or load_config(find_config(config), registry.settings())[0].rules_dir
    verdicts = explain_stored(load_rules(rules_path, registry), event, store)
    if as_json:
        print_json(explanation(event, verdicts))
        return
    print_explanation(event, verdicts)


def explanation(event: Event, verdicts: list[RuleVerdict]) -> dict[str, Any]:
    """The `explain --json` shape (docs/decisions.md), also one line of `replay --explain`."""
    from opsmedic.views import EventView

    return {"event": EventView.of(event).model_dump(), "rules": [v.as_dict() for v in verdicts]}


def print_explanation(event: Event, verdicts: list[RuleVerdict]) -> None:
    """Two tables: each condition tested up to a rule's first failure, then each match's
    outcome with its history."""
    from opsmedic.cli.history import when

    head = f"event {event.id}: {event.source}/{event.kind} {event.target} {event.status}"
    out.print(escape(f"{head} value={event.value!r} at {when(event.time)} UTC"))
    rows: list[list[Cell]] = []
    for verdict in verdicts:
        for condition in verdict.conditions:
            rows.append([verdict.rule, condition.condition, _yes(condition.holds),
                         repr(condition.actual)])  # fmt: skip
            if not condition.holds:
                break  # the planner stops at the first failure too
    print_table("conditions", ["rule", "condition", "holds", "actual"], rows)
    matched = [v for v in verdicts if v.match]
    outcome_rows: list[list[Cell]] = [
        [v.rule, str(v.outcome or "-"), v.detail, "\n".join(v.history)] for v in matched
    ]
    print_table("matches", ["rule", "outcome", "why", "history"], outcome_rows,
                empty=f"no rule matched (of {len(verdicts)})")  # fmt: skip
    if plain():
        sys.stdout.write("\n")  # a blank line before the next event's tables (replay)


def _yes(holds: bool) -> Text:
    return Text("yes", "green") if holds else Text("no", "red")
