"""One scaled instance's life: started (a detached process or `systemctl start UNIT@N`), asked
its health, drained of its connections, stopped (by pid and start time, or `systemctl stop`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from opsmedic.config.scale import ScaleConfig, SystemdUnit, fill
from opsmedic.errors import ActionError
from opsmedic.releases.scale_state import Instance
from opsmedic.transport.http import http_client
from opsmedic.transport.output import Captured
from opsmedic.transport.process import run_local

_OUTPUT_LIMIT = 4096  # of systemctl's output, kept for the message
_POLL_S = 0.05  # between two looks at a stopping process or a draining port


def systemd_argv(unit: SystemdUnit, verb: str, n: int) -> list[str]:
    """`systemctl VERB UNIT@N.service`, as run (no shell)."""
    return [unit.systemctl, verb, f"{unit.unit}@{n}.service"]


@dataclass(slots=True)
class Launcher:
    """Starts and stops one service's instances; keeps the processes it started, so that
    their exit is reaped (no zombie left behind)."""

    config: ScaleConfig
    service: str
    logs: Path  # each instance's stdout and stderr, N.log
    children: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    async def start(self, n: int) -> Instance:
        return await _start(self, n)

    async def stop(self, instance: Instance) -> None:
        await _stop(self, instance)

    async def healthy(self, instance: Instance) -> str | None:
        return await healthy(self, instance)

    def reap(self, instance: Instance) -> None:
        _reap(self.children, instance)

    def alive(self, instance: Instance) -> bool:
        """Its process still runs (a systemd instance: assumed, systemd restarts it)."""
        return instance.pid is None or _process(instance) is not None


async def _start(launcher: Launcher, n: int) -> Instance:
    """Instance `n` started, as a record with state `starting`; ActionError when it cannot be,
    or when another process already listens on its port (it would answer its health check)."""
    config, service, logs = launcher.config, launcher.service, launcher.logs
    instance = Instance(n, config.address(n), "starting", started_at=time.time())
    taken = await asyncio.to_thread(_port_taken, instance.address)
    if taken is not None:
        raise ActionError(f"instance {n}: {taken}: not started")
    if config.systemd is not None:
        await _systemctl(config, "start", n)
        return instance
    assert config.command is not None
    argv = [fill(word, config.values(service, n)) for word in config.command.argv]
    proc = _spawn(argv, config.command.cwd, logs / f"{n}.log")
    launcher.children[proc.pid] = proc
    instance.pid = proc.pid
    with contextlib.suppress(psutil.Error):
        instance.create_time = psutil.Process(proc.pid).create_time()
    return instance


def _spawn(argv: list[str], cwd: Path | None, log: Path) -> subprocess.Popen[bytes]:
    """`argv` run detached (no shell), its output appended to `log`; ActionError naming it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        try:
            # Its own session: the instance outlives this call, and a stop signals its group.
            return subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise ActionError(f"{argv[0]} cannot be started: {exc}") from None


def _listeners(port: int) -> set[int]:
    """The pids listening on TCP `port` (those this process may see)."""
    return {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    }


def _named(pids: set[int]) -> str:
    names = []
    for pid in sorted(pids):
        try:
            names.append(f"pid {pid} ({psutil.Process(pid).name()})")
        except psutil.Error:
            names.append(f"pid {pid}")
    return ", ".join(names)


def _port_taken(address: str) -> str | None:
    """Why `address` is already in use (a bind to it fails), naming its listener; or None."""
    host, port = address.rsplit(":", 1)
    try:
        family, kind, _, _, where = socket.getaddrinfo(
            host.strip("[]"), int(port), type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind) as probe:
            # As a server binds: a port left in TIME_WAIT is free, one listened on is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(where)
    except OSError as exc:
        with contextlib.suppress(psutil.Error, OSError):
            pids = _listeners(int(port))
            if pids:
                return f"{address} is already listened on by {_named(pids)}"
        return f"{address} cannot be bound: {exc.strerror or exc}"
    return None


def _foreign_listener(instance: Instance) -> str | None:
    """Who else serves the instance's port, when a process outside its own tree does."""
    found = _process(instance)
    if found is None:
        return None
    try:
        ours = {found.pid, *(c.pid for c in found.children(recursive=True))}
        pids = _listeners(int(instance.address.rsplit(":", 1)[1]))
    except (psutil.Error, OSError):
        return None  # the table cannot be read here: the health check is all there is
    others = pids - ours
    if others and not pids & ours:
        return (
            f"{instance.address} is served by {_named(others)}, not by the instance's "
            f"process {instance.pid}"
        )
    return None


def _process(instance: Instance) -> psutil.Process | None:
    """The instance's process, if it still runs: the pid **and** its start time must match."""
    if instance.pid is None:
        return None
    try:
        found = psutil.Process(instance.pid)
        if (
            instance.create_time is not None
            and abs(found.create_time() - instance.create_time) > 0.01
        ):
            return None  # the pid was reused by another process
        return None if found.status() == psutil.STATUS_ZOMBIE else found
    except psutil.Error:
        return None


async def healthy(launcher: Launcher, instance: Instance) -> str | None:
    """Ask the instance's health path until it answers an expected status: None, or why not
    (its process exited, or `health.timeout` passed, with the last answer)."""
    import httpx

    check = launcher.config.health
    url = f"http://{instance.address}{check.path}"
    deadline, seen = time.monotonic() + check.timeout, "no answer yet"
    async with http_client(verify_tls=True, timeout=min(check.timeout, 2.0)) as client:
        while True:
            if instance.pid is not None and _process(instance) is None:
                launcher.reap(instance)
                return f"its process {instance.pid} exited before {url} answered ({seen})"
            try:
                response = await client.get(url)
            except httpx.HTTPError as exc:
                seen = f"{type(exc).__name__}: {exc}"[:200]
            else:
                if response.status_code in check.expect_status:
                    # A foreign server on the port answers too: only our process may pass.
                    return await asyncio.to_thread(_foreign_listener, instance)
                seen = f"status {response.status_code}"
            if time.monotonic() >= deadline:
                return f"{url} not healthy within {check.timeout:g}s (last: {seen})"
            await asyncio.sleep(check.interval)


def _connections(address: str) -> int:
    """TCP connections established to `address` on this host (nginx's, to the instance)."""
    host, port = address.rsplit(":", 1)
    found = 0
    for conn in psutil.net_connections(kind="tcp"):
        local = conn.laddr
        if conn.status != psutil.CONN_ESTABLISHED or not local or local.port != int(port):
            continue
        if local.ip == host.strip("[]") or not host.replace(".", "").isdigit():
            found += 1
    return found


async def drained(config: ScaleConfig, instance: Instance) -> str | None:
    """Wait, up to `drain_timeout`, until no connection to the instance is left open (the
    requests nginx's old workers still had in flight): None, or what was left."""
    deadline = time.monotonic() + config.drain_timeout
    try:
        while (left := await asyncio.to_thread(_connections, instance.address)) > 0:
            if time.monotonic() >= deadline:
                return (
                    f"{left} connection(s) still open after drain_timeout {config.drain_timeout:g}s"
                )
            await asyncio.sleep(_POLL_S)
    except (psutil.Error, OSError) as exc:
        # The table cannot be read here: the whole drain_timeout is the only safe wait.
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        return f"connections unreadable ({exc}): waited drain_timeout {config.drain_timeout:g}s"
    return None


async def _stop(launcher: Launcher, instance: Instance) -> None:
    """The instance stopped: `systemctl stop`, or SIGTERM to its process group, SIGKILL after
    `stop_timeout`. ActionError when it cannot be (no process recorded to stop)."""
    config = launcher.config
    if config.systemd is not None:
        await _systemctl(config, "stop", instance.n)
        return
    if instance.pid is None:
        raise ActionError(
            f"instance {instance.n} ({instance.address}) was not started by "
            "opsmedic: no process recorded to stop"
        )
    found = _process(instance)
    if found is not None:
        _signal(instance.pid, signal.SIGTERM)
        deadline = time.monotonic() + config.stop_timeout
        while time.monotonic() < deadline:
            if _process(instance) is None:
                break
            await asyncio.sleep(_POLL_S)
        if _process(instance) is not None:
            _signal(instance.pid, signal.SIGKILL)
    launcher.reap(instance)


def _signal(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _reap(children: dict[int, subprocess.Popen[bytes]], instance: Instance) -> None:
    proc = children.pop(instance.pid or -1, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)


async def _systemctl(config: ScaleConfig, verb: str, n: int) -> None:
    assert config.systemd is not None
    argv = systemd_argv(config.systemd, verb, n)
    try:
        done = await run_local(
            argv,
            env=os.environ,
            cwd=None,
            stdin=None,
            time_limit=config.stop_timeout,
            captured=Captured.bounded(_OUTPUT_LIMIT),
        )
    except OSError as exc:
        raise ActionError(f"{' '.join(argv)}: {exc}") from None
    if done.exit_code != 0:
        why = "timed out" if done.timed_out else f"exit {done.exit_code or done.signal}"
        raise ActionError(f"{' '.join(argv)}: {why}: {done.labelled().strip()[:300]}")
