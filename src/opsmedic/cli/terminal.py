"""The CLI's consoles: text they were given never reaches the terminal as a control."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Text

from opsmedic.utf8 import hiding, visible

# Line feeds and tabs lay a multi-line value out (a run's output, a note); every other
# control and bidi character is written out as its escape (utf8.visible).
LAYOUT = "\t\n"


def inert_text(text: Text) -> Text:
    """`text` with its controls written out as escapes, each part keeping its styles."""
    if hiding(text.plain, breaks=True) is None:
        return text
    cuts = sorted({0, len(text), *(n for s in text.spans for n in (s.start, s.end))})
    shown = Text(style=text.style, justify=text.justify, overflow=text.overflow, end=text.end)
    for part in text.divide(cuts[1:-1]):
        piece = Text(visible(part.plain, keep=LAYOUT))
        for span in part.spans:  # divided at every span's ends: each span covers the part
            piece.stylize(span.style)
        shown.append_text(piece)
    return shown


class InertConsole(Console):
    """A rich Console that shows the control characters of the text it prints (ESC, BEL,
    CR, bidi overrides…) as escapes rather than passing them to the terminal.

    Strings and Text are cleaned before layout (printed, or laid out as a table cell or a
    panel's body), so nothing is cut; every segment of anything else is checked again as it
    renders (a panel's title), so no path prints a control raw."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        # Before rich's Text drops BEL, BS and CR silently: they show as \x07, \x08, \r.
        return super().render_str(visible(text, keep=LAYOUT), **kwargs)

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(inert_text(o) if isinstance(o, Text) else o for o in objects), **kwargs)

    def render_lines(self, renderable: RenderableType, *args: Any, **kwargs: Any) -> Any:
        # A table cell or a panel's body: cleaned before it is wrapped to its width, so the
        # escapes fold onto the next line rather than being cropped by the segment check.
        if isinstance(renderable, Text):
            renderable = inert_text(renderable)
        return super().render_lines(renderable, *args, **kwargs)

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            # Control segments are rich's own cursor moves; text segments hold what was printed.
            if segment.control is None and hiding(segment.text, breaks=True) is not None:
                segment = Segment(visible(segment.text, keep=LAYOUT), segment.style)
            yield segment
