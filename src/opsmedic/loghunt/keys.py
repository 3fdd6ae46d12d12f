"""What makes two events duplicates: their text, exact or with its variables masked.

Masked: every token (bytes between separators) holding a digit is a variable — a timestamp,
a number, a duration, an IP and port, a hex id, a UUID, a path with an id in it — and becomes
one marker. Python's re does this at 8 to 30 MB/s here (its cost is per position and per match);
the same rule as a few numpy passes over a whole block's events runs at hundreds of MB/s.
A key longer than KEY_BYTES (a traceback of long lines: up to 500 lines of 1 MiB) keeps
that much of its text, for display, and a digest of all of it, for identity: its bytes are
bounded whatever the event's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from opsmedic.loghunt.model import Mode

if TYPE_CHECKING:
    from opsmedic.loghunt.drain import Drain
    from opsmedic.loghunt.scanner import Found

MARKER = 0x1A  # one byte per masked token; a control byte, so no unmasked token holds it
SHOWN_MARKER = b"<*>"
# Of a key kept as text: enough for the 400 characters shown (4 bytes each at most in UTF-8).
KEY_BYTES = 1604
DIGEST_BYTES = 16  # a long key's identity: a collision would take ~2**64 distinct keys
MASK_BYTES = 1 << 20  # of events masked at once: numpy's arrays take ~20 bytes per byte
_SEPARATORS = b" \t\n\r=,;()[]\"'<>{}"
_SEPARATOR = np.zeros(256, dtype=bool)
_SEPARATOR[list(_SEPARATORS)] = True
# Digits make a token a variable; so do control bytes (binary garbage), which keeps MARKER
# unambiguous in a key.
_VARIABLE = np.zeros(256, dtype=bool)
_VARIABLE[list(b"0123456789")] = True
_VARIABLE[[b for b in (*range(32), 127) if b not in _SEPARATORS]] = True


class Keyer:
    """The keys of events in one mode, a block of events at a time. Template mode: the
    cluster `templates` puts the event's masked matching line in (its id: a template widens
    as lines come, so the id, not the text, keeps the count)."""

    def __init__(self, mode: Mode, templates: Drain | None = None) -> None:
        if (mode == "template") != (templates is not None):
            raise ValueError("template mode, and it alone, clusters into a Drain (templates)")
        self.mode = mode
        self.templates = templates

    def keys(self, found: Sequence[Found]) -> Iterable[bytes]:
        """The events' keys in order; template mode's lazily, so that each event is tallied
        before the next is clustered (an eviction must see which clusters are reported)."""
        if self.templates is not None:
            drain = self.templates
            heads = _masked([f.buf[f.start : f.head_end] for f in found])
            return (b"%d" % drain.add(head).id for head in heads)
        texts = [f.buf[f.start : f.end].replace(b"\r\n", b"\n") for f in found]  # CRLF as LF
        if self.mode == "exact" or not texts:
            return [bounded(t) for t in texts]
        return [bounded(t) for t in _masked(texts)]


def bounded(key: bytes) -> bytes:
    """The key itself, or when longer than KEY_BYTES its first KEY_BYTES and a digest of it
    whole (longer than any key kept whole, so the two kinds never meet)."""
    if len(key) <= KEY_BYTES:
        return key
    return key[:KEY_BYTES] + hashlib.blake2b(key, digest_size=DIGEST_BYTES).digest()


def _masked(texts: Sequence[bytes]) -> Iterator[bytes]:
    """mask_all over groups of about MASK_BYTES, so that its arrays stay bounded."""
    group: list[bytes] = []
    held = 0
    for text in texts:
        group.append(text)
        held += len(text)
        if held >= MASK_BYTES:
            yield from mask_all(group)
            group, held = [], 0
    if group:
        yield from mask_all(group)


def mask_all(texts: Sequence[bytes]) -> list[bytes]:
    """Each text with every token that holds a digit (or a control byte) as one MARKER."""
    joined = b"".join(texts)
    if not joined:
        return list(texts)
    raw = np.frombuffer(joined, dtype=np.uint8)
    sep = _SEPARATOR[raw]
    token = np.cumsum(
        sep, dtype=np.int32
    )  # a token's bytes share the number of the separator before them
    variable_token = np.zeros(int(token[-1]) + 1, dtype=bool)
    variable_token[token[_VARIABLE[raw]]] = True
    masked = variable_token[token] & ~sep
    first = masked.copy()
    first[1:] &= ~masked[:-1]  # the first byte of each masked token stands for all of it
    keep = ~masked | first
    out = raw.copy()
    out[first] = MARKER
    result = out[keep].tobytes()
    ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)))
    kept = np.concatenate(([0], np.cumsum(keep, dtype=np.int32)))[
        np.concatenate(([0], ends))
    ].tolist()
    return [result[kept[i] : kept[i + 1]] for i in range(len(texts))]


def shown(key: bytes) -> str:
    """A key as people read it: each masked token as <*>; a digested key's text then "…"."""
    text = key[:KEY_BYTES].replace(bytes([MARKER]), SHOWN_MARKER).decode("utf-8", "replace")
    return text + "…" if len(key) > KEY_BYTES else text
