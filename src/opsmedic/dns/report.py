"""A switch reported as an action's outcome, the same for every backend (the built-in ones
and a provider's own action): skipped when already so, announced as an event when made."""

from __future__ import annotations

import socket
import time
from typing import Any

from opsmedic.dns.switch import Backend, Direction, SwitchFailed
from opsmedic.model import OWN_SOURCE, Event, Outcome, Status
from opsmedic.plugins import ActionContext


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
        source=OWN_SOURCE,
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
