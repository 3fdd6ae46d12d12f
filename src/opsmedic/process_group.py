"""Starting commands as process groups so that a cancellation can never orphan one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
REAP_TIMEOUT_S = 5.0


async def spawn_group(
    start: Awaitable[T],
    leader_pid: Callable[[T], int],
    reap: Callable[[T], Awaitable[object]],
) -> T:
    """Await `start` (which spawns a session leader) without losing the group to a cancel.

    asyncio's subprocess creation forks first and then awaits its pipes: a cancellation in
    between closes the transport, which kills the direct child only, and its children live
    on. Shielded, the spawn completes; on cancellation the whole group is then killed and
    the leader reaped (`reap`), before the cancellation goes on.
    """
    task = asyncio.ensure_future(start)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            started = await task
            kill_group(leader_pid(started), signal.SIGKILL)
            async with asyncio.timeout(REAP_TIMEOUT_S):
                await reap(started)
        raise


def kill_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
