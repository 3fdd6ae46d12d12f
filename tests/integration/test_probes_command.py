"""The command probe running real processes: exit codes, values, environment, timeouts."""

from __future__ import annotations

import asyncio
import os
import select
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog

from opsmedic.clock import ManualClock
from opsmedic.config.schema import Config, ProbeConfig
from opsmedic.model import Event, Status
from opsmedic.plugins import ProbeContext, Registry
from opsmedic.probes import BUILTIN_PROBES, ProbeRunner
from opsmedic.probes.command import Params as CommandParams
from opsmedic.probes.command import check as check_command

PY = sys.executable


async def probe(
    params: dict[str, Any], probe_timeout: float = 10.0, config: Config | None = None
) -> Event:
    async def emit(events: list[Event]) -> None:
        return None

    cfg = ProbeConfig(name="queue-depth", type="command", timeout=probe_timeout, params=params)
    runner = ProbeRunner(
        [cfg],
        Registry(probes={s.name: s for s in BUILTIN_PROBES}),
        (config or Config()).base_dir,
        ManualClock(),
        emit,
        structlog.get_logger(),
        settings={},
    )
    [event] = await runner.run_once()
    return event


def python(code: str) -> list[str]:
    return [PY, "-c", code]


async def test_numeric_stdout_is_the_value() -> None:
    argv = python("print(' 42.5 ')")
    event = await probe({"argv": argv})
    assert event.status is Status.RESOLVED
    assert event.value == 42.5
    assert (event.source, event.kind) == ("command", "queue-depth")
    assert event.resource == shlex.join(argv)
    assert event.labels == {"exit_code": "0"}
    assert event.payload["message"] == "exit 0"


async def test_text_stdout_is_kept_as_text() -> None:
    event = await probe({"argv": python("print('replica lag: none')")})
    assert event.value == "replica lag: none"


async def test_unexpected_exit_code_is_firing_with_stderr_reason() -> None:
    code = "import sys; print('7'); sys.stderr.write('queue broker down\\nmore'); sys.exit(3)"
    event = await probe({"argv": python(code)})
    assert event.status is Status.FIRING
    assert event.severity == "critical"
    assert event.value == 7.0  # the reading is kept even when the exit code says failing
    assert event.labels == {"exit_code": "3"}
    assert event.payload["message"] == "exit 3 (expected 0): queue broker down"
    assert event.payload["details"]["stderr"] == "queue broker down\nmore"


async def test_ok_exit_codes_and_exit_code_value() -> None:
    params = {"argv": python("print('warn'); raise SystemExit(1)"), "ok_exit_codes": [0, 1]}
    event = await probe({**params, "value": "exit_code"})
    assert event.status is Status.RESOLVED
    assert event.value == 1.0
    assert event.payload["details"]["stdout"] == "warn"


async def test_killed_by_signal() -> None:
    event = await probe({"argv": ["sh", "-c", "kill -9 $$"]})
    assert event.status is Status.FIRING
    assert event.labels == {"exit_code": "-9"}
    assert event.payload["message"] == "killed by SIGKILL (expected 0)"


async def test_long_stdout_is_truncated_and_not_a_number() -> None:
    event = await probe({"argv": python("print('1' * 100_000)")})
    assert event.value == "1" * 4096
    assert event.payload["details"]["stdout_truncated"] is True


async def test_program_not_found() -> None:
    event = await probe({"argv": ["/nonexistent/check-queue"]})
    assert event.status is Status.FIRING
    assert event.value is None
    assert event.labels == {"error": "spawn"}
    assert "cannot run /nonexistent/check-queue" in event.payload["message"]


async def test_cwd_is_relative_to_the_config_and_env_is_added(tmp_path: Path) -> None:
    (tmp_path / "checks").mkdir()
    code = "import os; print(os.getcwd(), os.environ['QUEUE'], 'PATH' in os.environ)"
    params = {"argv": python(code), "cwd": "checks", "env": {"QUEUE": "orders"}}
    event = await probe(params, config=Config(base_dir=tmp_path))
    assert event.value == f"{tmp_path / 'checks'} orders True"


async def test_stdin_is_closed() -> None:
    event = await probe({"argv": ["cat"]})  # would hang if it inherited a terminal
    assert event.status is Status.RESOLVED
    assert event.value == ""


async def test_timeout_is_a_failing_event() -> None:
    event = await probe({"argv": ["sleep", "300"]}, probe_timeout=0.2)
    assert event.status is Status.FIRING
    assert event.value is None
    assert event.labels == {"probe_error": "timeout"}
    assert event.payload["message"] == "probe timed out after 0.2s"


async def test_cancelled_check_kills_the_whole_process_group(tmp_path: Path) -> None:
    # The runner's timeout is a cancellation; cancelling the check directly lets the test
    # pick the moment (once the grandchild is known) instead of racing a deadline.
    fifo = tmp_path / "pid.fifo"
    os.mkfifo(fifo)
    # The shell's background child keeps our stdout pipe open: only a group kill ends it.
    script = 'sleep 300 & echo $! > "$1"; wait'
    params = CommandParams(argv=["sh", "-c", script, "sh", str(fifo)])
    ctx = ProbeContext(clock=ManualClock(), log=structlog.get_logger())
    check = asyncio.create_task(check_command(params, ctx))
    pid = int(await asyncio.wait_for(read_line(fifo), timeout=10))
    check.cancel()
    with pytest.raises(asyncio.CancelledError):
        await check
    assert_terminated(pid)


async def read_line(fifo: Path) -> str:
    """One line from a FIFO, awaited on the event loop (opened read-write so it never EOFs)."""
    loop = asyncio.get_running_loop()
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    data = b""
    try:
        while not data.endswith(b"\n"):
            ready = loop.create_future()
            loop.add_reader(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
            data += os.read(fd, 64)
    finally:
        os.close(fd)
    return data.decode()


def assert_terminated(pid: int) -> None:
    """The process has exited (a zombie awaiting its new parent counts): pidfd says so."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # exited and reaped already
    try:
        readable, _, _ = select.select([fd], [], [], 10)
        assert readable, f"process {pid} survived the cancelled check"
    finally:
        os.close(fd)
