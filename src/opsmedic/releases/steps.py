"""A service's `switch:` steps, checked and compiled like a rule's `do:`, at file:line:col."""

from __future__ import annotations

from typing import Any

from opsmedic.config.located import Located
from opsmedic.config.refs import config_names
from opsmedic.config.services import DEFAULT_ENVIRONMENT
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
        own, found = load_steps(raw.get("switch"), loc, located, registry, names, SWITCH_VARIABLES)
        problems += found
        envs = raw.get("environments")
        envs = envs if isinstance(envs, dict) and envs else {DEFAULT_ENVIRONMENT: {}}
        for env, env_raw in envs.items():
            env_switch = env_raw.get("switch") if isinstance(env_raw, dict) else None
            if env_switch is None:
                steps[(str(name), str(env))] = own
                continue
            env_loc = ("services", str(name), "environments", str(env), "switch")
            env_steps, found = load_steps(
                env_switch, env_loc, located, registry, names, SWITCH_VARIABLES
            )
            problems += found
            steps[(str(name), str(env))] = env_steps
    return steps, problems
