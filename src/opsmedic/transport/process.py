"""Local processes: one argv run in its own process group, bounded in time and output."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from opsmedic.transport.output import Captured

# Seconds between SIGTERM and SIGKILL for a timed-out command's process group.
KILL_GRACE = 2.0
# Seconds to wait for the pipes to close once the command itself has ended: a daemon it
# started may hold them open forever, and the step must not wait for it.
DRAIN_GRACE = 2.0
# Seconds to wait for a killed leader to be reaped after a cancelled spawn.
REAP_TIMEOUT_S = 5.0

T = TypeVar("T")


class _Collector(asyncio.SubprocessProtocol):
    """Feeds output into the buffers and tells apart "the process exited" and "pipes closed".

    asyncio's Process.wait() waits for both at once, which would hang on a daemon that the
    command left holding its stdout.
    """

    def __init__(self, captured: Captured) -> None:
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()
        self._buffers = {1: captured.stdout, 2: captured.stderr}
        self._open = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self._buffers[fd].feed(data if isinstance(data, bytes) else data.encode())

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)
        if not self._open and not self.drained.done():
            self.drained.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


async def run_local(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    stdin: bytes | None,
    time_limit: float | None,
    captured: Captured,
) -> Captured:
    """Run `argv` without a shell into `captured`, returned filled; kill its group at `time_limit`.

    The limit is handled here rather than by the caller's asyncio.timeout so that a timeout
    still returns the captured output and the group gets its grace period (TERM, then KILL).
    With `time_limit` None the caller bounds the run by cancelling it (the group is then
    killed at once), and the output is read to its end however long descendants hold the
    pipes: nothing here would otherwise stop the wait, so no drain grace is needed.
    Raises OSError when the program cannot be started (not found, not executable, bad cwd).
    """
    loop = asyncio.get_running_loop()
    transport, collector = await spawn_group(
        loop.subprocess_exec(
            lambda: _Collector(captured),
            *argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            # A new session makes the command a group leader, so a timeout can kill the
            # grandchildren it spawned too, not just the direct child.
            start_new_session=True,
        ),
        lambda started: started[0].get_pid(),
        _reap,
    )
    pgid = transport.get_pid()
    try:
        if stdin is not None:
            pipe = transport.get_pipe_transport(0)
            assert isinstance(pipe, asyncio.WriteTransport)
            pipe.write(stdin)
            pipe.close()  # flushes what is buffered, then closes: the command sees EOF
        await asyncio.wait([collector.exited], timeout=time_limit)
        if not collector.exited.done():
            captured.timed_out = True
            await _terminate_group(pgid, collector.exited)
        drain_grace = DRAIN_GRACE if time_limit is not None else None
        await asyncio.wait([collector.drained], timeout=drain_grace)
        captured.incomplete = not collector.drained.done()
    except asyncio.CancelledError:
        # The engine's own deadline fired: no grace period, but never leave the group behind.
        _signal_group(pgid, signal.SIGKILL)
        await asyncio.wait([collector.exited], timeout=KILL_GRACE)
        raise
    finally:
        # Closes our ends of pipes that a leftover descendant may still hold open.
        transport.close()
    code = transport.get_returncode()
    if code is not None and code < 0:
        captured.signal = signal.Signals(-code).name
    else:
        captured.exit_code = code
    return captured


async def _reap(started: tuple[asyncio.SubprocessTransport, _Collector]) -> None:
    transport, collector = started
    await collector.exited
    transport.close()


async def _terminate_group(pgid: int, exited: asyncio.Future[None]) -> None:
    _signal_group(pgid, signal.SIGTERM)
    await asyncio.wait([exited], timeout=KILL_GRACE)
    # Killed even when the leader obeyed SIGTERM: a child may have ignored it.
    _signal_group(pgid, signal.SIGKILL)
    await exited


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(PermissionError):
        kill_group(pgid, sig)


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
