"""Compressed logs (.gz, .zst) decompressed as they are read, and the errors that means."""

from __future__ import annotations

import gzip
import zlib
from typing import BinaryIO, Protocol

import zstandard

READ_BYTES = 1 << 20  # raw bytes per read: big enough that a read costs nothing per line
# What a corrupt or cut stream raises while read; it ends that source only, with a note.
DECODE_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, zlib.error, zstandard.ZstdError)


class Readable(Protocol):
    """All the hunt asks of a stream of bytes."""

    def read(self, size: int = -1, /) -> bytes: ...


def decompressing(name: str, raw: BinaryIO) -> Readable | None:
    """A reader of `raw` decompressed when `name` ends in .gz or .zst, else None (plain)."""
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if name.endswith(".zst"):
        return zstandard.ZstdDecompressor().stream_reader(
            raw, read_across_frames=True, closefd=False
        )
    return None
