"""A context factory for calling actions directly, as the engine would."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from action_context import make_action_context
from opsmedic.plugins import ActionContext

MakeCtx = Callable[..., ActionContext]


@pytest.fixture
def make_ctx() -> MakeCtx:
    """make_ctx(dry_run=False, **config) → run_command's ActionContext over that config."""
    return partial(make_action_context, "run_command")
