"""Deleting selected files for cleanup: what is never touched, and unlink by directory fd."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from opsmedic.archive.select import Candidate, Identity, Skip

# Application and database files, whatever a rule includes (matched on the lower-cased
# name, and on it less any `.bak` suffixes: a backup of one is kept too): SQLite and its
# journals, write-ahead logs, LMDB, MySQL/MariaDB tables, MongoDB's WiredTiger files, Redis
# snapshots and append-only files, shared libraries and Java archives, lock and pid files.
BUILTIN_PROTECTED = (
    "*.db", "*.db-*", "*.sqlite", "*.sqlite-*", "*.sqlite3*", "*.wal", "*.mdb",
    "*.ibd", "*.frm", "*.myd", "*.myi", "*.wt", "wiredtiger*", "*.rdb", "*.aof", "*.so",
    "*.so.*", "*.jar", "*.lock", "*.pid",
)  # fmt: skip
# A directory holding all the paths of one of these is a data directory: nothing in it or
# below it is deleted. PostgreSQL's cluster or tablespace, MySQL/MariaDB's datadir,
# MongoDB's dbpath (its journal/ too), etcd's data dir (bbolt's member/snap/db and the
# WAL), Prometheus's TSDB (head and blocks), Elasticsearch's data path.
DATA_DIR_MARKERS: tuple[tuple[str, ...], ...] = (
    ("PG_VERSION",), ("ibdata1",), ("mysql.ibd",), ("WiredTiger",), ("member/wal",),
    ("member/snap/db",), ("wal", "chunks_head"), ("meta.json", "index", "chunks"),
    ("nodes/0/_state",), ("_state", "indices"),
)  # fmt: skip
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_EXECUTABLE = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


def real_pattern(pattern: str) -> str:
    """An absolute glob with its literal directory part resolved, as roots are resolved.

    Files are matched by their real path, so `/srv/link/keep` (link → /data) must become
    `/data/keep` to protect anything.
    """
    parts = pattern.split("/")
    literal = next((i for i, p in enumerate(parts) if any(c in p for c in "*?[")), len(parts))
    if literal <= 1:
        return pattern
    head = os.path.realpath("/".join(parts[:literal]))
    return "/".join([head.rstrip("/"), *parts[literal:]]) or "/"


@dataclass(slots=True)
class Guard:
    """Why a file may never be deleted: built-in rules, then the configured `protected`.

    `protected` is matched case-insensitively, like the built-in names; a pattern with a
    `/` is matched as written and with its directory part resolved (real_pattern).
    """

    protected: Sequence[str]
    state_dir: Path  # opsmedic's own files (archive intents), resolved
    _data_dirs: dict[Path, str | None] = field(default_factory=dict)
    _paths: list[tuple[str, str]] = field(default_factory=list)  # (as matched, as configured)
    _names: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for pattern in self.protected:
            if "/" not in pattern:
                self._names.append((pattern.lower(), pattern))
                continue
            for form in dict.fromkeys((pattern, real_pattern(pattern))):
                self._paths.append((form.lower(), pattern))

    def why(self, path: Path, mode: int) -> str | None:
        name = path.name.lower()
        unbacked = name
        while unbacked.endswith(".bak"):
            unbacked = unbacked.removesuffix(".bak")
        for pattern in BUILTIN_PROTECTED:
            if fnmatchcase(name, pattern) or fnmatchcase(unbacked, pattern):
                return f"protected: an application or database file ({pattern}, built in)"
        if mode & _EXECUTABLE:
            return "protected: executable (built in)"
        if path.is_relative_to(self.state_dir):
            return f"protected: opsmedic's state_dir {self.state_dir} (built in)"
        for parent in path.parents:
            marker = self._marker(parent)
            if marker is not None:
                return f"protected: inside a database data directory ({parent}/{marker}, built in)"
        for lowered, pattern in self._names:
            if fnmatchcase(name, lowered):
                return f"protected: {pattern} (cleanup.protected)"
        paths = [str(p).lower() for p in (path, *path.parents)]
        for lowered, pattern in self._paths:
            if any(fnmatchcase(p, lowered) for p in paths):
                return f"protected: {pattern} (cleanup.protected)"
        return None

    def _marker(self, directory: Path) -> str | None:
        if directory not in self._data_dirs:
            found = (
                "+".join(paths)
                for paths in DATA_DIR_MARKERS
                if all(os.path.lexists(directory / p) for p in paths)
            )
            self._data_dirs[directory] = next(found, None)
        return self._data_dirs[directory]


@dataclass(slots=True)
class Sweep:
    """What deleting did: each file deleted, left (changed since selected), or failed."""

    deleted: list[Candidate] = field(default_factory=list)
    kept: list[Skip] = field(default_factory=list)
    failed: list[Skip] = field(default_factory=list)
    stopped: str | None = None  # why deleting stopped before the end ("timed out"), if it did


def delete(
    root: Path, candidates: Sequence[Candidate], stop: Callable[[], str | None] = lambda: None
) -> Sweep:
    """Unlink each candidate (all below `root`, a real path); blocking, so run in a thread.

    `stop` is asked before each file: a step that timed out or was cancelled must not go on
    deleting in its thread after the run was recorded as over.

    Each parent directory is reached from `root` one component at a time with O_NOFOLLOW,
    and each file is looked at (lstat by that directory's fd) right before its unlink by the
    same fd: a directory swapped for a symlink is never entered, and a file replaced since
    it was selected (another inode, a symlink, a new size or mtime) is left in place.
    """
    sweep = Sweep()
    by_dir: dict[Path, list[Candidate]] = {}
    for c in candidates:
        by_dir.setdefault(c.path.parent, []).append(c)
    for directory, files in by_dir.items():
        try:
            fd = _open_beneath(root, directory)
        except OSError as exc:
            why = _changed(exc)
            sweep.kept.extend(Skip(str(c.path), why) for c in files)
            continue
        try:
            for c in files:
                sweep.stopped = stop()
                if sweep.stopped is not None:
                    return sweep
                _unlink(fd, c, sweep)
        finally:
            os.close(fd)
    return sweep


def _open_beneath(root: Path, directory: Path) -> int:
    fd = os.open(root, _OPEN_DIR)
    try:
        for part in directory.relative_to(root).parts:
            child = os.open(part, _OPEN_DIR, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _changed(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return "changed since selected: its directory is now a symlink or not a directory"
    if exc.errno == errno.ENOENT:
        return "changed since selected: its directory is gone"
    return f"cannot open its directory: {exc.strerror or exc}"


def _unlink(fd: int, c: Candidate, sweep: Sweep) -> None:
    name = c.path.name
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        sweep.kept.append(Skip(str(c.path), "gone since selected"))
        return
    if stat.S_ISLNK(st.st_mode):
        sweep.kept.append(Skip(str(c.path), "changed since selected: now a symlink"))
        return
    if not stat.S_ISREG(st.st_mode) or Identity.of(st) != c.identity:
        sweep.kept.append(Skip(str(c.path), "changed since selected (another file, size or mtime)"))
        return
    try:
        # By name in the directory held open: never follows a link, never leaves `root`.
        os.unlink(name, dir_fd=fd)
    except OSError as exc:
        sweep.failed.append(Skip(str(c.path), f"cannot delete: {exc.strerror or exc}"))
        return
    sweep.deleted.append(c)
