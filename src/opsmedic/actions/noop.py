"""The noop action: does nothing and succeeds (for rule tests, dry wiring and benchmarks)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from opsmedic.model import Outcome
from opsmedic.plugins import ActionContext, ActionSpec


class Params(BaseModel):
    """An optional message, echoed back as the outcome's message."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    message: str = ""


async def run(params: Params, ctx: ActionContext) -> Outcome:
    return Outcome(ok=True, message=params.message or "noop")


ACTION = ActionSpec(
    name="noop",
    params=Params,
    run=run,
    idempotent=True,
    summary="do nothing and succeed",
)
