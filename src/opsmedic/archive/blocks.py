"""Block-parallel compression: a stream cut into blocks, encoded on N threads, written in order.

zlib and zstd release the GIL while they work, so N threads keep N cores busy. The output is
written from the caller's thread, sequentially: `out` is never sought.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

from zlib_ng import zlib_ng as zlib

from opsmedic.archive.members import CHUNK

# Encodes one block: (data, the last `primer` bytes of the block before it, is it the stream's
# last block) → bytes to write.
Encoder = Callable[[bytes, bytes, bool], bytes]
# Output-side items, written in order: encoded blocks, literal bytes, or a function that gets
# the output offset it lands at (zip records offsets and compressed sizes this way without
# waiting for the pool).
Piece = Future[bytes] | bytes | Callable[[int], bytes]


class ParallelBlocks:
    """Writes encoded streams and literal bytes to `out`, in order.

    At most `2 * threads + 2` blocks are in flight, so memory stays a few blocks whatever the
    input size. With `crc32` the CRC-32 of each stream's input is kept (zip and gzip need it).
    """

    def __init__(
        self,
        out: BinaryIO,
        threads: int,
        encode: Encoder,
        *,
        block: int = CHUNK,
        primer: int = 0,
        crc32: bool = False,
    ) -> None:
        self._out = out
        self._encode = encode
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="archive-encode")
        self._limit = 2 * threads + 2
        self._block = block
        self._primer_size = primer
        self._crc32 = crc32
        self._pieces: deque[Piece] = deque()
        self._in_flight = 0
        self.offset = 0  # bytes written to `out` so far
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._primer = b""
        self._crc = 0
        self._size = 0

    def put(self, piece: bytes | Callable[[int], bytes]) -> None:
        """Queue literal output (a header) after everything queued before."""
        self._pieces.append(piece)

    def feed(self, data: bytes) -> None:
        """Continue the current stream with `data`."""
        if self._crc32:
            self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= self._block:
            self._submit(last=False)

    def end_stream(self) -> tuple[int, int]:
        """Finish the current stream; returns the CRC-32 (0 unless kept) and size of its input."""
        self._submit(last=True)
        crc, size = self._crc, self._size
        self._primer, self._crc, self._size = b"", 0, 0
        return crc, size

    def close(self) -> None:
        """Write everything still queued and stop the pool; `out` stays open."""
        try:
            self._write_until(0)
        finally:
            self._pool.shutdown(cancel_futures=True)

    @contextlib.contextmanager
    def aborting(self) -> Iterator[None]:
        """Stop the pool, dropping queued work, if the block raises: the stream is then broken
        (a source that shrank, a full disk) and its threads must not outlive it."""
        try:
            yield
        except BaseException:
            self._pieces.clear()
            self._pool.shutdown(cancel_futures=True)
            raise

    def _submit(self, last: bool) -> None:
        block = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending, self._pending_size = [], 0
        self._pieces.append(self._pool.submit(self._encode, block, self._primer, last))
        self._in_flight += 1
        if self._primer_size:
            self._primer = b"" if last else block[-self._primer_size :]
        self._write_until(self._limit)

    def _write_until(self, in_flight: int) -> None:
        while self._pieces:
            piece = self._pieces[0]
            if isinstance(piece, Future) and self._in_flight <= in_flight:
                return
            self._pieces.popleft()
            if isinstance(piece, Future):
                self._in_flight -= 1
                data = piece.result()
            elif isinstance(piece, bytes):
                data = piece
            else:
                data = piece(self.offset)
            self._out.write(data)
            self.offset += len(data)
