"""What makes two events duplicates: their text, exact or with its variables masked.

Masked: every token (bytes between separators) holding a digit is a variable — a timestamp,
a number, a duration, an IP and port, a hex id, a UUID, a path with an id in it — and becomes
one marker. One regex does it (a token's start by lookbehind, possessive runs: each token is
scanned once, at C speed); repeats skip even that: an event whose text after its leading
variables (its timestamp) came before takes the key it had then.
A key longer than KEY_BYTES (a traceback of long lines: up to 500 lines of 1 MiB) keeps
that much of its text, for display, and a digest of all of it, for identity: its bytes are
bounded whatever the event's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from opsmedic.loghunt.model import Mode

if TYPE_CHECKING:
    from opsmedic.loghunt.drain import Drain
    from opsmedic.loghunt.scanner import Found

MARKER = 0x1A  # one byte per masked token; a control byte, so no unmasked token holds it
SHOWN_MARKER = b"<*>"
# Of a key kept as text: enough for the 400 characters shown (4 bytes each at most in UTF-8).
KEY_BYTES = 1604
DIGEST_BYTES = 16  # a long key's identity: a collision would take ~2**64 distinct keys
# Texts remembered for repeats (after their leading variables): at most this many, each at
# most REPEAT_BYTES (so 8 MiB at worst, with their masks); past it the memory starts again.
REPEAT_KEYS = 1024
REPEAT_BYTES = 4096
# Of each batch, the events keyed through that memory first: unless a quarter of them were
# repeats, the rest of the batch is masked straight (an event that misses costs ~1 µs more).
PROBE_EVENTS = 256
_SEPARATORS = b" \t\n\r=,;()[]\"'<>{}"
# Digits make a token a variable; so do control bytes (binary garbage), which keeps MARKER
# unambiguous in a key.
_VARIABLE_BYTES = b"0123456789" + bytes(
    b for b in (*range(32), 127) if b not in _SEPARATORS
)  # fmt: skip


def _set(chars: bytes) -> bytes:
    return b"".join(b"\\x%02x" % c for c in chars)


_SEP, _VAR = _set(_SEPARATORS), _set(_VARIABLE_BYTES)
# A variable token: at a token's start, up to its first digit (or control byte), then to its end.
_VARIABLE_TOKEN = re.compile(b"(?<![^%s])[^%s%s]*+[%s][^%s]*+" % (_SEP, _SEP, _VAR, _VAR, _SEP))
# An event's leading variables (a timestamp, a pid), each with the separators after it on
# its line: masked alone, they leave the rest of the text to be judged a repeat.
_LEAD = re.compile(
    b"(?:[^%s%s]*+[%s][^%s]*+[%s]++)*+"
    % (_SEP, _VAR, _VAR, _SEP, _set(_SEPARATORS.replace(b"\n", b"")))
)


class Keyer:
    """The keys of events in one mode, a block of events at a time. Template mode: the
    cluster `templates` puts the event's masked matching line in (its id: a template widens
    as lines come, so the id, not the text, keeps the count)."""

    def __init__(self, mode: Mode, templates: Drain | None = None) -> None:
        if (mode == "template") != (templates is not None):
            raise ValueError("template mode, and it alone, clusters into a Drain (templates)")
        self.mode = mode
        self.templates = templates
        self.repeats: dict[bytes, bytes] = {}  # text after its leading variables: its mask
        self.hits = 0  # events whose mask came from `repeats`

    def keys(self, found: Sequence[Found]) -> Iterable[bytes]:
        """The events' keys in order; template mode's lazily, so that each event is tallied
        before the next is clustered (an eviction must see which clusters are reported)."""
        if self.templates is not None:
            drain = self.templates
            heads = (mask(f.buf[f.start : f.head_end]) for f in found)
            return (b"%d" % drain.add(head).id for head in heads)
        texts = [f.buf[f.start : f.end].replace(b"\r\n", b"\n") for f in found]  # CRLF as LF
        if self.mode == "exact":
            return [bounded(t) for t in texts]
        before = self.hits
        keys = [self.masked(t) for t in texts[:PROBE_EVENTS]]
        repeats = (self.hits - before) * 4 >= len(keys)  # else the memory costs more than it saves
        keys += map(self.masked if repeats else mask, texts[PROBE_EVENTS:])
        return [bounded(k) for k in keys]

    def masked(self, text: bytes) -> bytes:
        """The text with every token that holds a digit (or a control byte) as one MARKER;
        the same as mask(text), from memory when its text after its leading variables came
        before (tokens never cross the cut: it falls after a separator)."""
        cut = _LEAD.match(text).end()  # type: ignore[union-attr]  # matches the empty string
        rest = text[cut:]
        known = self.repeats.get(rest)
        if known is not None:
            self.hits += 1
        else:
            known = mask(rest)
            if len(rest) <= REPEAT_BYTES:
                if len(self.repeats) >= REPEAT_KEYS:
                    self.repeats.clear()
                self.repeats[rest] = known
        return mask(text[:cut]) + known if cut else known


def bounded(key: bytes) -> bytes:
    """The key itself, or when longer than KEY_BYTES its first KEY_BYTES and a digest of it
    whole (longer than any key kept whole, so the two kinds never meet)."""
    if len(key) <= KEY_BYTES:
        return key
    return key[:KEY_BYTES] + hashlib.blake2b(key, digest_size=DIGEST_BYTES).digest()


def mask(text: bytes) -> bytes:
    """The text with every token that holds a digit (or a control byte) as one MARKER."""
    return _VARIABLE_TOKEN.sub(b"\x1a", text)


def shown(key: bytes) -> str:
    """A key as people read it: each masked token as <*>; a digested key's text then "…"."""
    text = key[:KEY_BYTES].replace(bytes([MARKER]), SHOWN_MARKER).decode("utf-8", "replace")
    return text + "…" if len(key) > KEY_BYTES else text
