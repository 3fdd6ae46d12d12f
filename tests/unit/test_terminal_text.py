"""Text the CLI prints is inert: controls and bidi characters show as escapes, layout stays."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.panel import Panel
from rich.text import Text

from opsmedic.actions.loghunt_result import headline
from opsmedic.cli.output import cell, tsv_line
from opsmedic.cli.terminal import InertConsole
from opsmedic.utf8 import visible

HOSTILE = "\x1b]0;t\x07\x1b[2J\r\x08\x7f\x85\u202e\u2066\udcff"
SHOWN = r"\x1b]0;t\x07\x1b[2J\r\x08\x7f\x85\u202e\u2066\xff"


def test_visible_writes_each_hiding_character_as_its_escape() -> None:
    assert visible(f"a{HOSTILE}b") == f"a{SHOWN}b"
    assert visible("one\ttwo\nthree", keep="\t\n") == "one\ttwo\nthree"
    assert visible("one\ttwo\nthree") == r"one\ttwo\nthree"
    assert visible("plain ünïcode [red]") == "plain ünïcode [red]"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), max_size=4))
def test_a_tsv_line_is_one_line_of_printable_fields_that_cut_can_split(cells: list[str]) -> None:
    line = tsv_line(cells)
    assert line.count("\t") == max(len(cells) - 1, 0)
    assert visible(line.replace("\t", "")) == line.replace("\t", "")


def printed(*objects: object, terminal: bool = True) -> str:
    console = InertConsole(force_terminal=terminal, width=100, highlight=False, soft_wrap=True)
    with console.capture() as captured:
        console.print(*objects)
    return captured.get()


def test_every_way_into_the_console_shows_escapes_and_reads_no_markup_from_cells() -> None:
    """A str (markup parsed), a Text someone styled (rich itself drops its BEL, BS and CR),
    a cell, a panel's title: only rich's own colour sequences reach the terminal."""
    styled = Text("state ", style="red").append(f"x{HOSTILE}", style="bold")
    for output in (printed(f"str {HOSTILE}"), printed(styled), printed(cell(f"[bold]{HOSTILE}")),
                   printed(Panel(Text("body"), title=f"title {HOSTILE}"))):  # fmt: skip
        assert r"\x1b]0;t" in output and r"\u202e\u2066\xff" in output, output
        assert not re.search("[\x07\x08\r\x7f\x85\u202e\u2066]|\x1b[^[]|\x1b\\[2J", output)
    assert "[bold]" in printed(cell("[bold]x"))
    assert printed(cell("one\n\ttwo"), terminal=False) == "one\n        two\n"


def test_a_headline_read_in_mail_or_chat_shows_escapes() -> None:
    assert headline(f"ERROR {HOSTILE} there") == f"ERROR {SHOWN} there"
