"""An ActionContext for calling an action directly in a test, over a Config built from kwargs."""

from __future__ import annotations

from typing import Any

import structlog

from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config
from opsmedic.plugins import ActionContext


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
