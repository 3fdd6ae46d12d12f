"""When a log line was written, read from its leading timestamp; and --since/--until values."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from opsmedic.errors import HuntInputError

_MONTH_NAMES = b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
# Near the start of a line (after a level or a bracket at most): ISO 8601 / RFC 3339 with
# "T" or a space and "," or "." before the fraction; nginx/Apache "02/Jan/2024:03:04:05 +0000";
# syslog "Jan  2 03:04:05" (no year: the window's year is taken).
_ISO = re.compile(
    rb"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?\s?(Z|[+-]\d\d:?\d\d)?"
)
_CLF = re.compile(rb"(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-]\d{4})")
_SYSLOG = re.compile(rb"([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d)")
LOOK_BYTES = 48  # how far into a line a timestamp may start
_RELATIVE = re.compile(r"(\d+)\s*(s|m|h|d)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def line_time(line: bytes, year: int) -> datetime | None:
    """The timestamp near the start of `line`, aware; one without a zone is taken as UTC."""
    head = line[:LOOK_BYTES]
    if m := _ISO.search(head):
        y, mo, d, h, mi, s, frac, zone = m.groups()
        micro = int((frac or b"0").ljust(6, b"0")[:6])
        return _make(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, zone)
    if m := _CLF.search(head):
        d, mon, y, h, mi, s, zone = m.groups()
        month = _MONTHS.get(mon)
        return None if month is None else _make(int(y), month, int(d), int(h), int(mi),
                                                int(s), 0, zone)  # fmt: skip
    if m := _SYSLOG.match(head):
        mon, d, h, mi, s = m.groups()
        month = _MONTHS.get(mon)
        return None if month is None else _make(year, month, int(d), int(h), int(mi),
                                                int(s), 0, None)  # fmt: skip
    return None


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
        when -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return when


def parse_when(value: str, option: str, now: datetime) -> datetime:
    """A --since/--until value: ISO 8601 (no zone: UTC), or an age such as 15m, 2h, 1d."""
    text = value.strip()
    if m := _RELATIVE.fullmatch(text):
        return now - timedelta(**{_UNITS[m[2]]: int(m[1])})
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HuntInputError(
            f"{option} {value!r}: not a time (ISO 8601 like 2024-05-01T10:00:00Z, or an age "
            "like 15m, 2h, 1d)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
