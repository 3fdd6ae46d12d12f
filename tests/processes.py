"""Test helpers about real processes: is a pid gone, wait for a group to be gone, read pids."""

from __future__ import annotations

import time
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
