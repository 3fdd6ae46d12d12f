"""Free space per filesystem, to report what deleting files really gave back."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path


def free_bytes(path: Path | str) -> int:
    """Bytes an unprivileged user can still write on the filesystem holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def free_by_device(paths: Iterable[Path | str]) -> dict[int, int]:
    """free_bytes of each filesystem holding one of `paths`, keyed by st_dev (once each)."""
    free: dict[int, int] = {}
    for path in paths:
        dev = os.stat(path).st_dev
        if dev not in free:
            free[dev] = free_bytes(path)
    return free


def freed(before: Mapping[int, int], after: Mapping[int, int]) -> dict[int, int]:
    """Bytes given back on each filesystem measured both times; negative if others wrote more.

    A deleted file that a process still holds open keeps its blocks, so this, not the sum
    of the deleted sizes, is what the disk gained.
    """
    return {dev: after[dev] - before[dev] for dev in before.keys() & after.keys()}


def megabytes(n: int) -> str:
    """A byte count as outcomes say it: `1,234.5 MB` (decimal megabytes)."""
    return f"{n / 1e6:,.1f} MB"
