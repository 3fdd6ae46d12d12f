"""A blue/green service's `start:` steps, checked and compiled like its switch steps."""

from __future__ import annotations

from typing import Any

from opsmedic.config.located import Located
from opsmedic.config.refs import config_names
from opsmedic.errors import Problem
from opsmedic.plugins import Registry
from opsmedic.releases.steps import SWITCH_VARIABLES
from opsmedic.rules.loader import load_steps
from opsmedic.rules.model import Step

# What a start step's templates see: the switch's variables, and the slot being started.
START_VARIABLES = (*SWITCH_VARIABLES, "slot", "backend")
StartSteps = dict[str, list[Step]]


def start_steps(
    data: dict[str, Any], located: Located, registry: Registry
) -> tuple[StartSteps, list[Problem]]:
    """Service → its compiled `blue_green.start` steps, from the raw config; and every problem
    at file:line:col (read from the raw mapping, as the switch steps are)."""
    names = config_names(data)
    services = data.get("services")
    steps: StartSteps = {}
    problems: list[Problem] = []
    for name, raw in services.items() if isinstance(services, dict) else []:
        section = raw.get("blue_green") if isinstance(raw, dict) else None
        if not isinstance(section, dict):
            continue
        loc = ("services", str(name), "blue_green", "start")
        steps[str(name)], found = load_steps(
            section.get("start"), loc, located, registry, names, START_VARIABLES
        )
        problems += found
    return steps, problems
