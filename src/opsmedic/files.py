"""Writing files the crash-safe way: temporary name, fsync, rename, fsync the directory; and
holding a lock file across processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

_LOCK_POLL_S = 0.05  # between two tries of a lock another process holds


class NotDurable(OSError):
    """The new text is in place, but fsync of the directory failed: a crash may undo the rename."""


def write_atomic(path: Path, text: str, *, like: os.stat_result | None = None) -> None:
    """After a crash `path` holds the old text or the new one, never a torn mix.

    `like`: the replaced file's stat, whose mode and owner the new file takes (a system file
    such as resolv.conf must stay world-readable and root's).
    Raises NotDurable (an OSError) when only that last directory fsync failed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if like is not None:
                os.fchmod(fh.fileno(), like.st_mode & 0o7777)
                if os.geteuid() == 0:
                    os.fchown(fh.fileno(), like.st_uid, like.st_gid)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        # Callers that report what they changed must know the rename already happened.
        raise NotDurable(exc.errno, exc.strerror) from exc


@contextlib.asynccontextmanager
async def flocked(
    path: Path, deadline: float, busy: Callable[[], Exception]
) -> AsyncIterator[None]:
    """Hold an exclusive `flock` on `path` (created if need be), across processes; `busy()` is
    raised once `deadline` (time.monotonic) passes with another holder. Polled without
    blocking, so a cancelled waiter never leaves a lock taken behind it."""
    import asyncio  # here: the CLI imports this module, and `--help` stays light

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise busy() from None
                await asyncio.sleep(_LOCK_POLL_S)
        yield
    finally:
        os.close(fd)  # closing releases the lock
