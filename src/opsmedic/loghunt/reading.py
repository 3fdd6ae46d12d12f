"""One pass over a source: blocks of whole lines scanned, windowed, keyed and tallied."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from opsmedic.loghunt.drain import Drain
from opsmedic.loghunt.keys import Keyer
from opsmedic.loghunt.levels import LevelMatcher
from opsmedic.loghunt.model import HuntOptions, HuntStats
from opsmedic.loghunt.scanner import LOOK_BACK_LINES, SPLIT_BYTES, Found, Scanner
from opsmedic.loghunt.sources import Source
from opsmedic.loghunt.tally import Tally
from opsmedic.loghunt.timestamps import Near, line_time, near

BATCH_EVENTS = 8192  # events found, windowed, keyed and tallied at a time


class Pass:
    """One hunt's reading of its sources, shared by the processes that read ranges of one."""

    def __init__(
        self,
        options: HuntOptions,
        tally: Tally,
        stats: HuntStats,
        progress: Callable[[int], None] | None,
        clock: Callable[[], float],
        started: float,
        templates: Drain | None = None,
    ) -> None:
        self.options = options
        self.matcher = LevelMatcher(options.pattern)
        self.keyer = Keyer(options.mode, templates)
        self.tally = tally
        self.stats = stats
        self.progress = progress
        self.clock = clock
        self.windowed = options.since is not None or options.until is not None
        self.near = near(options.since, options.until, datetime.now(UTC))
        budget = options.time_budget_s
        self.deadline = None if budget is None else started + budget

    def scan(self, source: Source, index: int, scanner: Scanner, limit: int | None = None) -> None:
        """Feed the source to the scanner and tally its events (those starting before byte
        `limit` of the stream, when given: a range's own)."""
        stats, options, read_before = self.stats, self.options, 0
        for lines, final in whole_lines(source, options.chunk_bytes, stats):
            if self.progress is not None:
                self.progress(source.position - read_before)
            stats.bytes_read += source.position - read_before
            read_before = source.position
            events = scanner.feed(lines, final)
            # A block of one-line events holds ~500,000 of them: handled a batch at a time.
            while found := list(itertools.islice(events, BATCH_EVENTS)):
                self._tally(found, index, limit)
                if self._spent():  # a block of nothing but errors alone can take seconds
                    break
            if self._spent():
                stats.stopped = f"time budget of {options.time_budget_s:g} s spent in {source.name}"
                break
        stats.lines_read += scanner.lines

    def _spent(self) -> bool:
        return self.deadline is not None and self.clock() > self.deadline

    def _tally(self, found: list[Found], index: int, limit: int | None) -> None:
        stats, options = self.stats, self.options
        if limit is not None:
            found = [f for f in found if f.at < limit]
        if self.windowed:
            inside = [f for f in found if _inside(f, options, self.near)]
            stats.outside_window += len(found) - len(inside)
            found = inside
        stats.occurrences += len(found)
        keys = self.keyer.keys(found)
        for key, f in zip(keys, found, strict=True):
            self.tally.add(key, f, index)


def whole_lines(source: Source, size: int, stats: HuntStats) -> Iterator[tuple[bytes, bool]]:
    """The source's bytes as blocks of about `size` bytes of whole lines, the last flagged
    final (and ended by a newline). A run of SPLIT_BYTES without a newline (binary garbage)
    is cut into lines of that length, so a block never grows past it."""
    pending: list[bytes] = []
    held = 0
    for piece in source.chunks():
        pending.append(piece)
        held += len(piece)
        if held < size:
            continue
        data = b"".join(pending)
        cut = data.rfind(b"\n") + 1
        runs = (len(data) - cut) // SPLIT_BYTES
        if runs:
            stats.split_lines += runs
            # Each run's last byte becomes the newline: offsets stay the file's own (rg's
            # offsets, positions) at the cost of one byte of garbage per MiB.
            edge = cut + runs * SPLIT_BYTES
            rest = data[edge:]
            data = data[:cut] + b"".join(
                data[at : at + SPLIT_BYTES - 1] + b"\n" for at in range(cut, edge, SPLIT_BYTES)
            )
        else:
            rest, data = data[cut:], data[:cut]
        pending, held = [rest], len(rest)
        yield data, False
    data = b"".join(pending)
    yield (data if not data or data.endswith(b"\n") else data + b"\n"), True


def _inside(found: Found, options: HuntOptions, around: Near) -> bool:
    """Whether the event's time (its line's, else the nearest line's above) is in the window;
    an event with no time anywhere near is kept: it cannot be judged, and recall comes first."""
    buf, start = found.buf, found.start
    when = line_time(buf[start : found.head_end], around)
    for _ in range(LOOK_BACK_LINES):
        if when is not None or start == 0:
            break
        end, start = start, buf.rfind(b"\n", 0, start - 1) + 1
        when = line_time(buf[start:end], around)
    if when is None:
        return True
    if options.since is not None and when < options.since:
        return False
    return options.until is None or when <= options.until
