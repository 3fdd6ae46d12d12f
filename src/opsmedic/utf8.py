"""Text every JSON encoder, strict decoder and database accepts, and that shows what it says."""

from __future__ import annotations

import re
from typing import Any

# What makes text shown to people lie: C0 and C1 controls (ESC moves a terminal's cursor, CR
# overwrites a line), DEL, lone surrogates, and the bidi embeddings, overrides and isolates
# (U+202A-U+202E, U+2066-U+2069) that reorder what follows them on screen ("Trojan Source"):
# `alice\u202e` before "resolved by hand" would show a different sentence; the invisible bidi
# marks (U+061C, U+200E, U+200F) that flip neutral characters around them; and the line and
# paragraph separators (U+2028, U+2029) that break a line no log or terminal shows as one; and
# the invisible ones that make two names look alike (`bob` and `bob` + U+200B): the soft hyphen,
# the combining grapheme joiner, the zero-width space, the word joiner and invisible operators,
# the byte order mark. (The zero-width joiners U+200C/D stay: emoji and scripts need them.)
_HIDING = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064"
    r"\u2066-\u2069\ufeff\ud800-\udfff]"
)
_INVISIBLE = re.compile(r"[\u00ad\u034f\u200b\u2060-\u2064\ufeff]")
_BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_BREAKS = "\t\n"


def hiding(value: str, *, breaks: bool = False) -> str | None:
    """What in `value` would not show as written (the first such character, as "control
    character '\\x1b' at position 3"), or None; with `breaks`, tabs and line feeds pass."""
    for found in _HIDING.finditer(value):
        char = found.group()
        if breaks and char in _BREAKS:
            continue
        if _BIDI.match(char):
            kind = "bidi control"
        elif _INVISIBLE.match(char):
            kind = "invisible character"
        else:
            kind = "control character"
        return f"{kind} {char!r} at position {found.start()}"
    return None


def visible(value: str, *, keep: str = "") -> str:
    """`value` with each character `hiding` names written out as its escape, as `repr` would
    (ESC as `\\x1b`, RLO as `\\u202e`, an undecodable byte as `\\xff`), except those in `keep`
    (a multi-line output's tabs and line feeds): shown to a terminal, never obeyed by it."""
    if value.isprintable() and value.isascii():
        return value  # the common case, without a regex pass
    return _HIDING.sub(lambda found: _shown(found.group(), keep), value)


def _shown(char: str, keep: str) -> str:
    if char in keep:
        return char
    if "\ud800" <= char <= "\udfff":
        return _SURROGATE_ESCAPES[char]
    return repr(char)[1:-1]  # every character _HIDING finds is one repr writes as an escape


def text(value: str) -> str:
    """A string a text column can hold on every backend: NUL bytes (refused by PostgreSQL)
    and lone surrogates (not encodable as UTF-8) become U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            value = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    return value


def valid_utf8(value: Any) -> Any:
    """`value` with every string in it (dict keys too) valid UTF-8: lone surrogates escaped."""
    # A lone surrogate, the undecodable byte of a file name as surrogateescape keeps it,
    # becomes `\xff` (others `\ud800`): orjson in the API and `--json` refuse surrogates.
    if isinstance(value, str):
        return escape_surrogates(value)
    if isinstance(value, dict):
        return {escape_surrogates(str(k)): valid_utf8(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [valid_utf8(v) for v in value]
    return value


def escape_surrogates(value: str) -> str:
    """`value` as valid UTF-8: each lone surrogate written out as its escape."""
    if value.isascii():
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        return "".join(_SURROGATE_ESCAPES.get(c, c) for c in value)
    return value


# Bytes 0x80-0xff that surrogateescape decoded as U+DC80-U+DCFF read back as the byte they
# were (`bad\xff.log`, as `ls -b` shows it); any other lone surrogate as its code point.
_SURROGATE_ESCAPES = {
    chr(c): f"\\x{c - 0xDC00:02x}" if 0xDC80 <= c <= 0xDCFF else f"\\u{c:04x}"
    for c in range(0xD800, 0xE000)
}
