"""Bounded capture of command output and response bodies: head and tail kept, middle cut."""

from __future__ import annotations

from dataclasses import dataclass


class OutputBuffer:
    """Keeps the first and last `limit // 2` bytes of a stream and counts everything.

    Memory stays bounded however much a command prints; the head usually holds the cause
    of an error and the tail the final state, so those are the parts worth keeping. A value
    read from the output (a probe's reading) wants its start only: `keep_tail=False` keeps
    the first `limit` bytes.
    """

    __slots__ = ("_head", "_head_limit", "_tail", "_tail_limit", "total")

    def __init__(self, limit: int, *, keep_tail: bool = True) -> None:
        self._tail_limit = limit // 2 if keep_tail else 0
        self._head_limit = limit - self._tail_limit
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self._tail_limit:
            self._tail += chunk
            if len(self._tail) > self._tail_limit:
                del self._tail[: len(self._tail) - self._tail_limit]

    @property
    def cut(self) -> int:
        """How many bytes from the middle were dropped."""
        return self.total - len(self._head) - len(self._tail)

    def kept(self) -> bytes:
        """The kept bytes, head then tail, with no marker where the middle was cut."""
        return bytes(self._head + self._tail)

    def text(self) -> str:
        """The kept bytes decoded leniently, with a marker where the middle was cut."""
        head = self._head.decode(errors="replace")
        if not self.cut:
            return self.kept().decode(errors="replace")
        return f"{head}…[{self.cut} bytes cut]…{self._tail.decode(errors='replace')}"


def excerpt(data: bytes, limit: int) -> str:
    """`data` cut to about `limit` bytes the way OutputBuffer cuts a stream."""
    buffer = OutputBuffer(limit)
    buffer.feed(data)
    return buffer.text()


@dataclass(slots=True)
class Captured:
    """What running one command produced, locally or over SSH."""

    stdout: OutputBuffer
    stderr: OutputBuffer
    exit_code: int | None = None
    signal: str | None = None
    timed_out: bool = False
    # True when descendants kept the pipes open after the command ended: output may be short.
    incomplete: bool = False

    @classmethod
    def bounded(cls, limit: int) -> Captured:
        """Empty capture keeping head and tail, up to `limit` bytes per stream."""
        return cls(stdout=OutputBuffer(limit), stderr=OutputBuffer(limit))

    def labelled(self) -> str:
        """stdout and stderr, each under a label, empty streams left out."""
        parts = []
        for label, buffer in (("stdout", self.stdout), ("stderr", self.stderr)):
            if buffer.total:
                parts.append(f"[{label}]\n{buffer.text()}")
        return "\n".join(parts)
