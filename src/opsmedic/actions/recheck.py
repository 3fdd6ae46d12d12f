"""Action `recheck`: run a configured probe once more; OK only when every reading is OK now."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from opsmedic.config.refs import ConfigRef
from opsmedic.config.types import Strict
from opsmedic.errors import ConfigError, PluginError
from opsmedic.model import Event, Outcome, Status
from opsmedic.plugins import ActionContext, ActionSpec


class Params(Strict):
    probe: Annotated[str, ConfigRef("probes")] = Field(
        description="the name of a probe in the config's `probes:`"
    )


async def run(params: Params, ctx: ActionContext) -> Outcome:
    """Did the remediation work? Ask the probe that noticed the problem, right now."""
    if ctx.probe_once is None:
        return Outcome(ok=False, message="no probes in this context")
    try:
        # Not emitted: the probe reports on its own schedule, and a reading from here that
        # still fires would re-trigger the rule that is running this very step.
        events = await ctx.probe_once(params.probe)
    except PluginError as exc:  # no configured probe has that name
        return Outcome(ok=False, message=str(exc))
    except ConfigError as exc:
        return Outcome(ok=False, message=f"probe {params.probe!r} is misconfigured: {exc}")
    bad = [e for e in events if e.status is Status.FIRING]
    details = {"readings": [_reading(e) for e in events]}
    if bad:
        text = bad[0].payload.get("message", "")
        return Outcome(ok=False, message=f"{params.probe} still failing: {text}", details=details)
    text = events[0].payload.get("message", "") if events else "nothing to report"
    return Outcome(ok=True, message=f"{params.probe} ok: {text}", details=details)


def _reading(event: Event) -> dict[str, Any]:
    return {"resource": event.resource, "status": str(event.status), "value": event.value,
            "severity": event.severity, "message": event.payload.get("message", "")}  # fmt: skip


ACTION: ActionSpec[Params] = ActionSpec(
    name="recheck",
    params=Params,
    run=run,
    idempotent=True,
    summary="run a configured probe once more: OK only if every reading is OK now",
)
