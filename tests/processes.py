"""Test helpers about real processes: is a pid gone, wait for a group to be gone, read pids."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import psutil


def gone(pid: int) -> bool:
    """The process no longer runs (a zombie waiting for a reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def all_gone(pids: list[int], within: float = 10.0) -> bool:
    """Whether every pid is gone, polled up to a deadline: a SIGKILLed process needs a moment
    to finish exiting, and nothing else signals its end to a process that is not its parent."""
    deadline = time.monotonic() + within
    while not all(gone(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_written(path: Path, within: float = 30.0) -> None:
    """Wait until a command has written its pids to `path` (pids_in then asserts it did)."""
    deadline = time.monotonic() + within
    while not (path.exists() and path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)


def pids_in(path: Path) -> list[int]:
    assert path.exists(), "the command did not get to write its pids before the timeout"
    return [int(word) for word in path.read_text().split()]


Starter = Callable[[Sequence[str | Path], str | None], "subprocess.Popen[bytes]"]


@contextlib.contextmanager
def ready_processes() -> Iterator[Starter]:
    """start(argv, user) → a process that has printed `ready` (so a test never signals it
    before its traps are set), run as `user` (None: as us); all killed on leaving."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: Sequence[str | Path], user: str | None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, user=user, cwd="/", stdout=subprocess.PIPE)
        started.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()


@contextlib.contextmanager
def file_holders() -> Iterator[Callable[[Path, str], subprocess.Popen[str]]]:
    """Starts children that each hold a file open (mode 'a' or 'r') until the block ends."""
    children: list[subprocess.Popen[str]] = []
    code = "import sys; f = open(sys.argv[1], sys.argv[2]); print('ready', flush=True); sys.stdin.read()"

    def start(path: Path, mode: str) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(path), mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        children.append(child)
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        return child

    try:
        yield start
    finally:
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(timeout=30)
            assert child.stdout is not None
            child.stdout.close()
