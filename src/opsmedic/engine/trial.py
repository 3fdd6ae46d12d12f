"""An event tried on the rules, acting on nothing: `opsmedic rules test` and the dashboard's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsmedic.config.located import MAX_DEPTH, Located, load_yaml, too_deep
from opsmedic.engine.explain import plain_value
from opsmedic.errors import ConfigError, Problem
from opsmedic.model import Event, StepRecord
from opsmedic.rules.model import Rule
from opsmedic.rules.ruleset import RuleSet
from opsmedic.sources.events import parse_event
from opsmedic.views import EventView, StepView

# What a matching rule's steps would start with (Executor.preview); None: not shown.
Preview = Callable[[Rule, Event], list[StepRecord]]


def try_event(
    ruleset: RuleSet, item: Any, preview: Preview | None = None, only: str = ""
) -> dict[str, Any]:
    """One event's verdicts as plain data, the `rules test --json` shape (docs/cli.md): per
    rule (`only` that one, when given) whether it matches, else its first failed condition;
    with `preview`, a match's `steps` as rendered."""
    if too_deep(item):  # refused before anything walks it (located reading included)
        return {"error": f"nested deeper than {MAX_DEPTH} levels"}
    try:
        event = parse_event(item)
    except ValueError as exc:
        return {"error": str(exc)}
    verdicts = []
    for rule, failed in ruleset.explain(event):
        if only and rule.name != only:
            continue
        verdict = {
            "rule": rule.name, "match": failed is None,
            "waits_for_s": (rule.for_s or None) if failed is None else None,
            "failed_condition": None if failed is None else failed.describe,
            "actual": None if failed is None else plain_value(failed.actual(event)),
        }  # fmt: skip
        if preview is not None and failed is None:
            steps = preview(rule, event)
            verdict["steps"] = [StepView.model_validate(r).model_dump() for r in steps]
        verdicts.append(verdict)
    return {"event": EventView.of(event).model_dump(), "target": event.target, "rules": verdicts}


def event_problems(
    results: list[dict[str, Any]], text: str, file: str, listed: bool
) -> list[Problem]:
    """Each invalid event of `results` (read from `text`, a list when `listed`) as an error at
    the file:line:col where it begins."""
    if not any("error" in result for result in results):
        return []
    try:
        # JSON is YAML's flow style: the YAML reader gives each value's place.
        located = load_yaml(text, file)
    except ConfigError:
        located = Located(file, None)  # JSON that YAML does not read: the file's start
    problems = []
    for n, result in enumerate(results, start=1):
        if "error" in result:
            line, col = located.where((n - 1,) if listed else ())
            problems.append(Problem(file, line, col, "", f"event {n}: {result['error']}"))
    return problems
