"""A context factory for calling actions directly, as the engine would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import structlog

from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config
from opsmedic.plugins import ActionContext

MakeCtx = Callable[..., ActionContext]


@pytest.fixture
def make_ctx() -> MakeCtx:
    """make_ctx(dry_run=False, **config) → an ActionContext over Config(**config)."""

    def make(dry_run: bool = False, **config: Any) -> ActionContext:
        return ActionContext(
            clock=SystemClock(),
            log=structlog.get_logger(),
            config=Config.model_validate(config),
            dry_run=dry_run,
            run_id="run-1",
            rule="rule-1",
            target="web-1",
        )

    return make
