"""The demo's stage: its temporary world, and a watch that runs a scene's probes and prints."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from opsmedic.cli import out
from opsmedic.cli.history import styled
from opsmedic.errors import OpsmedicError
from opsmedic.logs import get_logger
from opsmedic.model import Event, Run, RunState, Status

if TYPE_CHECKING:
    from opsmedic.runtime import Runtime


@dataclass(slots=True)
class Stage:
    """A temporary world for the scenes: its directory, a free port, what scenes started."""

    root: Path
    port: int
    children: list[int] = field(default_factory=list)  # pids to stop when the demo ends
    # Processes to stop (SIGTERM) when the demo ends, kept whole so that stopping reaps them.
    # A scene adds one as soon as it is started: a scene cancelled by its time limit while
    # waiting for it to answer leaves nothing behind.
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def state(self) -> Path:
        return self.root / "state"


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s. nginx's master stops its workers on SIGTERM; killed,
    it would leave them running."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    """A TCP port free on loopback now (the demo's apps bind it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class Watch:
    """What a scene saw: probe changes and finished runs, printed as they happen."""

    t0: float = field(default_factory=time.monotonic)
    runs: list[Run] = field(default_factory=list)
    last: dict[str, Status] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def say(self, text: str) -> None:
        out.print(f"  {time.monotonic() - self.t0:5.1f}s  {text}")

    def healthy(self) -> bool:
        return bool(self.last) and all(s is Status.RESOLVED for s in self.last.values())

    def succeeded(self, rule: str) -> list[Run]:
        return [r for r in self.runs if r.rule == rule and r.state is RunState.SUCCEEDED]

    async def until(self, rule: str, *, healthy: bool = True) -> None:
        """Wait until `rule` has a succeeded run and (if `healthy`) every probe reads ok again.

        A failed run of the rule ends the wait with an error: a demo that cannot remediate
        says why at once instead of waiting for its time limit.
        """
        while not ((self.healthy() or not healthy) and self.succeeded(rule)):
            for run in self.runs:
                if run.rule == rule and run.state in (RunState.FAILED, RunState.TIMED_OUT):
                    raise OpsmedicError(f"the demo's {rule} run {run.state}: {run.message}")
            self.changed.clear()
            await self.changed.wait()


@asynccontextmanager
async def watching(rt: Runtime, probes: list[str]) -> AsyncIterator[Watch]:
    """Run the named probes into the engine until the block ends; print what happens."""
    from opsmedic.probes.runner import ProbeRunner

    watch = Watch()

    def on_run(run: Run) -> None:
        watch.runs.append(run)
        watch.say(f"run …{run.id[-8:]} {run.rule}: {styled(run.state)} — {escape(run.message)}")
        watch.changed.set()

    async def emit(events: list[Event]) -> object:
        for e in events:
            if watch.last.get(e.fingerprint) != e.status:
                watch.last[e.fingerprint] = e.status
                word = "[red]firing[/]" if e.status is Status.FIRING else "[green]ok[/]"
                message = escape(str(e.payload.get("message", "")))
                watch.say(f"probe {e.kind} {escape(e.resource)}: {word} ({message})")
                watch.changed.set()
        return await rt.engine.submit(events)

    rt.engine.on_finished = on_run
    configs = [p for p in rt.config.probes if p.name in probes]
    runner = ProbeRunner(configs, rt.registry, rt.config.base_dir, rt.clock, emit, get_logger(),
                         settings=rt.settings)  # fmt: skip
    task = asyncio.create_task(runner.run())
    try:
        yield watch
        await rt.engine.drain()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
