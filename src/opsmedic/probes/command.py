"""The `command` probe: run an argument list (no shell); OK on an expected exit code."""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from opsmedic.config.types import Strict
from opsmedic.model import Observation
from opsmedic.plugins import ProbeContext, ProbeSpec
from opsmedic.process_group import kill_group, spawn_group

STDOUT_LIMIT = 4096  # bytes of stdout kept: the value, not a log
STDERR_LIMIT = 1024  # bytes of stderr kept for the event's details
# After SIGKILL a process is gone at once unless the kernel holds it (D state); do not let
# such a process hold the probe's schedule hostage.
REAP_TIMEOUT = 5.0

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class Params(Strict):
    argv: list[str] = Field(min_length=1, description="program and arguments; never a shell")
    ok_exit_codes: list[int] = Field(default_factory=lambda: [0], min_length=1)
    value: Literal["stdout", "exit_code"] = "stdout"
    cwd: Path | None = Field(None, description="working directory, relative to the config file")
    env: dict[str, str] = Field(
        default_factory=dict, description="variables set on top of opsmedic's own environment"
    )

    @field_validator("argv")
    @classmethod
    def _program(cls, value: list[str]) -> list[str]:
        if value and not value[0]:
            raise ValueError("the program (argv[0]) must not be empty")
        return value


def parse_stdout(raw: bytes, truncated: bool) -> float | str:
    """Stripped stdout as a float when it is one finite number, else as text."""
    text = raw.decode("utf-8", errors="replace").strip()
    # A truncated output that happens to start with digits is not that number.
    if not truncated and _NUMBER.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return number
    return text


async def check(params: Params, ctx: ProbeContext) -> list[Observation]:
    """Run argv once; the value is its stdout (number or text) or its exit code."""
    cwd = ctx.base_dir / params.cwd if params.cwd is not None else None
    env = {**os.environ, **params.env} if params.env else None
    try:
        start = asyncio.create_subprocess_exec(
            *params.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env,
            # Its own process group, so a timeout can kill whatever the command spawned too.
            start_new_session=True,
        )
        proc = await spawn_group(start, lambda p: p.pid, lambda p: p.wait())
    except OSError as exc:
        return [
            Observation(
                ok=False,
                value=None,
                message=f"cannot run {params.argv[0]}: {exc}",
                labels={"error": "spawn"},
                details={"argv": params.argv, "error": str(exc)},
            )
        ]
    finished = False
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        (out, out_cut), (err, _), code = await asyncio.gather(
            _read_capped(proc.stdout, STDOUT_LIMIT),
            _read_capped(proc.stderr, STDERR_LIMIT),
            proc.wait(),
        )
        finished = True
    finally:
        # Cancelled (the runner's timeout) or failed mid-read: the command, or a child of
        # it still holding our pipes, is left over — kill the whole group.
        if not finished:
            await _kill_group(proc, ctx)
    return [_observation(params, code, out, out_cut, err)]


def _observation(params: Params, code: int, out: bytes, out_cut: bool, err: bytes) -> Observation:
    ok = code in params.ok_exit_codes
    stderr = err.decode("utf-8", errors="replace").strip()
    value: float | str = float(code) if params.value == "exit_code" else parse_stdout(out, out_cut)
    details: dict[str, Any] = {"argv": params.argv, "exit_code": code}
    if stderr:
        details["stderr"] = stderr
    if params.value == "exit_code" and out.strip():
        details["stdout"] = out.decode("utf-8", errors="replace").strip()
    if out_cut:
        details["stdout_truncated"] = True

    how = f"killed by {_signal_name(-code)}" if code < 0 else f"exit {code}"
    if ok:
        message = how
    else:
        message = f"{how} (expected {', '.join(map(str, params.ok_exit_codes))})"
        if stderr:
            # The first line of stderr is usually the reason; the rest stays in details.
            message += f": {stderr.splitlines()[0][:200]}"
    return Observation(
        ok=ok, value=value, message=message, labels={"exit_code": str(code)}, details=details
    )


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, bool]:
    # Keep the first `limit` bytes and drain the rest: a chatty command must neither fill
    # our memory nor block on a full pipe.
    kept = bytearray()
    truncated = False
    while chunk := await stream.read(65536):
        room = limit - len(kept)
        kept += chunk[:room]
        truncated = truncated or len(chunk) > room
    return bytes(kept), truncated


async def _kill_group(proc: asyncio.subprocess.Process, ctx: ProbeContext) -> None:
    # The group may be gone already; the process may still need reaping below.
    kill_group(proc.pid, signal.SIGKILL)
    try:
        async with asyncio.timeout(REAP_TIMEOUT):
            await proc.wait()
    except TimeoutError:
        ctx.log.error("probe_command_unreaped", pid=proc.pid)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


PROBE: ProbeSpec[Params] = ProbeSpec(
    name="command",
    params=Params,
    check=check,
    summary="run a program (argument list, no shell); OK on an expected exit code",
)
