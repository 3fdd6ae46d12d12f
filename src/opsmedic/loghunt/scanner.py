"""The streaming scan: big blocks of whole lines in, each matching event's place out.

Per-line work happens only around a match: the level search runs over a whole block at C
speed (levels.py), then each hit is widened to its line, its continuation lines and its
context. What the block boundary cuts (an event still going on, context not read yet) is
carried into the next block, with the lines a later event's context needs before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from opsmedic.loghunt.continuation import CUT, END, MORE, event_end
from opsmedic.loghunt.levels import HitFinder

SPLIT_BYTES = 1 << 20  # a "line" this long without a newline is split: memory stays flat
# A matching line without a timestamp takes the one of a line this far above it at most;
# blocks carry that many lines (as a range starts with them), so where the input is cut
# never changes an event's time.
LOOK_BACK_LINES = 20


@dataclass(slots=True)
class Found:
    """One event as found: its bytes are buf[start:end], its matching line buf[start:head_end]
    numbered `line`; the scanner's context rules hold for buf around it."""

    buf: bytes
    line: int
    at: int  # the offset of buf[start] in the stream fed (negative inside `before`)
    start: int
    head_end: int
    end: int
    cut: bool


@dataclass(slots=True)
class ScanState:
    """What one source's scan carries from block to block."""

    carry: bytes = b""  # whole lines kept: context before, or an event not finished
    carry_line: int = 1  # the number of carry's first line
    carry_at: int = 0  # the offset of carry's first byte in the stream fed
    scan_from: int = 0  # offset in carry from which matches are still to be handled
    swallowing: bool = False  # inside the tail of a cut event, whose lines are not kept
    prev: int = -1  # then: the offset of the line before scan_from (-1: none)
    traceback: int = 0  # then: where line scan_from is in a traceback (continuation.py)


class Scanner:
    """Finds the events of one source; the caller feeds it blocks of whole lines."""

    def __init__(
        self, matcher: HitFinder, context: int, max_event_lines: int, *, before: bytes = b""
    ) -> None:
        """`before`: whole lines that come before the first fed (a range's context), numbered
        from 1 - their count so that the first line fed is line 1; searched for nothing."""
        self.matcher = matcher
        self.context = context
        self.kept = max(context, LOOK_BACK_LINES)  # lines carried before the next block
        self.max_event_lines = max_event_lines
        self.state = ScanState(before, 1 - before.count(b"\n"), -len(before), len(before))

    @property
    def lines(self) -> int:
        """The number of the last line fed (lines fed so far, when nothing came before)."""
        return self.state.carry_line - 1 + self.state.carry.count(b"\n")

    def feed(self, lines: bytes, final: bool) -> Iterator[Found]:
        """The events complete once `lines` (whole lines) follow what came before; with
        `final`, every event left (the source has ended)."""
        st = self.state
        buf = st.carry + lines if st.carry else lines
        end = len(buf)
        n = self.context
        pos = st.scan_from
        if st.swallowing:
            pos, prev, how, tb = event_end(
                buf, pos, st.prev, end, final=final, max_lines=_ALL, traceback=st.traceback
            )
            if how == MORE:
                self._swallow(buf, pos, prev, tb)
                return
            st.swallowing = False
        consumed, keep, resume = pos, -1, end
        # An event ending by here has its n lines of context after it in buf (or the source
        # has ended): found once per block rather than counted after every event.
        complete = end if final else back(buf, end, n)
        counted_at, counted_line = 0, st.carry_line
        for hit in self.matcher.hits(buf, pos, end, st.carry_at):
            if hit < consumed:
                continue  # inside the event before: one of its lines
            start = buf.rfind(b"\n", 0, hit) + 1
            head_end = buf.find(b"\n", hit) + 1
            stop, prev, how, tb = event_end(
                buf, head_end, start, end, final=final, max_lines=self.max_event_lines - 1
            )
            if how == MORE or (how == END and stop > complete):
                keep, resume = back(buf, start, self.kept), start  # finish it with the next block
                break
            counted_line += buf.count(b"\n", counted_at, start)
            counted_at = start
            yield Found(buf, counted_line, st.carry_at + start, start, head_end, stop, how == CUT)
            consumed = stop
            if how == CUT:
                consumed, prev, how, tb = event_end(
                    buf, stop, prev, end, final=final, max_lines=_ALL, traceback=tb
                )
                if how == MORE:
                    self._swallow(buf, consumed, prev, tb)
                    return
        if keep < 0:
            keep = back(buf, end, self.kept)
        if keep >= counted_at:
            st.carry_line = counted_line + buf.count(b"\n", counted_at, keep)
        else:
            st.carry_line = counted_line - buf.count(b"\n", keep, counted_at)
        st.carry_at += keep
        st.carry = buf[keep:]
        st.scan_from = resume - keep

    def _swallow(self, buf: bytes, pos: int, prev: int, traceback: int) -> None:
        """Go on, next block, swallowing the rest of an overlong event from line `pos`."""
        st = self.state
        keep = prev if prev >= 0 else pos
        st.carry_line += buf.count(b"\n", 0, keep)
        st.carry_at += keep
        st.carry = buf[keep:]
        st.scan_from = pos - keep
        st.swallowing, st.prev = True, (prev - keep if prev >= 0 else -1)
        st.traceback = traceback


_ALL = 1 << 62  # no line limit: swallowing a cut event's tail keeps nothing


def back(buf: bytes, pos: int, n: int) -> int:
    """The start of the line `n` lines before line start `pos` (or of buf)."""
    for _ in range(n):
        if pos <= 0:
            break
        pos = buf.rfind(b"\n", 0, pos - 1) + 1
    return pos


def forward(buf: bytes, pos: int, n: int) -> int:
    """The end of the `n`-th line from line start `pos` (or of buf)."""
    for _ in range(n):
        if pos >= len(buf):
            break
        pos = buf.find(b"\n", pos) + 1
    return pos
