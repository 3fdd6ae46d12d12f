"""A real Redis from Debian's redis-server, on loopback, that a test can stop and start again.

The fixture `redis_server` starts one per test in its own temporary directory on a free port,
without RDB snapshots (`--save ''`) but with an append-only file fsynced on every write, so
a restart (clean or after SIGKILL) comes back with every acknowledged write, as a production
Redis with persistence would; `stop()` and `start()` simulate an outage on the same port.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

if __package__:
    from .services import HOST, START_TIMEOUT, _fail, _program, _run, _stop, free_port
else:
    from services import HOST, START_TIMEOUT, _fail, _program, _run, _stop, free_port


class RedisServer:
    """One redis-server: `url` to reach it, `cli()` to poke it as an operator would."""

    def __init__(self, directory: Path, port: int, *, durable: bool = True) -> None:
        self.directory = directory
        self.port = port
        # Without it (the benchmarks) nothing is fsynced, and a restart comes back empty.
        self.durable = durable
        self.url = f"redis://{HOST}:{port}/0"
        self.log = directory / "redis.log"
        self._program = _program("redis-server", package="redis-server")
        self._cli = _program("redis-cli", package="redis-tools")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start it (again, on the same port and data) and return once it answers PING."""
        assert not self.running, "redis-server is already running"
        argv = [
            self._program, "--bind", HOST, "--port", str(self.port), "--save", "",
            "--appendonly", "yes" if self.durable else "no", "--appendfsync", "always",
            "--dir", str(self.directory), "--logfile", str(self.log), "--daemonize", "no",
        ]  # fmt: skip
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        # It listens before it has loaded its append-only file (answering LOADING meanwhile):
        # ready means PONG, not an open port.
        while self.cli("PING", check=False) != "PONG":
            if self._proc.poll() is not None:
                _fail(f"redis-server exited with code {self._proc.returncode}", self.log)
            if time.monotonic() >= deadline:
                _fail(f"redis-server on {HOST}:{self.port} never answered PING", self.log)
            time.sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        """Stop it: SIGTERM (a clean shutdown) or, with `kill`, SIGKILL (a crash)."""
        assert self._proc is not None
        if kill and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=START_TIMEOUT)
        _stop(self._proc)

    def monitor(self) -> subprocess.Popen[str]:
        """`redis-cli monitor`, once it has started: every command Redis runs, in its order,
        on its stdout until it is terminated."""
        argv = [self._cli, "-h", HOST, "-p", str(self.port), "monitor"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "OK"
        return proc

    def cli(self, *args: str, check: bool = True) -> str:
        """redis-cli's raw answer to one command, stripped."""
        argv = [self._cli, "-h", HOST, "-p", str(self.port), "--raw", *args]
        if check:
            return _run(argv, f"redis-cli {args[0]}").strip()
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=START_TIMEOUT, check=False
        )
        return done.stdout.strip()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh, empty Redis for one test, stopped at the end whatever happened."""
    server = RedisServer(tmp_path, free_port())
    server.start()
    try:
        yield server
    finally:
        if server.running:
            server.stop()
