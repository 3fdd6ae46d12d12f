"""A context factory for calling actions directly, as the engine would."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from action_context import make_action_context
from opsmedic.plugins import ActionContext

MakeCtx = Callable[..., ActionContext]


@pytest.fixture
def make_ctx() -> MakeCtx:
    """make_ctx(dry_run=False, **config) → an ActionContext over Config(**config)."""
    return make_action_context
