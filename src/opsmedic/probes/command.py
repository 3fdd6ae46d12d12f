"""The `command` probe: run an argument list (no shell); OK on an expected exit code."""

from __future__ import annotations

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
from opsmedic.transport.output import Captured, OutputBuffer
from opsmedic.transport.process import run_local

STDOUT_LIMIT = 4096  # bytes of stdout kept: the value, not a log
STDERR_LIMIT = 1024  # bytes of stderr kept for the event's details

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
    # Only the start of each stream is kept: stdout is the value, stderr the reason. The rest
    # is read and dropped, so a chatty command neither fills memory nor blocks on a full pipe.
    captured = Captured(
        stdout=OutputBuffer(STDOUT_LIMIT, keep_tail=False),
        stderr=OutputBuffer(STDERR_LIMIT, keep_tail=False),
    )
    try:
        # No time limit of its own: the runner's timeout cancels the check, and a cancelled
        # run kills the command's whole process group.
        await run_local(
            params.argv,
            env={**os.environ, **params.env},
            cwd=str(cwd) if cwd is not None else None,
            stdin=None,
            time_limit=None,
            captured=captured,
        )
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
    return [_observation(params, captured)]


def _observation(params: Params, captured: Captured) -> Observation:
    code = _returncode(captured)
    out, out_cut, err = captured.stdout.kept(), captured.stdout.cut > 0, captured.stderr.kept()
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

    how = f"killed by {captured.signal}" if captured.signal else f"exit {code}"
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


def _returncode(captured: Captured) -> int:
    """The exit code, or minus the number of the signal that killed the command."""
    if captured.signal is not None:
        return -signal.Signals[captured.signal].value
    assert captured.exit_code is not None  # no time limit, so the command ran to its end
    return captured.exit_code


PROBE: ProbeSpec[Params] = ProbeSpec(
    name="command",
    params=Params,
    check=check,
    summary="run a program (argument list, no shell); OK on an expected exit code",
)
