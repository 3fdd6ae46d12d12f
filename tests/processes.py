"""Test helpers about real processes: is a pid gone, wait for a group to be gone, read pids."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def pids_in(path: Path) -> list[int]:
    assert path.exists(), "the command did not get to write its pids before the timeout"
    return [int(word) for word in path.read_text().split()]


@contextmanager
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
