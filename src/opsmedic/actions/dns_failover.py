"""Action `dns_failover`: point clients at the secondary DNS server, or back at the primary."""

from __future__ import annotations

import socket
import time
from typing import Any

from pydantic import Field, model_validator

from opsmedic.config.types import Strict
from opsmedic.dns import rfc2136
from opsmedic.dns.resolv_conf import ResolvConf, ResolvConfParams
from opsmedic.dns.rfc2136 import Rfc2136Backend, Rfc2136Params, TsigKeys
from opsmedic.dns.switch import Backend, Direction, SwitchFailed
from opsmedic.model import Event, Outcome, Status
from opsmedic.plugins import ActionContext, ActionSpec

BACKENDS = ("resolv_conf", "rfc2136")


class Params(Strict):
    direction: Direction = Field(description="failover: to the secondary; failback: back")
    resolv_conf: ResolvConfParams | None = None
    rfc2136: Rfc2136Params | None = None

    @model_validator(mode="after")
    def _one_backend(self) -> Params:
        given = [name for name in BACKENDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one backend of {', '.join(BACKENDS)} (got "
                             f"{', '.join(given) or 'none'})")  # fmt: skip
        return self


def open_backend(params: Params, tsig_keys: TsigKeys) -> tuple[str, Backend]:
    """The backend the params name, with its name."""
    if params.resolv_conf is not None:
        return "resolv_conf", ResolvConf(params.resolv_conf)
    assert params.rfc2136 is not None
    return "rfc2136", Rfc2136Backend(params.rfc2136, tsig_keys)


async def run(params: Params, ctx: ActionContext) -> Outcome:
    try:
        name, backend = open_backend(params, ctx.settings)
    except (ValueError, SwitchFailed) as exc:  # an unknown or unusable tsig_key, say
        return Outcome(ok=False, message=f"{params.direction} failed: {exc}")
    return await switch_outcome(name, backend, params.direction, ctx)


async def switch_outcome(
    name: str, backend: Backend, direction: Direction, ctx: ActionContext
) -> Outcome:
    """Switch once and report it the way every DNS backend does: the entry point for a
    provider's own action (Route 53, Cloudflare, …; see docs/dns.md#providers).

    A repeat is a skipped step; a change is logged and announced as an event. A backend's
    RetryableError is not caught: the engine retries it.
    """
    deadline = time.monotonic() + ctx.timeout  # the Backend contract: real monotonic time
    details: dict[str, Any] = {"direction": str(direction), "backend": name,
                               "subject": backend.subject}  # fmt: skip
    try:
        switched = await backend.switch(direction, deadline)
    except SwitchFailed as exc:
        return Outcome(ok=False, message=f"{direction} failed: {exc}", details=details)
    details.update(switched.details)
    if not switched.changed:
        details["skipped"] = "already so"
        return Outcome(ok=True, message=switched.message, details=details)
    ctx.log.warning(f"dns.{direction}", subject=backend.subject, message=switched.message)
    announced = _announcement(direction, name, backend.subject, switched.message, details, ctx)
    return Outcome(ok=True, message=f"{direction}: {switched.message}", details=details,
                   events=[announced])  # fmt: skip


def _announcement(
    direction: Direction, backend: str, subject: str, message: str, details: dict[str, Any],
    ctx: ActionContext,
) -> Event:  # fmt: skip
    """One event per switch: failover fires it, failback resolves it (one fingerprint).

    So the failover is an incident of its own that closes when clients are back on the
    primary, and rules can react to either (`source: opsmedic, kind: dns_failover`).
    """
    failover = direction is Direction.FAILOVER
    return Event(
        source="opsmedic",
        kind="dns_failover",
        resource=subject,
        host=socket.gethostname(),
        labels={"backend": backend},
        value=str(direction),
        severity="warning" if failover else "info",
        status=Status.FIRING if failover else Status.RESOLVED,
        time=ctx.clock.now(),
        payload={"message": message, "run_id": ctx.run_id, "rule": ctx.rule, "details": details},
    )


ACTION: ActionSpec[Params] = ActionSpec(
    name="dns_failover",
    params=Params,
    run=run,
    # A repeat finds it already done (compare-and-swap), so re-running after a crash is safe.
    idempotent=True,
    summary="point clients at the secondary DNS server (resolv.conf or RFC 2136), or back",
    settings=rfc2136.SETTINGS,
)
