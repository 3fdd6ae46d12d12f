"""A service's `switch:` steps, checked and compiled like a rule's `do:`, at file:line:col."""

from __future__ import annotations

import re
from typing import Any

from opsmedic.config.located import Located, unknown_name
from opsmedic.config.refs import config_names
from opsmedic.config.services import DEFAULT_ENVIRONMENT, NAME_PATTERN
from opsmedic.errors import Problem
from opsmedic.plugins import Registry
from opsmedic.rules.loader import load_steps
from opsmedic.rules.model import Step

# What a switch step's templates see besides a rule's own variables.
SWITCH_VARIABLES = ("service", "version", "previous", "env")
SwitchSteps = dict[tuple[str, str], list[Step]]


def switch_steps(
    data: dict[str, Any], located: Located, registry: Registry
) -> tuple[SwitchSteps, list[Problem]]:
    """(service, env) → its compiled switch steps, from the raw config; and every problem.

    Read from the raw mapping, so a service with another error still has its steps checked."""
    names = config_names(data)
    services = data.get("services")
    steps: SwitchSteps = {}
    problems: list[Problem] = []
    for name, raw in services.items() if isinstance(services, dict) else []:
        if not isinstance(raw, dict):
            continue
        loc = ("services", str(name), "switch")
        # A rolling service's steps run once per instance, and see which one.
        variables = SWITCH_VARIABLES + (("instance",) if raw.get("strategy") == "rolling" else ())
        own, found = load_steps(raw.get("switch"), loc, located, registry, names, variables)
        problems += found
        envs = raw.get("environments")
        envs = envs if isinstance(envs, dict) and envs else {DEFAULT_ENVIRONMENT: {}}
        for env, env_raw in envs.items():
            env_switch = env_raw.get("switch") if isinstance(env_raw, dict) else None
            if env_switch is None:
                steps[(str(name), str(env))] = own
                continue
            env_loc = ("services", str(name), "environments", str(env), "switch")
            env_steps, found = load_steps(env_switch, env_loc, located, registry, names, variables)
            problems += found
            steps[(str(name), str(env))] = env_steps
    return steps, problems


def service_problems(data: dict[str, Any], located: Located) -> list[Problem]:
    """Service names that cannot go into paths and labels, and `depends_on` entries that name
    no other service or go round in a cycle; each at its place in the file."""
    services = data.get("services")
    services = services if isinstance(services, dict) else {}
    problems = [
        located.problem(("services", str(name)), f"service name {name!r}: use letters, digits, "
                        ". _ - (up to 100)", at_key=True)
        for name in services if not re.match(NAME_PATTERN, str(name))
    ]  # fmt: skip
    deps = {
        str(n): _listed(s.get("depends_on")) for n, s in services.items() if isinstance(s, dict)
    }
    for name, listed in deps.items():
        for i, dep in enumerate(listed):
            here = ("services", name, "depends_on", i)
            if dep not in deps or dep == name:
                known = [n for n in deps if n != name]
                message = (
                    unknown_name("service", str(dep), known) + ": depends_on names another service"
                )
                problems.append(located.problem(here, message))
            elif _reaches(deps, dep, name):
                problems.append(located.problem(here, f"{name} → {dep} → … → {name}: a cycle"))
    return problems


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _reaches(deps: dict[str, list[Any]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name in deps and name not in seen:
            seen.add(name)
            todo.extend(str(d) for d in deps[name])
    return False
