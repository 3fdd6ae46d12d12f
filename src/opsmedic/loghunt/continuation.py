"""Which lines after a matching line still belong to its event: tracebacks and chains, whole."""

from __future__ import annotations

import re

# A line that cannot start a new log record, so it continues the one above it:
# - indented (Python frames, Java "\tat …" and "\t... 5 more", wrapped messages);
# - the openers and links of a chain (Python's Traceback and "During handling…", Java's
#   "Caused by:", Go's signal line, goroutine header, frames and "created by");
# - an exception's name with its message, the last line of a Python traceback and the first
#   of a Java one ("java.lang.IllegalStateException: …", "ValueError: bad").
_INDENTED_LINE = rb"[ \t]+\S"
_TRACEBACK_LINE = rb"Traceback \(most recent call last\):"
_OTHER_LINKS = (
    rb"Caused by: "
    rb"|Exception in thread "
    rb"|During handling of the above exception"
    rb"|The above exception was the direct cause"
    rb"|goroutine \d+ \["
    rb"|\[signal \w"
    rb"|created by \S"
    rb"|(?:[\w\-]+/)*[\w\-]+\.(?:\(\*?\w+\)\.)?\w+(?:\[[^\]\n]*\])?\([^\n]*\)\r?\n"
    rb"|[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*"
    rb"(?:Error|Exception|Throwable|Exit|Interrupt|Fault|Failure)(?::|\r?\n)"
)
_CONTINUES = re.compile(b"|".join((_INDENTED_LINE, _TRACEBACK_LINE, _OTHER_LINKS)))
# What event_end asks of each line, in one match (the alternatives are disjoint): its
# lastgroup is "ind" (indented), "tb" (a Traceback line), "link" (another continuation) or
# "blank"; no match: a line that is none of these.
_LINE = re.compile(
    b"(?P<ind>%s)|(?P<tb>%s)|(?P<link>%s)|(?P<blank>\r?\n)"
    % (_INDENTED_LINE, _TRACEBACK_LINE, _OTHER_LINKS)
)
# A blank line inside a chain: Python puts one around "During handling of the above
# exception…" and before the next Traceback; Go one before its goroutine dump.
_AFTER_BLANK = re.compile(
    rb"During handling of the above exception|The above exception was the direct cause"
    rb"|goroutine \d+ \["
)
_CHAIN_LINK = re.compile(rb"(?:During handling of the above|The above exception was)[^\n]*:\r?\n")
_TRACEBACK = re.compile(_TRACEBACK_LINE)
_BLANK = re.compile(rb"\r?\n")
_INDENTED = re.compile(rb"[ \t]")
# An exception as Python prints it under its frames: a (dotted) name, then ": message" or
# nothing ("psycopg2.errors.UniqueViolation: …", "KeyboardInterrupt"); not a log record
# ("ERROR next", a timestamp), should a traceback come without its exception line.
_RAISED = re.compile(rb"[A-Za-z_][\w.]*(?::[^\n]*)?\r?\n")


def opens_record(buf: bytes, pos: int, end: int, prev: int) -> bool:
    """Whether line buf[pos:end] (with its newline; `prev`: the start of the line before it)
    can only start a record: no event that began above it goes on through it, so a file can
    be cut there. Not after an indented line: that may be a traceback's last frame, and this
    line its exception, whatever its name."""
    return (
        not _CONTINUES.match(buf, pos, end)
        and not _BLANK.fullmatch(buf, pos, end)
        and not _INDENTED.match(buf, prev, pos)
    )


# How event_end stopped: at the event's end, for want of input, or at the line limit.
END, MORE, CUT = 0, 1, 2
# Where a Python traceback is, for event_end: outside one, at its "Traceback" line, in its
# frames (the next unindented line, when it names an exception, is the root cause: part of
# the event).
OUTSIDE, OPENED, FRAMES = 0, 1, 2


def event_end(
    buf: bytes,
    pos: int,
    prev: int,
    end: int,
    *,
    final: bool,
    max_lines: int,
    traceback: int | None = None,
) -> tuple[int, int, int, int]:
    """Follow the continuation lines from line `pos` (`prev`: the line before it, or -1) up to
    `end`, a line boundary; `traceback`: where line `pos` is in a traceback (OUTSIDE, OPENED,
    FRAMES), as returned before, None: as `prev` says. Returns (where it stopped, the line
    before that, END | MORE | CUT, where that line is in a traceback): END at the first line
    that is not a continuation; MORE when `end` comes first and more input may follow (not
    `final`: the decision needs the next line); CUT after `max_lines`."""
    if traceback is None:
        traceback = OPENED if prev >= 0 and _TRACEBACK.match(buf, prev, pos) else OUTSIDE
    taken = 0
    while pos < end:
        if taken >= max_lines:
            return pos, prev, CUT, traceback
        nxt = buf.find(b"\n", pos, end) + 1
        line = _LINE.match(buf, pos, nxt)
        kind = None if line is None else line.lastgroup
        if kind == "tb":
            traceback = OPENED
        elif kind == "ind":
            traceback = FRAMES if traceback else OUTSIDE
        elif kind == "link":
            traceback = OUTSIDE
        elif traceback == FRAMES and _RAISED.fullmatch(buf, pos, nxt):
            traceback = OUTSIDE  # the exception after the frames, whatever its name
        else:
            if kind != "blank":
                return pos, prev, END, traceback
            if nxt >= end:
                break
            joins = _AFTER_BLANK.match(buf, nxt) or (
                prev >= 0 and _CHAIN_LINK.fullmatch(buf, prev, pos) and _TRACEBACK.match(buf, nxt)
            )
            if not joins:
                return pos, prev, END, traceback
            traceback = OUTSIDE
        prev, pos = pos, nxt
        taken += 1
    return pos, prev, END if final else MORE, traceback
