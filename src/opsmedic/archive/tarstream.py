"""Tar framing, streamed: PAX headers out through a sink, and a strict reader of what we wrote."""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator

from opsmedic.archive.members import Entry, VerifyError
from opsmedic.archive.streams import ByteReader

BLOCK = tarfile.BLOCKSIZE
_END = bytes(2 * BLOCK)  # two zero blocks end an archive
_MAX_PAX = 1 << 20  # our extended headers hold one path; refuse to buffer anything bigger


class TarStream:
    """Writes tar framing around member contents that the caller passes to `sink` itself."""

    def __init__(self, sink: Callable[[bytes], object]) -> None:
        self._sink = sink

    def header(self, arcname: str, size: int, mtime: float, mode: int) -> None:
        info = tarfile.TarInfo(arcname)
        info.size = size
        info.mtime = int(mtime)
        info.mode = mode & 0o7777
        # PAX keeps any UTF-8 name and any size; plain ustar headers when neither needs it
        self._sink(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def pad(self, size: int) -> None:
        if size % BLOCK:
            self._sink(bytes(BLOCK - size % BLOCK))

    def end(self) -> None:
        self._sink(_END)


def read_tar(reader: ByteReader) -> Iterator[Entry | memoryview]:
    """Members of a tar stream: an Entry, then its content; VerifyError on anything unexpected.

    Accepts what TarStream writes: regular files with optional PAX headers, two zero blocks at
    the end, and nothing after them.
    """
    extended: dict[str, str] = {}
    while True:
        block = reader.exact(BLOCK, "a tar header")
        if block == _END[:BLOCK]:
            if reader.exact(BLOCK, "the tar end marker") != block or not reader.at_end():
                raise VerifyError(f"data after the tar end marker at offset {reader.pos}")
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise VerifyError(f"bad tar header at offset {reader.pos - BLOCK}: {exc}") from exc
        if info.type == tarfile.XHDTYPE:
            if info.size > _MAX_PAX:
                raise VerifyError(f"oversized PAX header at offset {reader.pos - BLOCK}")
            extended = _pax_records(reader.exact(info.size, "a PAX header"))
            _skip_padding(reader, info.size)
            continue
        name = extended.get("path", info.name)
        if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            raise VerifyError(f"{name}: not a regular file in the tar archive")
        size = int(extended["size"]) if "size" in extended else info.size
        extended = {}
        yield Entry(name)
        yield from reader.stream(size, f"the content of {name}")
        _skip_padding(reader, size)


def _skip_padding(reader: ByteReader, size: int) -> None:
    if size % BLOCK:
        reader.exact(BLOCK - size % BLOCK, "tar padding")


def _pax_records(data: bytes) -> dict[str, str]:
    """Parse "LENGTH KEY=VALUE\\n" records (POSIX pax), LENGTH counting the whole record."""
    records: dict[str, str] = {}
    pos = 0
    try:
        while pos < len(data):
            space = data.index(b" ", pos)
            end = pos + int(data[pos:space])
            key, sep, value = data[space + 1 : end - 1].partition(b"=")
            if end > len(data) or end <= space or data[end - 1 : end] != b"\n" or not sep:
                raise ValueError("malformed record")
            records[key.decode()] = value.decode("utf-8", "surrogateescape")
            pos = end
    except ValueError as exc:
        raise VerifyError(f"bad PAX header: {exc}") from exc
    if "size" in records and not records["size"].isdigit():
        raise VerifyError(f"bad PAX header: size {records['size']!r}")
    return records
