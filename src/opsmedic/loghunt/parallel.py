"""A big plain file hunted by several processes at once, one range of whole events each.

The ranges are cut where a line can only open a record (no event runs across a cut); each
process reads its range with pread on the file descriptor already open (the same inode),
with the context lines on both sides, and tallies it alone; the ranges are merged in order,
which gives what one pass would (tally.merge), except where a full key table evicted keys,
which the stats report either way.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from multiprocessing.sharedctypes import Synchronized
from typing import TYPE_CHECKING

from opsmedic.loghunt.continuation import opens_record
from opsmedic.loghunt.model import HuntOptions, HuntStats, Line
from opsmedic.loghunt.scanner import LOOK_BACK_LINES, Scanner, back
from opsmedic.loghunt.sources import READ_BYTES, FileSource
from opsmedic.loghunt.tally import Entry, Tally

if TYPE_CHECKING:
    from opsmedic.loghunt.reading import Pass

LOOK_BYTES = 1 << 20  # how far past an even split to look for a line that opens a record
POLL_S = 0.2  # how often the parent passes the workers' progress on
_progress: Synchronized[int] | None = None  # in a worker: bytes read, shared with the parent


@dataclass(slots=True)
class RangeResult:
    """What one process found in its range: every key it kept, in order of first sighting."""

    entries: list[tuple[bytes, Entry]]
    lines: int  # lines in the range, to number the next range's
    stats: HuntStats


def hunt_in_parallel(source: object, index: int, pass_: Pass) -> bool:
    """Hunt `source` in ranges when it is a plain file big enough; False: not done here."""
    options = pass_.options
    workers = options.workers or os.cpu_count() or 1
    if not isinstance(source, FileSource) or source.path.suffix in (".gz", ".zst"):
        return False
    size = source.size or 0
    # Drain is not mergeable: where a line goes depends on every line before it (templates
    # widen, clusters are evicted), so template mode reads in one process.
    if workers < 2 or size < options.parallel_bytes or options.mode == "template":
        return False
    fd = source.raw.fileno()
    bounds = plan(fd, size, workers)
    if len(bounds) < 3:
        return False
    left = None if pass_.deadline is None else max(0.0, pass_.deadline - pass_.clock())
    job_options = replace(options, time_budget_s=left, max_lines=sys.maxsize)
    results = _run(fd, source.name, bounds, size, job_options, pass_)
    offset = 0
    for start, result in zip(bounds, results, strict=False):
        read = functools.partial(_lines_at, fd, start, size, pass_, index)
        for key, entry in result.entries:
            pass_.tally.merge(key, entry, index, offset, read)
        _add_stats(pass_.stats, result.stats)
        offset += result.lines
        if result.stats.stopped:
            # As one pass would: the file up to where this range stopped, and no further
            # (the ranges after it were read from elsewhere: a gap, and unknown line numbers).
            pass_.stats.stopped = (
                f"time budget of {options.time_budget_s:g} s spent in {source.name}, "
                f"after line {offset}"
            )
            source.position = start + result.stats.bytes_read
            return True
    source.position = size
    return True


def _run(
    fd: int, name: str, bounds: list[int], size: int, options: HuntOptions, pass_: Pass
) -> list[RangeResult]:
    ctx = multiprocessing.get_context("fork")  # the workers inherit the open descriptor
    read = ctx.Value("q", 0)
    with ProcessPoolExecutor(
        len(bounds) - 1, mp_context=ctx, initializer=_start_worker, initargs=(read,)
    ) as pool:
        futures: list[Future[RangeResult]] = [
            pool.submit(hunt_range, fd, name, a, b, size, options)
            for a, b in itertools.pairwise(bounds)
        ]
        reported = 0
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
            if pass_.progress is not None:
                now = read.value
                pass_.progress(now - reported)
                reported = now
        return [f.result() for f in futures]


def _start_worker(read: Synchronized[int]) -> None:
    global _progress
    _progress = read


def _count_read(n: int) -> None:
    if _progress is not None:
        with _progress.get_lock():
            _progress.value += n


def plan(fd: int, size: int, parts: int) -> list[int]:
    """Offsets that cut the file into about `parts` ranges, each at a line opening a record."""
    bounds = [0]
    for k in range(1, parts):
        cut = _record_start(fd, size * k // parts, size)
        if cut is not None and cut > bounds[-1]:
            bounds.append(cut)
    bounds.append(size)
    return bounds


def _record_start(fd: int, at: int, size: int) -> int | None:
    data = os.pread(fd, min(LOOK_BYTES, size - at), at)
    prev = data.find(b"\n") + 1  # the first whole line: only the line before a cut
    pos = data.find(b"\n", prev) + 1
    while 0 < prev < pos < len(data):
        end = data.find(b"\n", pos) + 1
        if end == 0:
            return None
        if opens_record(data, pos, end, prev):
            return at + pos
        prev, pos = pos, end
    return None


def hunt_range(
    fd: int, name: str, start: int, stop: int, size: int, options: HuntOptions
) -> RangeResult:
    """In a worker: hunt the events that start in [start, stop) of the open file `fd`."""
    from opsmedic.loghunt.reading import Pass

    source = RangeSource(fd, name, start, stop, size, options.context)
    stats = HuntStats(sources=[name])
    tally = Tally(options, [name], stats)
    pass_ = Pass(options, tally, stats, _count_read, time.monotonic, time.monotonic())
    before = _lines_before(fd, start, max(options.context, LOOK_BACK_LINES))
    scanner = Scanner(pass_.matcher, options.context, options.max_event_lines, before=before)
    pass_.scan(source, 0, scanner, limit=stop - start)
    stats.notes.extend(source.notes)
    lines = scanner.lines - source.after_lines
    stats.lines_read = lines
    entries = sorted([*tally.reported.items(), *tally.counted.items()], key=lambda e: e[1].first[1])
    return RangeResult(entries, lines, stats)


def _lines_at(
    fd: int, start: int, size: int, pass_: Pass, index: int, entry: Entry
) -> tuple[Line, ...] | None:
    """The lines of an event that the range from `start` counted without them (past its
    max_events), read again from where it found it, numbered as it would have (None: the
    file no longer has it there)."""
    from opsmedic.loghunt.reading import whole_lines

    options, at = pass_.options, start + entry.at
    n = options.context
    scanner = Scanner(pass_.matcher, n, options.max_event_lines, before=_lines_before(fd, at, n))
    source = RangeSource(fd, "", at, size, size, 0)
    for lines, final in whole_lines(source, options.chunk_bytes, HuntStats()):
        for found in scanner.feed(lines, final):
            shift = entry.first[1] - 1  # the range's number of the line at `at`, less 1
            return tuple(
                Line(ln.source, ln.number + shift, ln.text, ln.kind)
                for ln in pass_.tally.lines_of(found, index)
            )
    return None


def _lines_before(fd: int, start: int, n: int) -> bytes:
    """The `n` whole lines before offset `start` (a line start), or as many as there are."""
    window = 64 << 10
    while True:
        begin = max(0, start - window)
        data = os.pread(fd, start - begin, begin)
        cut = back(data, len(data), n)
        if cut > 0 or begin == 0:
            return data[cut:] if cut > 0 or begin == 0 else b""
        window *= 4


class RangeSource:
    """Bytes [start, stop) of an open file, then `after` more lines for the last context."""

    def __init__(self, fd: int, name: str, start: int, stop: int, size: int, after: int) -> None:
        self.fd = fd
        self.name = name
        self.start, self.stop, self.end = start, stop, size
        self.after = after
        self.size: int | None = stop - start
        self.position = 0
        self.notes: list[str] = []
        self.after_lines = 0  # lines yielded past `stop`

    def chunks(self) -> Iterator[bytes]:
        pos = self.start
        while pos < self.stop:
            data = os.pread(self.fd, min(READ_BYTES, self.stop - pos), pos)
            if not data:
                self.notes.append(f"{self.name}: truncated while read, at byte {pos}")
                return
            pos += len(data)
            self.position = pos - self.start
            yield data
        tail = b""
        while self.after and tail.count(b"\n") < self.after and pos < self.end:
            data = os.pread(self.fd, min(64 << 10, self.end - pos), pos)
            if not data:
                break
            tail += data
            pos += len(data)
        if self.after and tail:
            cut = 0
            for _ in range(self.after):
                found = tail.find(b"\n", cut)
                if found < 0:
                    cut = len(tail)
                    break
                cut = found + 1
            tail = tail[:cut]
            self.after_lines = tail.count(b"\n") + (0 if tail.endswith(b"\n") else 1)
            yield tail

    def close(self) -> None:
        """The descriptor belongs to the FileSource."""


def _add_stats(total: HuntStats, part: HuntStats) -> None:
    total.bytes_read += part.bytes_read
    total.lines_read += part.lines_read
    total.occurrences += part.occurrences
    total.outside_window += part.outside_window
    total.evicted_keys += part.evicted_keys
    # A key a range evicted was counted there as an event not shown, with its occurrences;
    # the merge only sees the keys the range kept, so those it dropped are added here, as
    # one pass over the file would have counted them.
    total.unreported_events += part.evicted_keys
    total.unreported_occurrences += part.evicted_occurrences
    total.evicted_occurrences += part.evicted_occurrences
    total.split_lines += part.split_lines
    total.notes.extend(part.notes)
