"""An ActionContext for calling an action directly in a test, over a config built from kwargs;
or a one-rule file run through the real Executor."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel

from opsmedic.clock import SystemClock
from opsmedic.config.located import Located
from opsmedic.config.schema import Config
from opsmedic.config.sections import validate_sections
from opsmedic.engine.executor import Executor
from opsmedic.errors import ConfigError
from opsmedic.model import Event, Run
from opsmedic.plugins import ActionContext
from opsmedic.probes.runner import probe_once
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry


def make_action_context(action: str, dry_run: bool = False, **config: Any) -> ActionContext:
    """The context the engine gives `action`, from a config of `config`'s sections (its own
    section, like `notify=`, among them)."""
    registry = build_registry(load_entry_points=False)
    specs = registry.settings()
    settings, problems = validate_sections(config, Located("<test>", config), specs)
    if problems:
        raise ConfigError(problems)
    own = Config.model_validate({k: v for k, v in config.items() if k not in settings})
    spec = registry.action(action).settings
    clock, log = SystemClock(), structlog.get_logger()
    return ActionContext(
        clock=clock,
        log=log,
        settings=spec.pick(settings) if spec else None,
        dry_run=dry_run,
        run_id="run-1",
        rule="rule-1",
        target="web-1",
        default_timeout=own.actions.timeout,
        base_dir=own.base_dir,
        state_dir=own.state_dir,
        output_limit=own.actions.output_limit,
        ssh_hosts=own.ssh_hosts,
        probe_once=probe_once(own.probes, registry, own.base_dir, clock, log, settings=settings),
    )


async def execute_rule(
    rules: Path, event: Event, state_dir: Path, settings: Mapping[str, BaseModel] | None = None
) -> Run:
    """Run the one rule in `rules` for `event` through the Executor, as the engine would;
    `settings`: the plugins' validated sections (`{"cleanup": CleanupConfig(...)}`)."""
    registry = build_registry(load_entry_points=False)
    (rule,) = load_rules(rules, registry)
    config = Config.model_validate({"state_dir": str(state_dir)})
    run = Run(rule=rule.name, event_id=event.id, target=event.target,
              fingerprint=event.fingerprint, actions=rule.actions)  # fmt: skip
    executor = Executor(registry, config, SystemClock(), structlog.get_logger(), settings=settings or {},
                        probe_once=None)  # fmt: skip
    await executor.execute(run, rule, event)
    return run
