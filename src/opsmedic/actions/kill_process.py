"""The kill_process action: stop one proven process (pid and start time), SIGTERM then SIGKILL."""

from __future__ import annotations

import asyncio
import os
import select
import signal
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field

from opsmedic.actions import protection
from opsmedic.actions.protection import (
    Protection,
    Target,
    inspect,
    protected_by,
)
from opsmedic.config.types import Duration
from opsmedic.model import Outcome
from opsmedic.plugins import ActionContext, ActionSpec

# Start times are counted in clock ticks since boot: two values closer than half a tick are
# one start written two ways (a float printed and parsed), never two processes.
SAME_START = 0.5 / os.sysconf("SC_CLK_TCK")
# How long CPU use is measured before acting when the event did not say.
CPU_SAMPLE = 0.5
# SIGKILL takes effect at once unless the process is stuck in the kernel (D state).
KILL_WAIT = 5.0
_CMD_SHOWN = 80  # characters of the command line in messages; details keep all of it


class Params(BaseModel):
    """One process, named by pid and start time (the process probe's labels)."""

    model_config = ConfigDict(extra="forbid")

    pid: int = Field(gt=0, le=2**22, description="at most the kernel's pid_max limit")
    start_time: float = Field(
        gt=0, description="the process's start time, epoch seconds: with pid, its identity"
    )
    grace: Duration = Field(10.0, description="time given to exit after SIGTERM before SIGKILL")
    enforce: bool = Field(False, description="false (leashed): report what would be killed")
    cpu_percent: float | None = Field(
        None, ge=0, description="the CPU % that got it here; measured for 0.5 s when omitted"
    )


async def run(params: Params, ctx: ActionContext) -> Outcome:
    deadline = ctx.clock.monotonic() + ctx.timeout
    # The pidfd is opened before the process is checked and is then the only way it is
    # signalled: if the pid is reused after the check, the signal finds no one.
    try:
        fd = os.pidfd_open(params.pid)
    except ProcessLookupError:
        return _gone(params, f"pid {params.pid} is not running")
    except OSError as exc:
        return Outcome(
            ok=False,
            message=f"cannot open pid {params.pid}: {exc.strerror or exc}",
            details={"pid": params.pid, "start_time": params.start_time},
        )
    try:
        return await _stop(fd, params, ctx, deadline)
    finally:
        os.close(fd)


async def _stop(fd: int, params: Params, ctx: ActionContext, deadline: float) -> Outcome:
    try:
        target = await asyncio.to_thread(inspect, params.pid)
    except psutil.NoSuchProcess:
        return _gone(params, f"pid {params.pid} is not running")
    if _exited(fd):
        return _gone(params, f"pid {params.pid} has exited")
    if abs(target.start_time - params.start_time) > SAME_START:
        return _gone(
            params,
            f"pid {params.pid} is now another process (started at {target.start_time!r}, "
            f"not {params.start_time!r}): the one meant has exited; nothing killed",
            reused=True,
        )
    victim = target.describe()
    protection = protected_by(target, ctx.settings)
    if protection is not None:
        return _refused(victim, protection, f"refused to kill pid {target.pid} ({target.name})")
    cpu = params.cpu_percent
    if cpu is None:
        cpu = await _cpu_percent(target, ctx)
    victim["cpu_percent"] = None if cpu is None else round(cpu, 2)
    who = _who(target, cpu)
    if ctx.dry_run or not params.enforce:
        why = "dry-run" if ctx.dry_run else "leashed"
        hint = "" if ctx.dry_run else " — set enforce: true to act"
        victim.update(skipped=why, enforce=params.enforce)
        return Outcome(ok=True, message=f"{why}: would kill {who}{hint}", details=victim)
    return await _signal(fd, target, who, victim, params, ctx, deadline)


def _refused(victim: dict[str, Any], protection: Protection, what: str) -> Outcome:
    victim["protected_by"] = protection.rule
    return Outcome(ok=False, message=f"{what}: {protection.reason}", details=victim)


async def _now_protected(fd: int, target: Target, ctx: ActionContext) -> Protection | None:
    """The protection that applies to the process right now, or None (also when it is gone)."""
    if _exited(fd):
        return None
    try:
        now = await asyncio.to_thread(inspect, target.pid)
    except psutil.Error:
        return None  # gone: the signal below finds no one
    return protected_by(now, ctx.settings)


async def _signal(
    fd: int,
    target: Target,
    who: str,
    victim: dict[str, Any],
    params: Params,
    ctx: ActionContext,
    deadline: float,
) -> Outcome:
    started = ctx.clock.monotonic()
    # The step's timeout bounds the whole kill: the grace shrinks to leave SIGKILL its turn.
    grace = max(0.0, min(params.grace, deadline - started - KILL_WAIT))
    kill_wait = min(KILL_WAIT, max(1.0, deadline - started - grace))
    victim.update(enforce=True, grace_s=grace, signals_sent=[])
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, kill_wait)):
        # Looked at again before each signal: during the CPU sample or the grace the process
        # may have exec'd a setuid-root or protected program under the same pidfd.
        refusal = await _now_protected(fd, target, ctx)
        if refusal is not None:
            return _refused(victim, refusal, f"refused {sig.name} to pid {target.pid} (now)")
        try:
            signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            # It exited between the last look and this signal; the end is the same.
            break
        except PermissionError as exc:
            # Another user's process, and opsmedic has neither root nor CAP_KILL.
            return Outcome(
                ok=False,
                message=f"not allowed to send {sig.name} to pid {target.pid}: {exc.strerror}",
                details=victim,
            )
        victim["signals_sent"].append(sig.name)
        ctx.log.warning("process.signalled", pid=target.pid, signal=sig.name, user=target.user,
                        name=target.name, start_time=target.start_time)  # fmt: skip
        if await _exits_within(fd, wait):
            break
    else:
        victim["took_s"] = round(ctx.clock.monotonic() - started, 3)
        return Outcome(
            ok=False,
            message=f"pid {target.pid} still runs {kill_wait:g}s after SIGKILL "
            "(stuck in the kernel, state D?)",
            details=victim,
        )
    took = ctx.clock.monotonic() - started
    sent = victim["signals_sent"]
    victim.update(took_s=round(took, 3), signal=sent[-1] if sent else None)
    if not sent:
        victim["skipped"] = "exited before it was signalled"
        return Outcome(ok=True, message=f"{who} exited before it was signalled", details=victim)
    how = "SIGTERM" if sent == ["SIGTERM"] else f"SIGKILL after ignoring SIGTERM for {grace:g}s"
    return Outcome(ok=True, message=f"killed {who} with {how}; gone in {took:.1f}s", details=victim)


def _gone(params: Params, why: str, reused: bool = False) -> Outcome:
    details: dict[str, Any] = {"pid": params.pid, "start_time": params.start_time, "skipped": why}
    if reused:
        details["pid_reused"] = True
    return Outcome(ok=True, message=why, details=details)


def _who(target: Target, cpu: float | None) -> str:
    # Spaces, not shell quoting: this is for people to read; details keep the exact argv.
    cmd = " ".join(target.cmdline) if target.cmdline else target.name
    if len(cmd) > _CMD_SHOWN:
        cmd = cmd[: _CMD_SHOWN - 1] + "…"
    load = "CPU unknown" if cpu is None else f"{cpu:.1f}% CPU"
    return f"pid {target.pid} ({target.user}, {cmd}, {load})"


async def _cpu_percent(target: Target, ctx: ActionContext) -> float | None:
    """CPU % of one core over a short sample; None if the process went in the meantime."""
    started = ctx.clock.monotonic()
    await asyncio.sleep(CPU_SAMPLE)
    try:
        now = await asyncio.to_thread(inspect, target.pid)
    except psutil.NoSuchProcess:
        return None
    elapsed = ctx.clock.monotonic() - started
    if abs(now.start_time - target.start_time) > SAME_START or elapsed <= 0:
        return None
    return 100.0 * (now.cpu_s - target.cpu_s) / elapsed


def _exited(fd: int) -> bool:
    # A pidfd reads ready once its process has exited (a zombie counts).
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


async def _exits_within(fd: int, seconds: float) -> bool:
    """Whether the pidfd's process exits within `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            await _exit(fd)
    except TimeoutError:
        return _exited(fd)
    return True


async def _exit(fd: int) -> None:
    if _exited(fd):
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await exited
    finally:
        loop.remove_reader(fd)


ACTION = ActionSpec(
    name="kill_process",
    params=Params,
    run=run,
    destructive=True,
    summary="stop one process named by pid and start time: SIGTERM, grace, SIGKILL; leashed "
    "unless enforce: true",
    settings=protection.SETTINGS,
)
