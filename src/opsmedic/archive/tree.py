"""A directory tree's size as `du -sb` counts it: no symlink followed, one filesystem, bounded."""

from __future__ import annotations

import errno
import heapq
import os
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from stat import S_ISDIR

# Each directory is opened relative to its parent's descriptor with O_NOFOLLOW and checked
# against the inode its parent listed: a directory swapped for a symlink (or for another
# directory) during the walk is never entered.
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# One descriptor is held per level being walked; deeper than this is reported, not entered.
MAX_DEPTH = 256
_NAMED = 5  # unreadable entries and other filesystems named; their counts are complete
_CLOCK_EVERY = 1024  # entries between two looks at the clock


@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    bytes: int


@dataclass(slots=True)
class TreeSize:
    """What one walk found; `complete` False when a bound stopped it (`stopped` says which)."""

    path: str
    bytes: int = 0  # apparent sizes: files, directories, symlinks; a hard-linked inode once
    files: int = 0  # every entry that is not a directory
    dirs: int = 0
    complete: bool = True
    stopped: str | None = None
    elapsed_s: float = 0.0
    errors: int = 0
    errors_named: list[dict[str, str]] = field(default_factory=list)
    other_filesystems: int = 0
    other_filesystems_named: list[str] = field(default_factory=list)
    largest_files: list[Entry] = field(default_factory=list)
    largest_dirs: list[Entry] = field(default_factory=list)  # the top directory's children

    @property
    def entries(self) -> int:
        return self.files + self.dirs


class NotWalkable(OSError):
    """The path itself cannot be measured (missing, a symlink, unreadable)."""


@dataclass(slots=True)
class _Frame:
    fd: int
    path: str
    depth: int
    top: str | None  # the child of the walked directory this frame is under, or None at the top
    subdirs: list[tuple[str, int]]  # (name, st_ino) listed here, still to enter


def measure(
    path: str,
    *,
    max_entries: int,
    max_seconds: float,
    top: int = 5,
    clock: Callable[[], float] = time.monotonic,
) -> TreeSize:
    """Walk `path` (a directory or a single file); raises NotWalkable for the path itself."""
    started = clock()
    # O_PATH opens nothing for reading: a device or a fifo named by mistake is only looked
    # at, never opened (a tape would rewind). With O_NOFOLLOW it names a symlink itself.
    try:
        where = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise NotWalkable(exc.errno, exc.strerror or str(exc)) from None
    walk = _Walk(path, max_entries, started + max_seconds, top, clock)
    try:
        st = os.fstat(where)
        if stat.S_ISLNK(st.st_mode):
            raise NotWalkable(errno.ELOOP, "is a symlink (never followed)")
        if not stat.S_ISDIR(st.st_mode):
            walk.count(st, None, path)
        else:
            try:
                fd = os.open(".", _OPEN_DIR, dir_fd=where)
            except OSError as exc:
                raise NotWalkable(exc.errno, exc.strerror or str(exc)) from None
            walk.tree(fd, st)  # closes fd
    finally:
        os.close(where)
    return walk.result(clock() - started)


class _Walk:
    """One walk's running totals; `tree` does the walking, depth first."""

    def __init__(
        self, path: str, max_entries: int, deadline: float, top: int, clock: Callable[[], float]
    ) -> None:
        self.size = TreeSize(path)
        self.max_entries, self.deadline, self.top, self.clock = max_entries, deadline, top, clock
        self.files: list[tuple[int, str]] = []  # a min-heap of the `top` largest
        self.under: dict[str, int] = {}  # bytes below each child of the walked directory
        self.linked: set[int] = set()  # inodes with several links, counted once (as du does)
        self.dev = 0

    def count(self, st: os.stat_result, top: str | None, where: str, name: str = "") -> None:
        """Add one entry: `where` is its path, or its directory's when `name` is given."""
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            if st.st_ino in self.linked:
                return
            self.linked.add(st.st_ino)
        self.size.bytes += st.st_size
        if top is not None:
            self.under[top] = self.under.get(top, 0) + st.st_size
        if stat.S_ISDIR(st.st_mode):
            self.size.dirs += 1
            return
        self.size.files += 1
        if self.top and (len(self.files) < self.top or st.st_size > self.files[0][0]):
            # The path is only made for the few that enter the list.
            item = (st.st_size, f"{where.rstrip('/')}/{name}" if name else where)
            if len(self.files) < self.top:
                heapq.heappush(self.files, item)
            else:
                heapq.heapreplace(self.files, item)

    def error(self, path: str, exc: OSError | str) -> None:
        self.size.errors += 1
        if len(self.size.errors_named) < _NAMED:
            why = exc if isinstance(exc, str) else exc.strerror or str(exc)
            self.size.errors_named.append({"path": path, "error": why})

    def stop(self, why: str) -> None:
        self.size.complete, self.size.stopped = False, why

    def tree(self, fd: int, st: os.stat_result) -> None:
        """Walk the open directory `fd` (whose lstat is `st`); closes every descriptor."""
        self.dev = st.st_dev
        self.count(st, None, self.size.path)
        stack = [_Frame(fd, self.size.path, 0, None, [])]
        try:
            self._list(stack[0])
            while stack and self.size.complete:
                frame = stack[-1]
                if not frame.subdirs:
                    os.close(stack.pop().fd)
                    continue
                name, ino = frame.subdirs.pop()
                child = self._enter(frame, name, ino)
                if child is not None:
                    stack.append(child)
                    self._list(child)
        finally:
            for frame in stack:
                os.close(frame.fd)

    def _enter(self, parent: _Frame, name: str, ino: int) -> _Frame | None:
        path = f"{parent.path.rstrip('/')}/{name}"
        if parent.depth + 1 >= MAX_DEPTH:
            self.error(path, f"deeper than {MAX_DEPTH} levels: not entered")
            return None
        try:
            fd = os.open(name, _OPEN_DIR, dir_fd=parent.fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                exc = OSError(exc.errno, "replaced during the walk (not entered)")
            self.error(path, exc)
            return None
        if os.fstat(fd).st_ino != ino:
            os.close(fd)
            self.error(path, "replaced during the walk (not entered)")
            return None
        return _Frame(fd, path, parent.depth + 1, parent.top or name, [])

    def _list(self, frame: _Frame) -> None:
        """Count every entry of `frame`'s directory; its subdirectories are left to enter."""
        if not self._within_bounds():
            return
        try:
            entries = os.scandir(frame.fd)
        except OSError as exc:
            self.error(frame.path, exc)
            return
        # The common case (a file with one link, too small for the largest-files list) is
        # summed in locals: the walk's cost is this loop, once per entry of the tree.
        plain_bytes = plain_files = 0
        floor = self._floor()
        try:
            with entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError as exc:
                        if exc.errno != errno.ENOENT:  # gone since listed: nothing to count
                            self.error(f"{frame.path.rstrip('/')}/{entry.name}", exc)
                        continue
                    mode = st.st_mode
                    if not S_ISDIR(mode) and st.st_nlink == 1 and st.st_size <= floor:
                        plain_bytes += st.st_size
                        plain_files += 1
                        if plain_files & (_CLOCK_EVERY - 1) == 0 and not self._within_bounds(
                            plain_files
                        ):
                            return
                        continue
                    self._other(frame, entry.name, st)
                    floor = self._floor()
                    if self.size.entries & (_CLOCK_EVERY - 1) == 0 and not self._within_bounds(
                        plain_files
                    ):
                        return
        finally:
            self.size.bytes += plain_bytes
            self.size.files += plain_files
            if frame.top is not None:
                self.under[frame.top] = self.under.get(frame.top, 0) + plain_bytes

    def _floor(self) -> int:
        """The size a file must exceed to enter the largest-files list (-1: it is not full)."""
        if not self.top:
            return sys.maxsize
        return self.files[0][0] if len(self.files) >= self.top else -1

    def _other(self, frame: _Frame, name: str, st: os.stat_result) -> None:
        """Count a directory, a hard-linked file or one of the largest files."""
        is_dir = S_ISDIR(st.st_mode)
        # Subtotals are kept for the walked directory's subdirectories only.
        top = frame.top or (name if is_dir else None)
        if is_dir and st.st_dev != self.dev:
            self._other_filesystem(f"{frame.path.rstrip('/')}/{name}")
            return
        self.count(st, top, frame.path, name)
        if is_dir:
            frame.subdirs.append((name, st.st_ino))

    def _within_bounds(self, pending: int = 0) -> bool:
        """Whether the walk may go on; `pending`: entries counted but not yet in the totals."""
        if self.size.entries + pending >= self.max_entries:
            self.stop(f"max_entries ({self.max_entries})")
        elif self.clock() >= self.deadline:
            self.stop("time")
        return self.size.complete

    def _other_filesystem(self, path: str) -> None:
        self.size.other_filesystems += 1
        if len(self.size.other_filesystems_named) < _NAMED:
            self.size.other_filesystems_named.append(path)

    def result(self, elapsed: float) -> TreeSize:
        self.size.elapsed_s = round(elapsed, 3)
        self.size.largest_files = [Entry(p, n) for n, p in sorted(self.files, reverse=True)]
        dirs = heapq.nlargest(self.top, self.under.items(), key=lambda kv: kv[1])
        base = self.size.path.rstrip("/")
        self.size.largest_dirs = [Entry(f"{base}/{name}", n) for name, n in dirs]
        return self.size
