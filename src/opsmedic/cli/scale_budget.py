"""`opsmedic check`'s warning for a scale step whose time budget is shorter than a scale needs."""

from __future__ import annotations

from opsmedic.config.schema import Config
from opsmedic.errors import Problem
from opsmedic.rules.ruleset import RuleSet


def scale_budget_warnings(ruleset: RuleSet, config: Config) -> list[Problem]:
    """A `scale` step whose timeout is below its service's `health.timeout + drain_timeout`:
    the engine would cancel a scale that is only waiting as configured (a slow instance's
    health check, a drain), and the new instance would be stopped and counted unhealthy."""
    found = []
    for rule in ruleset.rules:
        for step in [*rule.steps, *rule.on_failure]:
            service = step.raw.get("service") if isinstance(step.raw, dict) else None
            scale = config.services[service].scale if service in config.services else None
            if step.action != "scale" or scale is None:
                continue
            budget = step.timeout or config.actions.timeout
            needed = scale.health.timeout + scale.drain_timeout
            if needed > budget:
                file, line = step.path.rsplit(":", 1)
                found.append(Problem(file, int(line), 1, f"{rule.name}.scale", (
                    f"timeout {budget:g}s is below service {service}'s health.timeout "
                    f"{scale.health.timeout:g}s + drain_timeout {scale.drain_timeout:g}s "
                    f"({needed:g}s): a scale waiting as configured would be cancelled; give "
                    f"the step timeout: {needed:g}s or more"
                )))  # fmt: skip
    return found
