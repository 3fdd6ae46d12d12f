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
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "opsmedic-test", str(mnt)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        # Lazy: a file still open in a failed test must not keep the mount (and us) stuck.
        subprocess.run(["umount", "--lazy", str(mnt)], check=True)


@contextmanager
def bind_mount(source: Path, mnt: Path) -> Iterator[Path]:
    """`source` bind-mounted on `mnt` (created) for one test, always unmounted."""
    mnt.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "--bind", str(source), str(mnt)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "--lazy", str(mnt)], check=True)
