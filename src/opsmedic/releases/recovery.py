"""Deployments whose process died are rolled back, never left verifying forever: at start,
and every few seconds while `opsmedic run` runs."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Callable

from opsmedic.clock import repeat
from opsmedic.model import Deployment, DeploymentState
from opsmedic.releases.controller import ACTIVE, ReleaseController

# A heartbeat older than this marks the owner dead even where its pid cannot be checked (an
# owner on another host); the verification and the gates beat every half second.
STALE_AFTER_S = 30.0
# How often the running daemon looks for them: a killed `opsmedic deploy` would otherwise
# leave its canary live until opsmedic's next start.
SWEEP_EVERY_S = 10.0


async def recover(
    controller: ReleaseController, *, stale_after: float = STALE_AFTER_S
) -> list[Deployment]:
    """Roll back (or fail, without a last known good) every active deployment whose owner is
    gone; the ones a live process drives are left to it. Returns those it resolved."""
    store, now = controller.store, controller.clock.now()
    states = [s.value for s in ACTIVE]
    found = await asyncio.to_thread(store.list_deployments, states=states, limit=1000)
    resolved = []
    for deployment in found:
        if deployment.service not in controller.services or not _dead(deployment, now, stale_after):
            continue
        dead = deployment.owner
        taken = await asyncio.to_thread(store.take_over_deployment, deployment.id, dead,
                                        controller.owner, now)  # fmt: skip
        if not taken:
            continue  # another process recovered it first
        deployment.owner = controller.owner
        was = "verifying" if deployment.state is DeploymentState.VERIFYING else "starting"
        reason = f"opsmedic ({dead}) stopped while this deployment was {was}"
        resolved.append(await controller.undo(deployment, reason))
    return resolved


def _dead(deployment: Deployment, now: float, stale_after: float) -> bool:
    host, _, pid = deployment.owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return int(pid) != os.getpid() and not _alive(int(pid))
    beat = deployment.heartbeat_at or deployment.updated_at
    return now - beat > stale_after


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # alive, someone else's
    return True


async def keep_recovering(
    controller: ReleaseController, stop: asyncio.Event, report: Callable[[Deployment], None],
    *, every: float = SWEEP_EVERY_S, stale_after: float = STALE_AFTER_S,
    failed: Callable[[Exception], None] = lambda exc: None,
) -> None:  # fmt: skip
    """Every `every` seconds until `stop`: recover what died since, `report` each one. A
    sweep that fails (the store is away) is reported to `failed` and the next one tried."""

    async def sweep() -> None:
        for found in await recover(controller, stale_after=stale_after):
            report(found)

    await repeat(every, stop, sweep, failed)
