"""Deflate on every core (pigz's scheme) for zip and tar.gz, and bounded inflate for reading back.

Input is cut into BLOCK pieces; each is compressed by a pool thread as raw deflate primed with
the last 32 KiB of the piece before it, ended by a sync flush (the last by a finish), so the
pieces concatenate into one valid stream. The CRC-32 runs in order in the caller's thread.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from typing import BinaryIO

from zlib_ng import zlib_ng as zlib

from opsmedic.archive.blocks import ParallelBlocks
from opsmedic.archive.members import CHUNK, VerifyError

BLOCK = 1 << 20
WINDOW = 1 << 15  # deflate looks back at most 32 KiB: all the priming a block can use
# mtime 0 (the tar inside carries the times), no flags, OS 3 (Unix)
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"


def _deflate_block(level: int, data: bytes, primer: bytes, last: bool) -> bytes:
    if primer:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=primer)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    end = zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH
    return compressor.compress(data) + compressor.flush(end)


def parallel_deflate(out: BinaryIO, level: int, threads: int, block: int = BLOCK) -> ParallelBlocks:
    """Raw deflate streams (with their CRC-32) onto `out`, compressed on `threads` threads."""
    if not 0 <= level <= 9:
        raise ValueError(f"deflate level must be 0 to 9, not {level}")
    encode = functools.partial(_deflate_block, level)
    return ParallelBlocks(out, threads, encode, block=block, primer=WINDOW, crc32=True)


def gzip_trailer(crc: int, size: int) -> bytes:
    """The 8 bytes that end a gzip member: CRC-32 and size modulo 2**32 of the input."""
    return struct.pack("<II", crc, size & 0xFFFFFFFF)


def inflate(decompressor: zlib._Decompress, data: bytes | memoryview) -> Iterator[bytes]:
    """Decompress `data` in output pieces of at most CHUNK bytes (a tiny input of zeros can
    inflate to gigabytes)."""
    while True:
        out = decompressor.decompress(data, CHUNK)
        if out:
            yield out
        data = decompressor.unconsumed_tail
        # a full piece may leave output inside zlib even when all input is taken
        if decompressor.eof or (not data and len(out) < CHUNK):
            return


def gunzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The content of one gzip member whose bytes are `chunks`; zlib checks the CRC and size.

    VerifyError if the member is cut short or anything follows it.
    """
    decompressor = zlib.decompressobj(31)
    for data in chunks:
        if decompressor.eof:
            raise VerifyError("data after the end of the gzip stream")
        yield from inflate(decompressor, data)
        if decompressor.unused_data:
            raise VerifyError("data after the end of the gzip stream")
    if not decompressor.eof:
        raise VerifyError("gzip stream truncated")
