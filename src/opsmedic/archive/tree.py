"""A directory tree's size as `du -sb` counts it: no symlink followed, one filesystem, bounded."""

from __future__ import annotations

import errno
import heapq
import multiprocessing
import os
import pickle
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from stat import S_ISDIR
from typing import NoReturn

# Each directory is opened relative to its parent's descriptor with O_NOFOLLOW and checked
# against the inode its parent listed: a directory swapped for a symlink (or for another
# directory) during the walk is never entered.
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# One descriptor is held per level being walked; deeper than this is reported, not entered.
MAX_DEPTH = 256
_NAMED = 5  # unreadable entries and other filesystems named; their counts are complete
_CLOCK_EVERY = 1024  # entries between two looks at the clock and the shared entry count


def default_workers() -> int:
    """Processes walking one tree at once: Python's per-entry cost, not the disk, is the
    bottleneck of a cached tree, so a second core nearly halves the walk."""
    return min(2, os.cpu_count() or 1)


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


# Hard-linked files by inode: (size, the walked directory's child it is under, its path).
_Linked = dict[int, tuple[int, str | None, str | None]]
# What a worker sends back: its totals, largest files, bytes per child, hard-linked files.
_Part = tuple[TreeSize, list[tuple[int, str]], dict[str, int], _Linked]


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
    workers: int = 1,
) -> TreeSize:
    """Walk `path` (a directory or a single file); raises NotWalkable for the path itself.

    With `workers` > 1 the walked directory's subdirectories are shared among that many
    forked processes, each walking whole subtrees with the same checks and shared bounds.
    """
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
            walk.tree(fd, st, workers)  # closes fd
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
        # Files with several links, counted once (as du does): inode -> (size, the walked
        # directory's child it is under, its path if it may be one of the largest). Their
        # bytes are added once all walkers are merged, so a link seen by two is one file.
        self.linked: _Linked = {}
        self.dev = 0
        # In a worker: the entries counted by every walker, and how many of ours it holds.
        self.shared: Synchronized[int] | None = None
        self.reported = 0

    def count(self, st: os.stat_result, top: str | None, where: str, name: str = "") -> None:
        """Add one entry: `where` is its path, or its directory's when `name` is given."""
        path = f"{where.rstrip('/')}/{name}" if name else where
        if S_ISDIR(st.st_mode):
            self.size.dirs += 1
            self._add(st.st_size, top, None)
            return
        self.size.files += 1
        if st.st_nlink == 1:
            self._add(st.st_size, top, path)
        else:
            # Below this walker's floor it cannot be one of the largest: no path kept.
            named = path if st.st_size > self._floor() else None
            self._link(st.st_ino, (st.st_size, top, named))

    def _link(self, ino: int, link: tuple[int, str | None, str | None]) -> None:
        """Count a hard-linked file once, under the first by name of the walked directory's
        children it is seen under: the same whichever order (or worker) sees it first."""
        seen = self.linked.get(ino)
        if seen is None:
            self.linked[ino] = link
            return
        self.size.files -= 1
        if (link[1] or "") < (seen[1] or ""):
            self.linked[ino] = (seen[0], link[1], seen[2] or link[2])

    def _add(self, size: int, top: str | None, path: str | None) -> None:
        """Bytes of one counted entry; `path` when it is a file that may be of the largest."""
        self.size.bytes += size
        if top is not None:
            self.under[top] = self.under.get(top, 0) + size
        if path is not None:
            self._heap(size, path)

    def _heap(self, size: int, path: str) -> None:
        """Keep `path` if it is one of the `top` largest files so far."""
        if len(self.files) < self.top:
            heapq.heappush(self.files, (size, path))
        elif self.top and size > self.files[0][0]:
            heapq.heapreplace(self.files, (size, path))

    def error(self, path: str, exc: OSError | str) -> None:
        self.size.errors += 1
        if len(self.size.errors_named) < _NAMED:
            why = exc if isinstance(exc, str) else exc.strerror or str(exc)
            self.size.errors_named.append({"path": path, "error": why})

    def stop(self, why: str) -> None:
        self.size.complete, self.size.stopped = False, why

    def tree(self, fd: int, st: os.stat_result, workers: int = 1) -> None:
        """Walk the open directory `fd` (whose lstat is `st`); closes it."""
        self.dev = st.st_dev
        self.count(st, None, self.size.path)
        root = _Frame(fd, self.size.path, 0, None, [])
        try:
            self._list(root)
            if workers > 1 and len(root.subdirs) > 1 and self.size.complete:
                self._parallel(root, workers)
            else:
                self.descend(root)
        finally:
            os.close(fd)

    def descend(self, root: _Frame) -> None:
        """Enter the subdirectories left in `root`, depth first; `root.fd` is left open."""
        stack = [root]
        try:
            while stack and self.size.complete:
                frame = stack[-1]
                if not frame.subdirs:
                    if stack.pop() is not root:
                        os.close(frame.fd)
                    continue
                name, ino = frame.subdirs.pop()
                child = self._enter(frame, name, ino)
                if child is not None:
                    stack.append(child)
                    self._list(child)
        finally:
            for frame in stack[1:]:
                os.close(frame.fd)

    def _parallel(self, root: _Frame, workers: int) -> None:
        """Share `root`'s subdirectories among forked workers (they inherit its descriptor,
        so each opens its subtrees as this process would), then merge what they found."""
        tasks, root.subdirs = root.subdirs, []
        # Tasks are claimed from the end; `seen` holds every walker's entries, for the bound.
        forked = multiprocessing.get_context("fork")  # shared memory, no helper process
        claimed = forked.Value("q", len(tasks))
        seen = forked.Value("q", self.size.entries)
        running = []
        for _ in range(min(workers, len(tasks))):
            reader, writer = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the worker, measured through its parent
                os.close(reader)
                self._worker(root, tasks, claimed, seen, writer)  # never returns
            os.close(writer)
            running.append((reader, pid))
        for reader, pid in running:
            with os.fdopen(reader, "rb") as answer:
                data = answer.read()
            _, status = os.waitpid(pid, 0)
            # Our own forked child wrote it, nothing a tree holds: safe to unpickle.
            part: _Part | str = pickle.loads(data) if data else f"exit status {status}"  # noqa: S301
            if isinstance(part, str):  # never a silent partial number: the walk is incomplete
                self.error(self.size.path, f"a walker failed: {part}")
                self.stop("a walker failed")
            else:
                self._merge(*part)

    def _worker(
        self,
        root: _Frame,
        tasks: list[tuple[str, int]],
        claimed: Synchronized[int],
        seen: Synchronized[int],
        out: int,
    ) -> NoReturn:
        """In a forked worker: walk the subtrees claimed one by one, send back the totals.

        It leaves by os._exit: nothing of the parent's (its threads' locks, buffers, atexit
        handlers) is run or flushed here."""
        part = _Walk(self.size.path, self.max_entries, self.deadline, self.top, self.clock)
        part.dev, part.shared = self.dev, seen
        try:
            while part.size.complete:
                with claimed.get_lock():
                    if claimed.value == 0:
                        break
                    claimed.value -= 1
                    task = tasks[claimed.value]
                root.subdirs = [task]
                part.descend(root)
            found: _Part | str = (part.size, part.files, part.under, part.linked)
        except BaseException as exc:  # whatever it is, the parent reports the walk incomplete
            found = repr(exc)
        try:
            with os.fdopen(out, "wb") as pipe:
                pipe.write(pickle.dumps(found))
        finally:
            os._exit(0)

    def _merge(
        self, got: TreeSize, files: list[tuple[int, str]], under: dict[str, int], linked: _Linked
    ) -> None:
        """Add a worker's totals; a hard-linked file already seen elsewhere is one file."""
        self.size.bytes += got.bytes
        self.size.files += got.files
        self.size.dirs += got.dirs
        if not got.complete and self.size.complete:
            self.stop(got.stopped or "")
        self.size.errors += got.errors
        self.size.errors_named = (self.size.errors_named + got.errors_named)[:_NAMED]
        self.size.other_filesystems += got.other_filesystems
        self.size.other_filesystems_named = (
            self.size.other_filesystems_named + got.other_filesystems_named
        )[:_NAMED]
        for size, path in files:
            self._heap(size, path)
        for top, n in under.items():
            self.under[top] = self.under.get(top, 0) + n
        for ino, link in linked.items():
            self._link(ino, link)

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
        entries = self.size.entries + pending
        if self.shared is not None:  # a worker: the bound is on all walkers' entries
            with self.shared.get_lock():
                self.shared.value += entries - self.reported
                self.reported, entries = entries, self.shared.value
        if entries >= self.max_entries:
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
        for size, top, path in self.linked.values():
            self._add(size, top, path)
        self.size.largest_files = [Entry(p, n) for n, p in sorted(self.files, reverse=True)]
        dirs = heapq.nlargest(self.top, self.under.items(), key=lambda kv: kv[1])
        base = self.size.path.rstrip("/")
        self.size.largest_dirs = [Entry(f"{base}/{name}", n) for name, n in dirs]
        return self.size
