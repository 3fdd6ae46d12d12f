"""A local directory as archive destination: exclusive create, fsync, link-based commit."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO

_BUFFER = 1 << 20
# Filesystems without hard links (vfat, some FUSE mounts) answer link() with these.
_NO_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV)


class LocalDestination:
    """Archives in one local directory, created if missing."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.label = str(directory)

    def open_part(self, name: str) -> BinaryIO:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.dir / f"{name}.part", flags, 0o640)
        return os.fdopen(fd, "wb", buffering=_BUFFER)

    def sync_close(self, part: BinaryIO) -> None:
        try:
            part.flush()
            os.fsync(part.fileno())
        finally:
            part.close()

    def open_read(self, name: str) -> BinaryIO:
        fd = os.open(self.dir / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        return os.fdopen(fd, "rb", buffering=_BUFFER)

    def size(self, name: str) -> int | None:
        try:
            return os.stat(self.dir / name, follow_symlinks=False).st_size
        except FileNotFoundError:
            return None

    def commit(self, name: str) -> None:
        part, final = self.dir / f"{name}.part", self.dir / name
        # link() refuses an existing target atomically, which rename() would silently replace.
        try:
            os.link(part, final, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            if os.path.lexists(final):
                raise FileExistsError(errno.EEXIST, "archive exists already", str(final)) from None
            os.rename(part, final)
        else:
            os.unlink(part)
        fsync_dir(self.dir)

    def remove(self, name: str) -> None:
        (self.dir / name).unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing held between calls."""


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, an unlink) survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
