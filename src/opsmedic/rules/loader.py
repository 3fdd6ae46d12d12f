"""Load a rules directory (or file): every problem located at file:line:col, all-or-nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from opsmedic.config.located import Loc, Located, load_yaml_file, unknown_name, validation_problems
from opsmedic.config.refs import ConfigNames
from opsmedic.config.types import parse_duration
from opsmedic.errors import ConfigError, Problem
from opsmedic.plugins import Registry
from opsmedic.rules.approval import parse_approve
from opsmedic.rules.conditions import ConditionError, compile_when
from opsmedic.rules.model import PER_FIELDS, STEP_OPTIONS, Rule, RuleSpec, Step
from opsmedic.rules.params import param_problems
from opsmedic.rules.ruleset import RuleSet


def rule_files(path: Path) -> list[Path]:
    """The YAML files a rules path names, in the order their rules are evaluated."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def load_rules(
    path: Path, registry: Registry, names: ConfigNames | None = None,
    warnings: list[Problem] | None = None,
) -> RuleSet:  # fmt: skip
    """A RuleSet from every file under `path`; any problem anywhere raises one ConfigError.

    With `names` (the config's notify targets, ssh hosts, probes…), parameters that name a
    config entry are checked against them; without, they are judged when the step runs.
    `warnings`, where given, gets what is valid but likely to fail (`check` prints them): a
    flag `names` does not have.
    """
    if not path.exists():
        raise ConfigError([Problem(str(path), 1, 1, "", "rules path does not exist")])
    rules: list[Rule] = []
    disabled: list[Rule] = []  # kept for runs by hand with --force (engine/manual.py)
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    files = rule_files(path)
    for file in files:
        try:
            located = load_yaml_file(file)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(located.problems)
        data = located.data
        if data is None:
            continue
        if not isinstance(data, list):
            problems.append(located.problem((), "a rule file holds a list of rules (- name: ...)"))
            continue
        for i, item in enumerate(data):
            checks = _Checks(registry, names, problems, warnings=warnings)
            rule = _load_rule(item, i, located, checks, len(rules))
            # Judged on the name as written, so a rule with other problems still claims its
            # name: otherwise fixing those would reveal the duplicate only in the next round.
            name = _written_name(item)
            if name is not None and name in seen:
                problems.append(
                    located.problem((i, "name"), f"duplicate rule name, first in {seen[name]}")
                )
                continue
            if name is not None:
                seen[name] = f"{located.file}:{located.where((i,))[0]}"
            if rule is not None:
                (rules if rule.enabled else disabled).append(rule)
    if problems:
        raise ConfigError(problems)
    return RuleSet(rules, [str(f) for f in files], disabled=disabled)


def _written_name(item: Any) -> str | None:
    """The name of a rule that is loaded or refused, None for a disabled or nameless one."""
    if not isinstance(item, dict) or item.get("enabled") is False:
        return None
    name = item.get("name")
    return name if isinstance(name, str) else None


@dataclass(slots=True)
class _Checks:
    """What every rule of a load is checked against, and where its problems go."""

    registry: Registry
    names: ConfigNames | None
    problems: list[Problem]
    # Template variables beyond a rule's own (a service's switch steps get `version`…).
    variables: tuple[str, ...] = ()
    warnings: list[Problem] | None = None  # None: nobody reads them, so none are sought


def load_steps(
    items: Any,
    loc: Loc,
    located: Located,
    registry: Registry,
    names: ConfigNames | None,
    variables: tuple[str, ...] = (),
) -> tuple[list[Step], list[Problem]]:
    """Steps written like a rule's `do:` anywhere in a located file (a service's `switch:`),
    checked the same way: (the steps, every problem at file:line:col)."""
    problems: list[Problem] = []
    listed = items if isinstance(items, list) else []
    steps = _steps(listed, loc, located, _Checks(registry, names, problems, variables))
    _no_approval(steps, loc, located, problems)
    return steps, problems


def _load_rule(item: Any, i: int, located: Located, checks: _Checks, index: int) -> Rule | None:
    problems = checks.problems
    before = len(problems)
    try:
        spec: RuleSpec | None = RuleSpec.model_validate(item)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, located, RuleSpec, prefix=(i,)))
        spec = None
    # `when`, `do` and `on_failure` are checked from the raw rule even when another field is
    # wrong, so one run of `check` shows every problem of the rule.
    raw = item if isinstance(item, dict) else {}
    when = dict(raw["when"]) if isinstance(raw.get("when"), dict) else {}
    for_s = 0.0
    if "for" in when:
        try:
            for_s = parse_duration(when.pop("for"))
        except ValueError as exc:
            problems.append(located.problem((i, "when", "for"), str(exc)))
    errors: list[ConditionError] = []
    condition = compile_when(when, (i, "when"), errors=errors, booleans=located.booleans)
    problems.extend(located.problem(e.loc, e.message) for e in errors)
    steps = _steps(_listed(raw, "do"), (i, "do"), located, checks)
    on_failure = _steps(_listed(raw, "on_failure"), (i, "on_failure"), located, checks)
    _no_approval(on_failure, (i, "on_failure"), located, problems)
    if spec is None:
        return None
    for section in ("throttle", "limit"):
        sub = getattr(spec, section)
        for j, name in enumerate(sub.per if sub else []):
            if name not in PER_FIELDS and not name.startswith("labels."):
                msg = f"unknown field {name!r} (use {', '.join(PER_FIELDS)} or labels.NAME)"
                problems.append(located.problem((i, section, "per", j), msg))
    if len(problems) > before:
        return None
    return Rule(
        name=spec.name, index=index, condition=condition, steps=steps, for_s=for_s,
        on_failure=on_failure, throttle=spec.throttle, limit=spec.limit, queue=spec.queue,
        dry_run=spec.dry_run, description=spec.description, file=located.file,
        line=located.where((i,))[0], on_acknowledge=spec.on_acknowledge, enabled=spec.enabled,
    )  # fmt: skip


def _listed(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    return value if isinstance(value, list) else []


def _steps(items: list[Any], loc: Loc, located: Located, checks: _Checks) -> list[Step]:
    steps = []
    problems, actions = checks.problems, checks.registry.actions
    for j, item in enumerate(items):
        here = (*loc, j)
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, dict):
            problems.append(
                located.problem(here, "a step is a mapping like `- run_command: {...}`")
            )
            continue
        names = [k for k in item if k not in STEP_OPTIONS]
        if len(names) != 1:
            problems.append(located.problem(here, f"a step names exactly one action, got {names}"))
            continue
        action = names[0]
        if action not in actions:
            problems.append(
                located.problem(
                    (*here, action), unknown_name("action", action, actions), at_key=True
                )
            )
            continue
        raw = item[action] if item[action] is not None else {}
        problems.extend(
            param_problems(
                actions[action].params,
                raw,
                (*here, action),
                located,
                checks.names,
                checks.variables,
                checks.warnings,
            )
        )
        step = Step(action=action, raw=raw, path=f"{located.file}:{located.where(here)[0]}")
        _step_options(step, item, here, located, problems)
        steps.append(step)
    return steps


def _no_approval(steps: list[Step], loc: Loc, located: Located, problems: list[Problem]) -> None:
    """`approve:` pauses a rule's run between its `do:` steps; a failure's clean-up or a
    release's switch has nobody to wait for, so there it is refused, not ignored."""
    for j, step in enumerate(steps):
        if step.approve is not None:
            where = (*loc, j, "approve")
            problems.append(located.problem(where, "only a rule's do: steps can wait for approval"))


def _step_options(
    step: Step, item: dict[str, Any], loc: Loc, located: Located, problems: list[Problem]
) -> None:
    if "continue_on_failure" in item:
        if not isinstance(item["continue_on_failure"], bool):
            problems.append(located.problem((*loc, "continue_on_failure"), "must be true or false"))
        else:
            step.continue_on_failure = item["continue_on_failure"]
    if "timeout" in item:
        try:
            step.timeout = parse_duration(item["timeout"])
        except ValueError as exc:
            problems.append(located.problem((*loc, "timeout"), str(exc)))
    if "max_attempts" in item:
        value = item["max_attempts"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 20:
            problems.append(
                located.problem((*loc, "max_attempts"), "must be a whole number from 1 to 20")
            )
        else:
            step.max_attempts = value
    if "approve" in item:
        step.approve, wrong = parse_approve(item["approve"], (*loc, "approve"), located)
        problems.extend(wrong)
