"""Load a rules directory (or file): every problem located at file:line:col, all-or-nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from opsmedic.config.located import Loc, Located, load_yaml_file, validation_problems
from opsmedic.config.types import parse_duration
from opsmedic.errors import ConfigError, Problem
from opsmedic.plugins import Registry, build_registry, unknown_name
from opsmedic.rules.conditions import ConditionError, compile_when
from opsmedic.rules.model import PER_FIELDS, STEP_OPTIONS, Rule, RuleSpec, Step
from opsmedic.rules.ruleset import RuleSet
from opsmedic.templating import UnsafeTemplate, is_template


def rule_files(path: Path) -> list[Path]:
    """The YAML files a rules path names, in the order their rules are evaluated."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def load_rules(path: Path, registry: Registry | None = None) -> RuleSet:
    """A RuleSet from every file under `path`; any problem anywhere raises one ConfigError."""
    registry = registry or build_registry()
    if not path.exists():
        raise ConfigError([Problem(str(path), 1, 1, "", "rules path does not exist")])
    rules: list[Rule] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    files = rule_files(path)
    for file in files:
        try:
            located = load_yaml_file(file)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        data = located.data
        if data is None:
            continue
        if not isinstance(data, list):
            problems.append(located.problem((), "a rule file holds a list of rules (- name: ...)"))
            continue
        for i, item in enumerate(data):
            rule = _load_rule(item, i, located, registry, problems, len(rules))
            if rule is None:
                continue
            if rule.name in seen:
                problems.append(
                    located.problem((i, "name"), f"duplicate rule name, first in {seen[rule.name]}")
                )
                continue
            seen[rule.name] = f"{located.file}:{rule.line}"
            rules.append(rule)
    if problems:
        raise ConfigError(problems)
    return RuleSet(rules, [str(f) for f in files])


def _load_rule(
    item: Any, i: int, located: Located, registry: Registry, problems: list[Problem], index: int
) -> Rule | None:
    before = len(problems)
    try:
        spec = RuleSpec.model_validate(item)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, located, RuleSpec, prefix=(i,)))
        return None
    when = dict(spec.when)
    for_s = 0.0
    if "for" in when:
        try:
            for_s = parse_duration(when.pop("for"))
        except ValueError as exc:
            problems.append(located.problem((i, "when", "for"), str(exc)))
    try:
        condition = compile_when(when, (i, "when"))
    except ConditionError as exc:
        problems.append(located.problem(exc.loc, exc.message))
    steps = _steps(spec.do, (i, "do"), located, registry, problems)
    on_failure = _steps(spec.on_failure, (i, "on_failure"), located, registry, problems)
    for section in ("throttle", "limit"):
        sub = getattr(spec, section)
        for j, name in enumerate(sub.per if sub else []):
            if name not in PER_FIELDS and not name.startswith("labels."):
                msg = f"unknown field {name!r} (use {', '.join(PER_FIELDS)} or labels.NAME)"
                problems.append(located.problem((i, section, "per", j), msg))
    if not spec.enabled or len(problems) > before:
        return None
    return Rule(
        name=spec.name, index=index, condition=condition, steps=steps, for_s=for_s,
        on_failure=on_failure, throttle=spec.throttle, limit=spec.limit, queue=spec.queue,
        dry_run=spec.dry_run, description=spec.description, file=located.file,
        line=located.where((i,))[0],
    )  # fmt: skip


def _steps(
    items: list[Any], loc: Loc, located: Located, registry: Registry, problems: list[Problem]
) -> list[Step]:
    steps = []
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
        if action not in registry.actions:
            problems.append(
                located.problem(
                    (*here, action), unknown_name("action", action, registry.actions), at_key=True
                )
            )
            continue
        raw = item[action] if item[action] is not None else {}
        _check_params(registry.actions[action].params, raw, (*here, action), located, problems)
        step = Step(action=action, raw=raw, path=f"{located.file}:{located.where(here)[0]}")
        _step_options(step, item, here, located, problems)
        steps.append(step)
    return steps


def _check_params(
    model: Any, raw: Any, loc: Loc, located: Located, problems: list[Problem]
) -> None:
    """Validate raw params now; a `{{ … }}` value of another type is judged once rendered."""
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        located_problems = validation_problems(exc, located, model, prefix=loc)
        for err, problem in zip(exc.errors(include_url=False), located_problems, strict=True):
            # A templated value is judged once rendered, except a verdict on the template
            # itself (run_command's `shell` quoting check): that one stands now.
            value = _dig(raw, tuple(err["loc"]))
            deferred = not isinstance(err.get("ctx", {}).get("error"), UnsafeTemplate)
            if not (deferred and isinstance(value, str) and is_template(value)):
                problems.append(problem)


def _dig(raw: Any, loc: Loc) -> Any:
    for part in loc:
        in_dict = isinstance(raw, dict) and part in raw
        if in_dict or (isinstance(raw, list) and isinstance(part, int) and part < len(raw)):
            raw = raw[part]
        else:
            return None
    return raw


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
