"""Where log lines come from: local files and globs, rotated (.1, .gz, .zst), read as a stream."""

from __future__ import annotations

import glob
import os
import re
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from opsmedic.errors import HuntInputError
from opsmedic.loghunt.archives import ArchiveSource, is_archive
from opsmedic.loghunt.compressed import DECODE_ERRORS, READ_BYTES, Readable, decompressing

__all__ = ["READ_BYTES", "FileSource", "Source", "open_files", "rotation_order"]
_GLOB_CHARS = re.compile(r"[*?\[]")
# app.log.2.gz → family "app.log", generation 2; app.log → generation 0 (the newest);
# logrotate's dateext: app.log-20240501.gz (or -2024050110, -2024-05-01, .20240501) → dated.
_ROTATED = re.compile(
    r"^(?P<family>.+?)(?:[.-](?P<date>\d{4}-?\d\d-?\d\d(?:-?\d\d)?)|\.(?P<n>\d{1,7}))?"
    r"(?:\.(?:gz|zst))?$"
)


class Source(Protocol):
    """A stream of log bytes in order. The hunt cuts it into lines and numbers them, so a
    source only reads: a file, an archive member (archives.py), a command's output, locally
    or over SSH (commands.py), a unit's journal (journal.py)."""

    name: str
    size: int | None  # raw bytes it will read, for a progress bar; None when unknown
    position: int  # raw bytes read so far
    notes: list[str]  # what went wrong while reading, said in the report (never raised)

    def chunks(self) -> Iterator[bytes]:
        """The (decompressed) bytes, in pieces cut anywhere."""
        ...

    def close(self) -> None: ...


class FileSource:
    """A file opened once, up front: rotation after that cannot make it read another file,
    and it reads only the bytes it had when opened, so a growing log ends."""

    def __init__(self, path: Path, raw: BinaryIO, size: int) -> None:
        self.name = str(path)
        self.path = path
        self.raw = raw
        self.size: int | None = size
        self.position = 0
        self.notes: list[str] = []

    def chunks(self) -> Iterator[bytes]:
        try:
            stream = decompressing(self.path.name, self.raw)
            if stream is not None:
                yield from self._decompressed(stream)
            else:
                yield from self._plain()
        except DECODE_ERRORS as exc:
            # A corrupt or cut archive ends this source only: the hunt goes on with the rest.
            self.notes.append(f"{self.name}: unreadable after {self.position} bytes: {exc}")

    def _plain(self) -> Iterator[bytes]:
        assert self.size is not None
        while self.position < self.size:
            data = self.raw.read(min(READ_BYTES, self.size - self.position))
            if not data:
                # copytruncate emptied it under us: stop here, never re-read from the start
                # (that would count every line twice).
                self.notes.append(
                    f"{self.name}: truncated while read, at byte {self.position} of "
                    f"{self.size}; the rest was not read"
                )
                return
            self.position += len(data)
            yield data

    def _decompressed(self, stream: Readable) -> Iterator[bytes]:
        while data := stream.read(READ_BYTES):
            self.position = self.raw.tell()
            yield data
        self.position = self.raw.tell()

    def close(self) -> None:
        self.raw.close()


def open_files(paths: Sequence[str]) -> tuple[list[FileSource | ArchiveSource], list[str]]:
    """Open every file the paths and globs name, rotated generations oldest first, each file
    once (by device and inode); an archive (.tar.zst, .tar.gz, .tgz, .zip) is read member by
    member (archives.py). The notes say which were skipped. A path that names nothing
    raises HuntInputError naming it."""
    found: list[Path] = []
    named: set[Path] = set()  # given by name, not matched by a glob: refused, not skipped
    for arg in paths:
        if _GLOB_CHARS.search(arg):
            matched = [Path(p) for p in sorted(glob.glob(arg)) if not os.path.isdir(p)]
            if not matched:
                raise HuntInputError(f"{arg}: no file matches")
            found.extend(matched)
        else:
            path = Path(arg)
            if path.is_dir():
                raise HuntInputError(f"{arg}: is a directory (name files, or a glob: {arg}/*.log)")
            if not path.exists():
                raise HuntInputError(f"{arg}: no such file")
            found.append(path)
            named.add(path)
    sources: list[FileSource | ArchiveSource] = []
    notes: list[str] = []
    seen: dict[tuple[int, int], str] = {}
    try:
        for path in rotation_order(found):
            opened = _open_regular(path)
            if isinstance(opened, str):
                if path in named:
                    raise HuntInputError(f"{path}: {opened}")
                notes.append(f"{path}: {opened}, skipped")
                continue
            raw, st = opened
            identity = (st.st_dev, st.st_ino)
            if identity in seen:
                raw.close()
                notes.append(f"{path}: the same file as {seen[identity]}, read once")
                continue
            seen[identity] = str(path)
            kind = ArchiveSource if is_archive(path) else FileSource
            sources.append(kind(path, raw, st.st_size))
    except BaseException:
        for source in sources:
            source.close()
        raise
    return sources, notes


def _open_regular(path: Path) -> tuple[BinaryIO, os.stat_result] | str:
    """The file opened for reading, or why it is not a regular file (a FIFO, a socket, a
    device): opening a FIFO waits for a writer and a device may never end, so neither is
    read. Opened without blocking, judged by fstat (what was opened, not what the name
    said a moment before), then blocking again for the reads."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        # A socket cannot be opened at all (ENXIO): say what it is rather than the errno.
        kind = _kind(path)
        if kind is not None:
            return kind
        raise HuntInputError(f"{path}: {exc.strerror or exc}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb"), st


_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe), not a regular file",
    stat.S_IFSOCK: "a socket, not a regular file",
    stat.S_IFCHR: "a character device, not a regular file",
    stat.S_IFBLK: "a block device, not a regular file",
}


def _kind(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def rotation_order(paths: Sequence[Path]) -> list[Path]:
    """Families (app.log with app.log.1, app.log.2.gz, or app.log-20240501.gz) in the order
    first named, each oldest generation first (dated ones by date, before numbered ones, the
    live log last), so events come in the order they were written."""
    families: dict[tuple[Path, str], list[tuple[tuple[int, str, int], Path]]] = {}
    for path in dict.fromkeys(paths):
        m = _ROTATED.match(path.name)
        assert m is not None  # the pattern matches every non-empty name
        date = (m["date"] or "").replace("-", "").ljust(10, "0")
        age = (0, date, 0) if m["date"] else (1, "", -int(m["n"] or 0))
        families.setdefault((path.parent, m["family"]), []).append((age, path))
    ordered: list[Path] = []
    for members in families.values():
        ordered.extend(p for _, p in sorted(members, key=lambda m: (m[0], m[1].name)))
    return ordered
