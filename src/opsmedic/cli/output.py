"""How listings print: rich tables at a terminal, tab-separated lines in a pipe, JSON on ask."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import typer
from rich.text import Text

from opsmedic.cli import out
from opsmedic.cli.terminal import LAYOUT, inert_text
from opsmedic.errors import OpsmedicError
from opsmedic.utf8 import visible

JsonOpt = Annotated[
    bool, typer.Option("--json", help="print JSON (the shape of docs/api.md) instead of a table")
]
Cell = str | Text
# Tabs and line breaks inside a value would split a field or a row: escaped as \t, \n, \r
# (and the backslash itself as \\), so every row stays one line that `cut -f` can take apart;
# any other control or bidi character then as its escape too (\x1b, \u202e: utf8.visible).
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
MESSAGE_WIDTH = 120  # a message longer than this ends in "…" in a table; `show` has it whole


def print_json(data: Any) -> None:
    """One JSON document on one line."""
    sys.stdout.write(json_line(data) + "\n")


def json_line(data: Any) -> str:
    """Compact JSON in ASCII: non-ASCII text (U+2028 too, which some tools take for a line
    break) is escaped, so a line is always one line and any value a store holds stays exact."""
    try:
        return json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    except RecursionError:
        # orjson decodes up to 1024 levels (API, replay, rules test); Python's encoder stops
        # near its recursion limit (1000 frames), so a payload between the two lands here.
        raise OpsmedicError(
            "a value is nested too deeply (about 1000 levels) to print as JSON"
        ) from None


def plain() -> bool:
    """True when stdout is not a terminal: print for programs, not for eyes."""
    return not out.is_terminal


def shorten(message: str) -> str:
    """A message as a table cell: whole in a pipe, cut with a visible "…" at a terminal."""
    if plain() or len(message) <= MESSAGE_WIDTH:
        return message
    return message[: MESSAGE_WIDTH - 1] + "…"


def tsv_line(cells: Sequence[Cell]) -> str:
    return "\t".join(visible(_text(c).translate(_TSV_ESCAPES)) for c in cells)


def print_lines(lines: Iterable[str]) -> None:
    """Text lines as they are (`logs hunt`), tabs kept, any other control shown as its escape:
    a line of a log or a file's name never moves the cursor or fakes a line of its own."""
    sys.stdout.write("".join(visible(line, keep="\t") + "\n" for line in lines))


def cell(value: Cell) -> Text:
    """A value as a rich cell: never read as markup ("[red]" in a message stays), its
    controls shown as escapes (before rich's Text drops BEL and CR unseen), lines kept."""
    return inert_text(value) if isinstance(value, Text) else Text(visible(value, keep=LAYOUT))


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], *, empty: str = ""
) -> None:
    """Rows as tab-separated lines (header first) in a pipe; at a terminal as a rich table
    whose cells fold rather than lose text, then `empty` when there are no rows."""
    if plain():
        sys.stdout.write("".join(tsv_line(r) + "\n" for r in (columns, *rows)))
        return
    from rich.table import Table

    shown = Table(title=title)
    for column in columns:
        # fold: a value wider than its column breaks across lines; nothing is ever cut off.
        shown.add_column(column, overflow="fold")
    for row in rows:
        shown.add_row(*map(cell, row))
    out.print(shown)
    if empty and not rows:
        out.print(empty)


def _text(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell
