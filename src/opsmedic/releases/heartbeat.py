"""A deployment's heartbeat, beaten in the background while it waits on a long step (its gates)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from opsmedic.clock import Clock
from opsmedic.store.store import Store

# As often as verification beats (verify.TICK_S): far inside recovery's STALE_AFTER_S.
BEAT_S = 0.5


@asynccontextmanager
async def beating(
    store: Store, deployment_id: str, owner: str, clock: Clock, every: float = BEAT_S
) -> AsyncIterator[None]:
    """Beat the deployment's heartbeat every `every` seconds until the block ends, so a
    10-minute test suite in a gate does not make recovery think the owner died. Once the row
    was taken over (an emergency rollback) the beating stops; the block goes on, and the
    controller finds the takeover at its next state change."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            if not await asyncio.to_thread(
                store.deployment_heartbeat, deployment_id, owner, clock.now()
            ):
                return

    task = asyncio.create_task(beat(), name=f"heartbeat-{deployment_id}")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
