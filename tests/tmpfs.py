"""A tmpfs mounted for one test (skipped where mounting is not allowed), unmounted lazily."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(mnt: Path, options: str) -> Iterator[Path]:
    """`mnt` (an existing directory) as a tmpfs with `options` (`size=4m,nr_inodes=64`)."""
    with mounted(["-t", "tmpfs", "-o", options, "opsmedic-test", str(mnt)], "a tmpfs") as done:
        yield done


@contextmanager
def bind_mount(source: Path, mnt: Path) -> Iterator[Path]:
    """`source` bind-mounted on `mnt` (created) for one test, always unmounted."""
    mnt.mkdir(parents=True, exist_ok=True)
    with mounted(["--bind", str(source), str(mnt)], "a bind mount") as done:
        yield done


@contextmanager
def mounted(args: list[str], what: str) -> Iterator[Path]:
    """`mount ARGS` (the last one the mount point), skipped where mounting is not allowed."""
    mnt = Path(args[-1])
    run = subprocess.run(["mount", *args], capture_output=True, text=True)
    if run.returncode != 0:
        pytest.skip(f"cannot mount {what} here: {run.stderr.strip()}")
    try:
        yield mnt
    finally:
        # Lazy: a file still open in a failed test must not keep the mount (and us) stuck.
        subprocess.run(["umount", "--lazy", str(mnt)], check=True)
