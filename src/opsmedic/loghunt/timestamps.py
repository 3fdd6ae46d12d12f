"""When a log line was written, read from its leading timestamp; and --since/--until values."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from opsmedic.errors import HuntInputError

_MONTH_NAMES = b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
# A line's time is a timestamp at its start, after at most a prefix: a syslog priority
# (<13>, <34>1), one level word or tag ([ERROR], INFO:), an opening bracket or quote, a time
# key (time=, ts=, "time":"). A timestamp further in is the message's, not the line's.
_PREFIX = (
    rb"[ \t]*(?:<\d{1,3}>\d?[ \t]*)?(?:\[?[A-Za-z]{1,8}\]?:?[ \t]+)?"
    rb"[\[({\"']?(?:\"?(?:time|ts|timestamp|@timestamp)\"?[=:][ \t]*\"?)?"
)
# ISO 8601 / RFC 3339 with "T" or a space and "," or "." before the fraction; Go's and
# nginx's 2024/05/01 03:04:05.
_ISO = re.compile(
    _PREFIX
    + rb"(\d{4})([-/])(\d\d)\2(\d\d)[T ](\d\d):(\d\d):(\d\d)"
    + rb"(?:[.,](\d{1,9}))?\s?(Z|[+-]\d\d:?\d\d)?"
)
# nginx/Apache "[02/Jan/2024:03:04:05 +0000]", after the client, ident and user at most.
_CLF = re.compile(
    rb"(?:\S+ ){0,3}\[(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-]\d{4})\]"
)
# Without a year (placed in the year nearest the window): syslog "Jan  2 03:04:05",
# klog "I0102 03:04:05.123456".
_SYSLOG = re.compile(_PREFIX + rb"([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d)")
_KLOG = re.compile(rb"[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?\b")
# Seconds since the epoch (2001-09-09 to 2286), as Go kit and others write them.
_EPOCH = re.compile(_PREFIX + rb"([1-9]\d{9})(?:\.(\d{1,9}))?(?![\d.])")
LOOK_BYTES = 64  # of a line, read for its timestamp
_RELATIVE = re.compile(r"(\d+)\s*(s|m|h|d)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

Near = tuple[datetime, datetime]  # the window a timestamp without a year is placed nearest


def near(since: datetime | None, until: datetime | None, now: datetime) -> Near:
    """Where to place a date without a year: the window, or `now` when there is none."""
    return (since or until or now, until or since or now)


def line_time(line: bytes, around: Near) -> datetime | None:
    """The timestamp at the start of `line`, aware; one without a zone is taken as UTC, one
    without a year (syslog, klog) in the year that puts it nearest the window `around`."""
    head = line[:LOOK_BYTES]
    if m := _ISO.match(head):
        y, _, mo, d, h, mi, s, frac, zone = m.groups()
        return _make(int(y), int(mo), int(d), int(h), int(mi), int(s), _micro(frac), zone)
    if m := _CLF.match(head):
        d, mon, y, h, mi, s, zone = m.groups()
        month = _MONTHS.get(mon)
        return None if month is None else _make(int(y), month, int(d), int(h), int(mi),
                                                int(s), 0, zone)  # fmt: skip
    if m := _SYSLOG.match(head):
        mon, d, h, mi, s = m.groups()
        month = _MONTHS.get(mon)
        return None if month is None else _yearless(month, int(d), int(h), int(mi), int(s), 0,
                                                    around)  # fmt: skip
    if m := _KLOG.match(head):
        mo, d, h, mi, s, frac = m.groups()
        return _yearless(int(mo), int(d), int(h), int(mi), int(s), _micro(frac), around)
    if m := _EPOCH.match(head):
        whole, frac = m.groups()
        return datetime.fromtimestamp(int(whole), UTC) + timedelta(microseconds=_micro(frac))
    return None


def _micro(frac: bytes | None) -> int:
    return int((frac or b"0").ljust(6, b"0")[:6])


def _yearless(
    mo: int, d: int, h: int, mi: int, s: int, micro: int, around: Near
) -> datetime | None:
    """The date in the year nearest the window: a syslog "Jan  1" read for a window across
    New Year is the new year's, a "Dec 31" the old one's."""
    lo, hi = around
    best: tuple[timedelta, datetime] | None = None
    for year in sorted({lo.year - 1, lo.year, lo.year + 1, hi.year, hi.year + 1}):
        when = _make(year, mo, d, h, mi, s, micro, None)
        if when is None:
            continue  # Feb 29 of a year without one
        off = lo - when if when < lo else when - hi if when > hi else timedelta(0)
        if best is None or off < best[0]:
            best = (off, when)
    return None if best is None else best[1]


def _make(
    y: int, mo: int, d: int, h: int, mi: int, s: int, micro: int, zone: bytes | None
) -> datetime | None:
    try:
        when = datetime(y, mo, d, h, mi, min(s, 59), micro, tzinfo=UTC)
    except ValueError:
        return None  # looks like a timestamp and is not one (month 13): no time
    if zone and zone != b"Z":
        sign = -1 if zone[:1] == b"-" else 1
        digits = zone[1:].replace(b":", b"")
        try:
            when -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        except OverflowError:
            return None  # year 1 or 9999 shifted out of range
    return when


def parse_when(value: str, option: str, now: datetime) -> datetime:
    """A --since/--until value: ISO 8601 (no zone: UTC), or an age such as 15m, 2h, 1d."""
    text = value.strip()
    if m := _RELATIVE.fullmatch(text):
        try:
            return now - timedelta(**{_UNITS[m[2]]: int(m[1])})
        except OverflowError:
            raise HuntInputError(f"{option} {value!r}: an age before the year 1") from None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HuntInputError(
            f"{option} {value!r}: not a time (ISO 8601 like 2024-05-01T10:00:00Z, or an age "
            "like 15m, 2h, 1d)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
