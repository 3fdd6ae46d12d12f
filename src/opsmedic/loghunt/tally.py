"""The bounded table of distinct events: counts, first and last seen, and which are reported."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from opsmedic.loghunt.model import HuntOptions, HuntStats, Line, LineKind
from opsmedic.loghunt.scanner import Found, back, forward
from opsmedic.loghunt.timestamps import LOOK_BYTES

# (source index, line number, the matching line's first LOOK_BYTES): its time is read only at
# the end, and from no further into the line.
Seen = tuple[int, int, bytes]
ELLIPSIS = "…"
# What a counted key costs beside its bytes: the Entry, its two Seen and their heads, the
# table's slot (sys.getsizeof of each, rounded up). Keys are at most keys.KEY_BYTES + 16.
ENTRY_BYTES = 400


@dataclass(slots=True)
class Entry:
    """One distinct key: how often it came and where; `lines` None when not reported, then
    `size` says how many it would have and `at` where the first occurrence starts (the
    offset in the stream fed), so that a merge can read them when it reports it."""

    count: int
    first: Seen
    last: Seen
    lines: tuple[Line, ...] | None
    cut: bool
    size: int = 0
    at: int = 0
    left_out: int = 0  # lines not shown: see HuntEvent.lines_left_out


class Tally:
    """Every key counted; the first `max_events` (and `max_lines` of output) are reported with
    the lines of their first occurrence, the rest only counted. The keys counted but not
    reported are bounded by `max_keys` and by `max_key_bytes` (their bytes and ENTRY_BYTES
    each): past either the oldest goes, and stats say how many went."""

    def __init__(self, options: HuntOptions, names: list[str], stats: HuntStats) -> None:
        self.options = options
        self.names = names
        self.stats = stats
        self.reported: dict[bytes, Entry] = {}
        self.counted: OrderedDict[bytes, Entry] = OrderedDict()
        self.lines_used = 0
        self.counted_bytes = 0  # of the keys counted, not reported: held to max_key_bytes

    def add(self, key: bytes, found: Found, source: int) -> None:
        head_end = min(found.head_end, found.start + LOOK_BYTES)
        seen = (source, found.line, found.buf[found.start : head_end])
        entry = self.reported.get(key)
        if entry is not None:
            entry.count += 1
            entry.last = seen
            return
        entry = self.counted.get(key)
        if entry is not None:
            entry.count += 1
            entry.last = seen
            self.stats.unreported_occurrences += 1
            return
        full = len(self.reported) >= self.options.max_events
        lines = None if full else self.lines_of(found, source)
        size = _size(found, self.options.context) if lines is None else len(lines)
        self._new(key, Entry(1, seen, seen, lines, found.cut, size, found.at))

    def merge(
        self,
        key: bytes,
        entry: Entry,
        source: int,
        offset: int,
        read_lines: Callable[[Entry], tuple[Line, ...] | None],
    ) -> None:
        """Add what a range of a source counted (its lines numbered from 1) as if tallied here:
        ranges merged in order give what one pass over the source would have. An event the
        range counted without its lines (past its max_events) that is reported here has them
        read by `read_lines` (numbered as the range would have)."""
        first, last = _moved(entry.first, source, offset), _moved(entry.last, source, offset)
        known = self.reported.get(key) or self.counted.get(key)
        if known is not None:
            known.count += entry.count
            known.last = last
            if key in self.counted:
                self.stats.unreported_occurrences += entry.count
            return
        if entry.lines is None and self._room(entry.size):
            entry.lines = read_lines(entry)
        lines = None if entry.lines is None else tuple(
            Line(ln.source, ln.number + offset, ln.text, ln.kind) for ln in entry.lines
        )  # fmt: skip
        self._new(key, Entry(entry.count, first, last, lines, entry.cut, entry.size))

    def _room(self, size: int) -> bool:
        opts = self.options
        if len(self.reported) >= opts.max_events:
            return False
        # The first event is reported even when longer than max_lines: cut to them (_new), it
        # still says what was found first, where an empty report would say nothing.
        return not self.reported or self.lines_used + size <= opts.max_lines

    def _new(self, key: bytes, entry: Entry) -> None:
        lines = entry.lines
        if lines is not None and self._room(len(lines)):
            limit = self.options.max_lines
            if len(lines) > limit:
                match = next(i for i, line in enumerate(lines) if line.kind == "match")
                start = min(match, len(lines) - limit)
                entry.lines, entry.left_out = lines[start : start + limit], len(lines) - limit
            self.reported[key] = entry
            self.lines_used += len(entry.lines or ())
            return
        opts = self.options
        entry.lines = None
        self.counted[key] = entry
        self.counted_bytes += len(key) + ENTRY_BYTES
        self.stats.unreported_events += 1
        self.stats.unreported_occurrences += entry.count
        while self.counted and (
            len(self.counted) + len(self.reported) > opts.max_keys
            or self.counted_bytes > opts.max_key_bytes
        ):
            old, gone = self.counted.popitem(last=False)
            self.counted_bytes -= len(old) + ENTRY_BYTES
            self.stats.evicted_keys += 1
            self.stats.evicted_occurrences += gone.count

    def lines_of(self, found: Found, source: int) -> tuple[Line, ...]:
        """The event's lines with their context, numbered, as text."""
        buf, n, name = found.buf, self.options.context, self.names[source]
        begin = back(buf, found.start, n)
        stop = found.end if found.cut else forward(buf, found.end, n)
        number = found.line - buf.count(b"\n", begin, found.start)
        before = found.line - number
        inside = buf.count(b"\n", found.start, found.end)
        out: list[Line] = []
        for i, raw in enumerate(buf[begin:stop].split(b"\n")[:-1]):
            kind: LineKind = "context" if i < before or i >= before + inside else "event"
            if i == before:
                kind = "match"
            out.append(Line(name, number + i, self._text(raw), kind))
        return tuple(out)

    def _text(self, raw: bytes) -> str:
        limit = self.options.max_line_bytes
        cut = len(raw) > limit
        text = raw[:limit].rstrip(b"\r").decode("utf-8", "replace")
        return text + ELLIPSIS if cut else text


def _size(found: Found, context: int) -> int:
    """How many lines Tally.lines_of gives for the event."""
    buf = found.buf
    begin = back(buf, found.start, context)
    stop = found.end if found.cut else forward(buf, found.end, context)
    return buf.count(b"\n", begin, stop)


def _moved(seen: Seen, source: int, offset: int) -> Seen:
    return (source, seen[1] + offset, seen[2])
