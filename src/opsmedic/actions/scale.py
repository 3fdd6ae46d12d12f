"""Action `scale`: start or stop instances of a service within its `scale:` bounds."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from opsmedic.config.refs import ConfigRef
from opsmedic.config.types import Strict
from opsmedic.errors import ScaleRefused
from opsmedic.model import Outcome
from opsmedic.plugins import ActionContext, ActionSpec


class Params(Strict):
    service: Annotated[str, ConfigRef("services")] = Field(description="a name under services:")
    by: int | None = Field(None, description="instances to add (+1) or remove (-1)")
    to: int | None = Field(None, ge=0, description="the number of instances wanted")

    @model_validator(mode="after")
    def _one(self) -> Params:
        if (self.by is None) == (self.to is None):
            raise ValueError("give exactly one of by or to")
        if self.by == 0:
            raise ValueError("by: 0 changes nothing; give +N or -N")
        return self


async def run(params: Params, ctx: ActionContext) -> Outcome:
    if ctx.scaling is None:
        return Outcome(ok=False, message="no scaler here (no service declares scale:)")
    try:
        return await ctx.scaling.scale(
            params.service, by=params.by, to=params.to, dry_run=ctx.dry_run
        )
    except ScaleRefused as exc:
        return Outcome(ok=False, message=str(exc))


ACTION: ActionSpec[Params] = ActionSpec(
    name="scale",
    params=Params,
    run=run,
    summary="start or stop instances of a service (health-checked, routed, drained), "
    "within its min, max and cooldown",
)
