"""Which processes hold given files open, and whether for writing: one pass over /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass

_PROC = "/proc"
MAPPED = -1  # a Holder's fd when the file is held by a shared writable mapping, not an fd


@dataclass(frozen=True, slots=True)
class Holder:
    """One open file descriptor on a file of interest."""

    pid: int
    fd: int
    writing: bool
    command: str


def scan_open(identities: set[tuple[int, int]]) -> dict[tuple[int, int], list[Holder]]:
    """Every process's fds on the files named by (st_dev, st_ino), unlinked files included.

    psutil's open_files() gives paths, which a rename or an unlink makes wrong; stat() of
    /proc/PID/fd/N reaches the open inode itself. Processes that exit during the scan, or
    that we may not inspect, are passed over.
    """
    found: dict[tuple[int, int], list[Holder]] = {}
    if not identities:
        return found
    with os.scandir(_PROC) as entries:
        pids = [int(e.name) for e in entries if e.name.isdigit()]
    mapped = {(os.major(dev), os.minor(dev), ino): (dev, ino) for dev, ino in identities}
    for pid in pids:
        for fd, key in _fds_on(pid, identities):
            writing = _opened_for_writing(pid, fd)
            if writing is not None:
                found.setdefault(key, []).append(Holder(pid, fd, writing, _command(pid)))
        for key in _shared_writable_maps(pid, mapped):
            holders = found.setdefault(key, [])
            if not any(h.pid == pid and h.writing for h in holders):  # said once per process
                holders.append(Holder(pid, MAPPED, True, _command(pid)))
    return found


def _shared_writable_maps(
    pid: int, mapped: dict[tuple[int, int, int], tuple[int, int]]
) -> set[tuple[int, int]]:
    """Files of interest `pid` maps shared and writable (`rw-s`): it may write them with no fd
    left open, so they are being written as surely as through one."""
    hits: set[tuple[int, int]] = set()
    try:
        with open(f"{_PROC}/{pid}/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) < 5 or not fields[1].startswith("rw") or fields[1][3] != "s":
                    continue
                major, minor = (int(x, 16) for x in fields[3].split(":"))
                key = mapped.get((major, minor, int(fields[4])))
                if key is not None:
                    hits.add(key)
    except (OSError, ValueError):  # gone, not ours to read, or a line we do not know
        return set()
    return hits


def held_open(deleted: dict[tuple[int, int], str]) -> list[dict[str, object]]:
    """Deleted files (st_dev, st_ino → path) whose space a process still holds by an fd."""
    holders = scan_open(set(deleted)) if deleted else {}
    return [
        {"path": deleted[key], "pid": h.pid, "command": h.command}
        for key, found in holders.items()
        for h in found
    ]


def held_open_notes(held: list[dict[str, object]], limit: int = 3) -> list[str]:
    """The first `limit` of held_open's findings as an outcome's message says them."""
    return [
        f"{h['path']} still open by pid {h['pid']} ({h['command']}): space not freed"
        for h in held[:limit]
    ]


def _fds_on(pid: int, identities: set[tuple[int, int]]) -> list[tuple[int, tuple[int, int]]]:
    fd_dir = f"{_PROC}/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:  # gone, or another user's process without the right to look
        return []
    hits: list[tuple[int, tuple[int, int]]] = []
    for name in names:
        try:
            st = os.stat(f"{fd_dir}/{name}")
        except OSError:  # closed meanwhile
            continue
        key = (st.st_dev, st.st_ino)
        if key in identities:
            hits.append((int(name), key))
    return hits


def _opened_for_writing(pid: int, fd: int) -> bool | None:
    """From the fd's open flags; None when the fd was closed since it was seen."""
    try:
        with open(f"{_PROC}/{pid}/fdinfo/{fd}", encoding="ascii") as info:
            for line in info:
                if line.startswith("flags:"):
                    access = int(line.split()[1], 8) & os.O_ACCMODE
                    return access in (os.O_WRONLY, os.O_RDWR)
    except OSError:
        return None
    return None


def _command(pid: int) -> str:
    try:
        with open(f"{_PROC}/{pid}/comm", encoding="utf-8", errors="replace") as comm:
            return comm.read().strip()
    except OSError:
        return "?"
