"""Markdown building blocks of the reports: escaped store text, UTC times, cited rows."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

# The ASCII punctuation Markdown could read as markup inside a line (emphasis, code, links,
# HTML, entities, table cells; CommonMark lets a backslash escape each): store text stays
# text, whatever an alert's labels say. Every line a report writes starts with its own markup.
_SPECIAL = re.compile(r"([\\`*_\[\]<>|&#~])")
_BREAKS = re.compile(r"[\r\n\t\u2028\u2029]+")
TO_FILL = "**TO FILL**"  # marks what a person writes: the draft states facts, not causes


def esc(value: object) -> str:
    """Store text as Markdown text: no markup, no HTML, one line."""
    return _SPECIAL.sub(r"\\\1", _BREAKS.sub(" ", str(value)))


def when(ts: float | None) -> str:
    """A stored time in UTC to the second, as every report writes it."""
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):  # a time no calendar shows: as stored
        return f"{ts:g}"


def count(n: int, noun: str) -> str:
    """`n` and the noun, plural unless one: 1 event, 2 events, 0 flaps."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def secs(value: float) -> str:
    """A duration in seconds, to a tenth (the reports' one spelling of a duration)."""
    return f"{value:.1f} s"


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table of already escaped cells; never cut."""
    found = [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    return found + ["| " + " | ".join(row) + " |" for row in rows]


class Citations:
    """Numbered footnotes, one per stored row a report cites: `cite` returns its marker,
    `lines` the definitions ("[^3]: timeline row 42"), which tests trace back to the rows."""

    def __init__(self) -> None:
        self._numbers: dict[tuple[str, str], int] = {}

    def cite(self, table_name: str, key: object) -> str:
        ident = (table_name, str(key))
        number = self._numbers.setdefault(ident, len(self._numbers) + 1)
        return f"[^{number}]"

    def lines(self) -> list[str]:
        return [f"[^{n}]: {t} row {esc(k)}" for (t, k), n in self._numbers.items()]
