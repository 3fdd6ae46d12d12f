"""Action `recheck`: run a configured probe once more; OK only when every reading is OK now."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from opsmedic.config.located import unknown_name
from opsmedic.config.refs import ConfigRef
from opsmedic.config.types import Strict
from opsmedic.errors import ConfigError
from opsmedic.model import Event, Outcome, Status
from opsmedic.plugins import ActionContext, ActionSpec


class Params(Strict):
    probe: Annotated[str, ConfigRef("probes")] = Field(
        description="the name of a probe in the config's `probes:`"
    )


async def run(params: Params, ctx: ActionContext) -> Outcome:
    """Did the remediation work? Ask the probe that noticed the problem, right now."""
    from opsmedic.probes.runner import ProbeRunner

    configs = [p for p in ctx.config.probes if p.name == params.probe]
    if not configs:
        known = {p.name: p for p in ctx.config.probes}
        return Outcome(ok=False, message=unknown_name("probe", params.probe, known))
    if ctx.registry is None:
        return Outcome(ok=False, message="no plugin registry in this context")
    try:
        runner = ProbeRunner(configs, ctx.registry, ctx.config, ctx.clock, _ignore, ctx.log)
    except ConfigError as exc:
        return Outcome(ok=False, message=f"probe {params.probe!r} is misconfigured: {exc}")
    # Not emitted: the probe reports on its own schedule, and a reading from here that still
    # fires would re-trigger the rule that is running this very step.
    events = await runner.run_once()
    bad = [e for e in events if e.status is Status.FIRING]
    details = {"readings": [_reading(e) for e in events]}
    if bad:
        text = bad[0].payload.get("message", "")
        return Outcome(ok=False, message=f"{params.probe} still failing: {text}", details=details)
    text = events[0].payload.get("message", "") if events else "nothing to report"
    return Outcome(ok=True, message=f"{params.probe} ok: {text}", details=details)


async def _ignore(events: list[Event]) -> None:
    return None


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
