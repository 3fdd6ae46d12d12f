"""Helpers for the log hunt's tests: generated logs, sources cut anywhere, reports read back."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from hypothesis import strategies as st

from opsmedic.loghunt import HuntReport

Hunt = Callable[..., HuntReport]

# Generated logs: a mix of records, trace lines, near misses and garbage.
FIXED = [
    b"INFO ok", b"WARN slow", b"", b"  indented more", b"\tat x.Y.z(Y.java:12)",
    b"Caused by: java.io.IOException: gone", b"Traceback (most recent call last):",
    b"ValueError: bad 3", b"During handling of the above exception, another exception occurred:",
    b"goroutine 1 [running]:", b"INFO 0 errors", b"INFO ErrorBoundary", b"\t... 3 more",
    b"pq.errors.UniqueViolation: dup",
]  # fmt: skip
STAMPED = st.builds(
    lambda level, n, word: b"2024-05-01T10:00:%02dZ %s %s %d" % (n, level, word, n % 3),
    st.sampled_from([b"ERROR", b"FATAL", b"INFO", b"CRITICAL", b"panic:", b"DEBUG"]),
    st.integers(0, 59),
    st.sampled_from([b"db", b"cache", b"x"]),
)
GARBAGE = st.binary(max_size=6).map(lambda b: b.replace(b"\n", b" "))
LOGS = st.lists(st.one_of(st.sampled_from(FIXED), STAMPED, GARBAGE), max_size=60).map(
    lambda lines: b"\n".join(lines)
)


def shown(report: HuntReport) -> list[tuple[int, str]]:
    """The report's lines as (number, text), overlaps once, in order: what a reader sees."""
    seen: dict[int, str] = {}
    for event in report.events:
        for line in event.lines:
            seen.setdefault(line.number, line.text)
    return sorted(seen.items())


def event_lines(report: HuntReport) -> list[list[str]]:
    """Each reported event's own lines (the match and its continuation), without context."""
    return [[ln.text for ln in e.lines if ln.kind != "context"] for e in report.events]


class PiecesSource:
    """A Source over bytes, handed out in pieces of `piece` bytes: block and carry edges land
    everywhere."""

    def __init__(self, data: bytes, piece: int, name: str = "mem.log") -> None:
        self.name = name
        self.data = data
        self.piece = piece
        self.size: int | None = len(data)
        self.position = 0
        self.notes: list[str] = []

    def chunks(self) -> Iterator[bytes]:
        for at in range(0, len(self.data), self.piece):
            self.position = min(len(self.data), at + self.piece)
            yield self.data[at : at + self.piece]

    def close(self) -> None:
        """Nothing to close."""
