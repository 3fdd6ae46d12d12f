"""A report as one HTML page: its Markdown rendered with raw HTML off (store text is escaped
twice over: as Markdown text, then by the renderer), its SVG charts inline."""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;"
    "vertical-align:top;overflow-wrap:anywhere}figure{margin:1rem 0}"
)


# CommonMark has no footnotes (GitHub renders them): their definitions become a list, and each
# marker a link to its definition. Only fixed markup around digits is added to the HTML.
_DEFINITION = re.compile(r"^(\[\^\d+\]: )", re.MULTILINE)
_DEFINED = re.compile(r"<li>\[\^(\d+)\]: ")
_MARKER = re.compile(r"\[\^(\d+)\]")


def body(markdown: str) -> str:
    """`markdown` as HTML: raw HTML in it shown as text, footnotes as links to their list (the
    dashboard's incident page shows a draft so too)."""
    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    rendered = renderer.render(_DEFINITION.sub(r"- \1", markdown))
    rendered = _DEFINED.sub(r'<li id="fn-\1">[\1]: ', rendered)
    return _MARKER.sub(r'<a href="#fn-\1">[\1]</a>', rendered)


def page(title: str, markdown: str, charts: dict[str, str]) -> str:
    """`markdown` rendered, then each chart (SVG drawn by reports/charts.py, no store text)."""
    figures = "".join(
        f"<figure>{svg}<figcaption>{html.escape(name)}</figcaption></figure>\n"
        for name, svg in charts.items()
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        f"{body(markdown)}{figures}</body></html>\n"
    )
