"""A step's `approve:` option: wait for a human's yes before the step runs, and what to do
when nobody answers in time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsmedic.config.located import Loc, Located
from opsmedic.config.types import parse_duration
from opsmedic.errors import Problem

ON_TIMEOUT = ("skip", "run", "escalate")
_KEYS = ("timeout", "on_timeout")


@dataclass(frozen=True, slots=True)
class ApprovalSpec:
    """`approve: {timeout: 10m, on_timeout: skip | run | escalate}` of one step."""

    timeout: float
    on_timeout: str = "skip"


def parse_approve(
    value: Any, loc: Loc, located: Located
) -> tuple[ApprovalSpec | None, list[Problem]]:
    """The step's approval, or the problems of `value` at file:line:col (then None)."""
    if not isinstance(value, dict):
        return None, [located.problem(loc, "a mapping like {timeout: 10m, on_timeout: skip}")]
    problems = [
        located.problem((*loc, key), f"unknown key {key!r} (use {', '.join(_KEYS)})", at_key=True)
        for key in value
        if key not in _KEYS
    ]
    timeout = 0.0
    if "timeout" not in value:
        problems.append(located.problem(loc, "needs a timeout, e.g. {timeout: 10m}"))
    else:
        try:
            timeout = parse_duration(value["timeout"])
        except ValueError as exc:
            problems.append(located.problem((*loc, "timeout"), str(exc)))
        else:
            if timeout <= 0:  # zero would time out before anyone could answer
                problems.append(located.problem((*loc, "timeout"), "must be more than 0"))
    on_timeout = value.get("on_timeout", "skip")
    if on_timeout not in ON_TIMEOUT:
        message = f"unknown on_timeout {on_timeout!r} (use {', '.join(ON_TIMEOUT)})"
        problems.append(located.problem((*loc, "on_timeout"), message))
    if problems:
        return None, problems
    return ApprovalSpec(timeout, on_timeout), []
