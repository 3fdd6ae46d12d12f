"""Action `deploy`: start a deployment of a configured service (driven in the background)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from opsmedic.config.refs import ConfigRef
from opsmedic.config.types import Strict
from opsmedic.errors import ReleaseRefused
from opsmedic.model import Outcome
from opsmedic.plugins import ActionContext, ActionSpec


class Params(Strict):
    service: Annotated[str, ConfigRef("services")] = Field(description="a name under services:")
    version: str = Field(min_length=1, description="an entry of the service's versions")
    env: str | None = Field(None, description="omitted: the service's first environment")
    force: bool = Field(False, description="skip the gates; recorded on the deployment")


async def run(params: Params, ctx: ActionContext) -> Outcome:
    if ctx.releases is None:
        return Outcome(ok=False, message="no release controller here (no services configured)")
    try:
        found = await ctx.releases.start(
            params.service, params.version, params.env,
            requested_by=f"rule {ctx.rule}", force=params.force,
        )  # fmt: skip
    except ReleaseRefused as exc:
        return Outcome(ok=False, message=str(exc))
    return Outcome(
        ok=True, message=f"deployment {found.id} of {found.service} {found.version} started",
        details={"deployment_id": found.id, "env": found.env,
                 "previous_version": found.previous_version},
    )  # fmt: skip


ACTION: ActionSpec[Params] = ActionSpec(
    name="deploy",
    params=Params,
    run=run,
    summary="start a deployment of a configured service: switch, verify, promote or roll back",
)
