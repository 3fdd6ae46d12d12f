"""Who holds a file open (by inode, even once unlinked), and free space per filesystem."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsmedic.archive.openfiles import Holder, scan_open
from opsmedic.archive.space import free_by_device, free_bytes, freed

# Opens each (path, mode) pair, prints the fds, then holds them until stdin closes.
HOLDER = """
import sys
files = [open(path, mode) for path, mode in zip(sys.argv[1::2], sys.argv[2::2])]
print(" ".join(str(f.fileno()) for f in files), flush=True)
sys.stdin.read()
"""

Hold = Callable[..., tuple[subprocess.Popen[str], list[int]]]


@pytest.fixture
def hold() -> Iterator[Hold]:
    """hold(path, mode, ...) → a child holding those files open, and its fd numbers."""
    children: list[subprocess.Popen[str]] = []

    def start(*path_modes: str | Path) -> tuple[subprocess.Popen[str], list[int]]:
        child = subprocess.Popen(
            [sys.executable, "-c", HOLDER, *map(str, path_modes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        assert child.stdout is not None
        return child, [int(fd) for fd in child.stdout.readline().split()]

    yield start
    for child in children:
        child.communicate("")  # closing stdin lets it exit


def key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


COMMAND = Path(sys.executable).name[:15]  # the kernel's comm: the exec'd name, 15 chars


def test_a_writer_a_reader_and_a_read_write_fd_are_told_apart(tmp_path: Path, hold: Hold) -> None:
    log = tmp_path / "app.log"
    log.write_text("x\n")
    child, (w, r, rw) = hold(log, "a", log, "r", log, "r+")

    found = scan_open({key(log)})

    assert sorted(found[key(log)], key=lambda h: h.fd) == sorted(
        [
            Holder(child.pid, w, True, COMMAND),
            Holder(child.pid, r, False, COMMAND),
            Holder(child.pid, rw, True, COMMAND),
        ],
        key=lambda h: h.fd,
    )


def test_a_file_held_after_unlink_is_still_found_by_its_inode(tmp_path: Path, hold: Hold) -> None:
    """The case that keeps deleted logs' space: found with the pid to report."""
    log = tmp_path / "app.log.1"
    log.write_text("x\n")
    identity = key(log)
    child, (fd,) = hold(log, "a")
    log.unlink()

    assert scan_open({identity}) == {identity: [Holder(child.pid, fd, True, COMMAND)]}


def test_files_nobody_holds_are_absent(tmp_path: Path, hold: Hold) -> None:
    held, idle = tmp_path / "held.log", tmp_path / "idle.log"
    held.write_text("")
    idle.write_text("")
    hold(held, "r")

    found = scan_open({key(held), key(idle)})

    assert set(found) == {key(held)}
    assert scan_open(set()) == {}


def test_free_bytes_is_what_an_unprivileged_user_may_write(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    # Another process may write meanwhile; the figure is the same formula either way.
    assert abs(free_bytes(tmp_path) - st.f_bavail * st.f_frsize) < 1 << 30
    with pytest.raises(FileNotFoundError):
        free_bytes(tmp_path / "missing")


def test_free_space_is_keyed_by_filesystem_once(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    free = free_by_device([tmp_path, tmp_path / "a", "/proc"])
    assert set(free) == {tmp_path.stat().st_dev, os.stat("/proc").st_dev}
    with pytest.raises(FileNotFoundError):
        free_by_device([tmp_path / "missing"])


def test_freed_compares_the_filesystems_measured_both_times() -> None:
    assert freed({1: 100, 2: 50, 3: 7}, {1: 160, 2: 40, 4: 9}) == {1: 60, 2: -10}
