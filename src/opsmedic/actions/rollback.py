"""Action `rollback`: put a service's last known good version back now (e.g. on an alert)."""

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
    env: str | None = Field(None, description="omitted: the service's first environment")
    to: str | None = Field(None, description="a version that passed before; omitted: the last "
                           "known good")  # fmt: skip
    reason: str = Field("", description="recorded on the deployment")
    traceback: str = Field(
        "",
        description="the error's traceback, e.g. '{{ event.payload.body }}': the changed "
        "files it points into are marked",
    )


async def run(params: Params, ctx: ActionContext) -> Outcome:
    if ctx.releases is None:
        return Outcome(ok=False, message="no release controller here (no services configured)")
    try:
        found = await ctx.releases.rollback(
            params.service, params.env, to=params.to,
            reason=params.reason or f"rule {ctx.rule}", requested_by=f"rule {ctx.rule}",
            traceback=params.traceback,
        )  # fmt: skip
    except ReleaseRefused as exc:
        return Outcome(ok=False, message=str(exc))
    ok = found.state == "rolled_back"
    details = {"deployment_id": found.id, "rolled_back_to": found.rolled_back_to}
    return Outcome(ok=ok, message=f"{found.service} {found.state}: {found.reason}", details=details)


ACTION: ActionSpec[Params] = ActionSpec(
    name="rollback",
    params=Params,
    run=run,
    # Rolling back to where it already is does nothing: safe to run again after a crash.
    idempotent=True,
    summary="switch a service back to its last known good version, without analysis",
)
