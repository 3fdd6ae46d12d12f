"""Byte plumbing for archive readers: exact reads over chunk streams, producers in a thread."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from opsmedic.archive.members import CHUNK, VerifyError

T = TypeVar("T")
R = TypeVar("R")


class Readable(Protocol):
    """Anything with a blocking read(size): a file, an SFTP file wrapper, a decompressor."""

    def read(self, size: int, /) -> bytes: ...


def chunks_of(src: Readable, size: int = CHUNK) -> Iterator[bytes]:
    """The bytes of `src` in reads of `size`, until it ends."""
    while data := src.read(size):
        yield data


class ByteReader:
    """Reads exact byte counts out of a stream of chunks, without copying the bulk of them."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = b""
        self._off = 0
        self.pos = 0  # bytes handed out so far: the offset of the next byte in the stream

    def some(self, limit: int) -> memoryview:
        """Up to `limit` bytes (at least one unless the stream has ended)."""
        while self._off == len(self._chunk):
            chunk = next(self._chunks, None)
            if chunk is None:
                return memoryview(b"")
            self._chunk, self._off = chunk, 0
        piece = memoryview(self._chunk)[self._off : self._off + limit]
        self._off += len(piece)
        self.pos += len(piece)
        return piece

    def unread(self, n: int) -> None:
        """Give back the last `n` bytes of the previous `some` (a decoder did not use them)."""
        if n > self._off:
            raise ValueError("cannot unread past the current chunk")
        self._off -= n
        self.pos -= n

    def exact(self, n: int, what: str) -> bytes:
        """Exactly `n` bytes; VerifyError naming `what` if the stream ends first."""
        return b"".join(self.stream(n, what))

    def stream(self, n: int, what: str) -> Iterator[memoryview]:
        """Exactly `n` bytes as pieces; VerifyError naming `what` if the stream ends first."""
        while n:
            piece = self.some(n)
            if not piece:
                raise VerifyError(f"archive truncated in {what}")
            n -= len(piece)
            yield piece

    def at_end(self) -> bool:
        """True when no byte is left."""
        if self.some(1):
            self.unread(1)
            return False
        return True


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None


class Background(Generic[T]):
    """Runs a generator in a thread, handing its items over through a bounded queue.

    Readers decompress and parse in this thread while the caller hashes: both release the GIL
    on big buffers, so two cores stay busy. Use as a context manager: leaving it stops the
    producer and joins its thread, even when the consumer gave up half-way.
    """

    def __init__(self, items: Generator[T, None, None], depth: int = 8) -> None:
        self._items = items
        self._queue: queue.Queue[T | _End] = queue.Queue(depth)
        self._stop = threading.Event()
        self._ended = False
        self._thread = threading.Thread(target=self._produce, name="archive-reader", daemon=True)

    def __enter__(self) -> Iterator[T]:
        self._thread.start()
        return self._consume()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while not self._ended:  # unblock a producer stuck on a full queue
            self._ended = isinstance(self._queue.get(), _End)
        self._thread.join()

    def _produce(self) -> None:
        error: BaseException | None = None
        try:
            for item in self._items:
                self._queue.put(item)
                if self._stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            error = exc
        finally:
            self._items.close()
            self._queue.put(_End(error))

    def _consume(self) -> Iterator[T]:
        while not self._ended:
            item = self._queue.get()
            if isinstance(item, _End):
                self._ended = True
                if item.error is not None:
                    raise item.error
            else:
                yield item


def ordered_map(fn: Callable[[T], R], items: Iterable[T], threads: int) -> Iterator[R]:
    """`fn` over `items` on `threads` threads, results in order, at most 2 * threads in flight."""
    with ThreadPoolExecutor(threads, thread_name_prefix="archive-decode") as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > 2 * threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
