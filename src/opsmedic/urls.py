"""Templated URL parameters, kept to the scheme, host, port and path the rule wrote first."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from pydantic import BeforeValidator

from opsmedic.templating import MARKERS, Rendered, UnsafeTemplate, is_template

# A scheme, `://`, an authority, and the character that ends it: after that comes the path.
_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*[/?#]")
# Segment separators to a server: `\` too, for the servers that read it as `/` (IIS, WHATWG).
_SEPARATOR = re.compile(r"[/\\]")
_DECODINGS = 4  # a server that decodes twice sees `%252e` as `.`; a few rounds cover any chain


def static_head(source: str) -> str:
    """What a URL template fixes: its text up to the first marker, less trailing spaces."""
    # Trailing whitespace is left out: `{{-` strips it, so the rendered URL need not hold it.
    first = min((i for m in MARKERS if (i := source.find(m)) >= 0), default=len(source))
    return source[:first].rstrip()


def check_url_source(source: str) -> None:
    """Refuse, when rules load, a URL template whose scheme, host or port an event could pick."""
    if not _AUTHORITY.match(static_head(source)):
        raise UnsafeTemplate(
            "a templated URL must write its scheme, host and port before the first template, "
            "up to the / that starts its path, e.g. https://api.internal/items/{{ event.id }}"
        )


def confine_url(rendered: str, source: str) -> None:
    """Raise ValueError unless `rendered` (from template `source`) keeps what the rule wrote."""
    # The scheme, host, port and path written before the first template stay; the rendered
    # rest cannot climb the path (`..`, `.`, raw or percent-encoded), start a query or a
    # fragment the rule did not start, or hold a control character.
    check_url_source(source)
    head = static_head(source)
    if not rendered.startswith(head):
        raise ValueError(f"rendered URL {rendered!r} does not start with {head!r}, as written")
    rest = rendered[len(head) :]
    # A CR or LF in a URL is how a request line or a header is forged; C1 controls and DEL
    # are no part of any URL either.
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in rest):
        raise ValueError(f"rendered URL {rendered!r} holds a control character")
    for mark, what in (("?", "query"), ("#", "fragment")):
        if mark in rest and mark not in head:
            raise ValueError(
                f"rendered URL {rendered!r} has a {mark!r} that the rule did not write: a "
                f"value cannot start a {what}"
            )
    if "?" not in head and "#" not in head:
        # The value is in the path. Judge the whole last segment (the rule's part of it
        # too: `items/.{{ v }}` with `.` is `..`), decoded as a server may decode it.
        tail = rendered[head.rfind("/") + 1 :].partition("?")[0].partition("#")[0]
        for _ in range(_DECODINGS):
            tail = unquote(tail)
        for segment in _SEPARATOR.split(tail):
            # `..;x` is `..` to servers that drop path parameters (Tomcat, Jetty).
            if segment.partition(";")[0] in (".", ".."):
                raise ValueError(
                    f"rendered URL {rendered!r} has a '{segment}' path segment (raw or "
                    "percent-encoded): a templated URL must stay inside the path the rule wrote"
                )
    written, now = urlsplit(head), urlsplit(rendered)
    if (now.scheme, now.netloc) != (written.scheme, written.netloc):  # held by the above
        raise ValueError(f"rendered URL {rendered!r} changes the scheme, host or port")


def _checked(value: Any) -> Any:
    """Rendered text is judged against its template; a template itself (at load) on its own."""
    if isinstance(value, Rendered) and is_template(value.source):
        confine_url(value, value.source)
    elif isinstance(value, str) and is_template(value):
        check_url_source(value)
    return value


# On a parameter that is a URL: a templated value keeps what the rule wrote before it.
URL_CONFINED = BeforeValidator(_checked)
TemplatedUrl = Annotated[str, URL_CONFINED]
