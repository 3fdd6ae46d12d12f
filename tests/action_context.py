"""An ActionContext for calling an action directly in a test, over a Config built from kwargs;
or a one-rule file run through the real Executor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config
from opsmedic.engine.executor import Executor
from opsmedic.model import Event, Run
from opsmedic.plugins import ActionContext
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry


def make_action_context(dry_run: bool = False, **config: Any) -> ActionContext:
    return ActionContext(
        clock=SystemClock(),
        log=structlog.get_logger(),
        config=Config.model_validate(config),
        dry_run=dry_run,
        run_id="run-1",
        rule="rule-1",
        target="web-1",
    )


async def execute_rule(rules: Path, event: Event, state_dir: Path) -> Run:
    """Run the one rule in `rules` for `event` through the Executor, as the engine would."""
    registry = build_registry(load_entry_points=False)
    (rule,) = load_rules(rules, registry)
    config = Config.model_validate({"state_dir": str(state_dir)})
    run = Run(rule=rule.name, event_id=event.id, target=event.target,
              fingerprint=event.fingerprint, actions=rule.actions)  # fmt: skip
    await Executor(registry, config, SystemClock(), structlog.get_logger()).execute(
        run, rule, event
    )
    return run
