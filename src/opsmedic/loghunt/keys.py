"""What makes two events duplicates: their text, exact or with its variables masked.

Masked: every token (bytes between separators) holding a digit is a variable — a timestamp,
a number, a duration, an IP and port, a hex id, a UUID, a path with an id in it — and becomes
one marker. Python's re does this at 8 to 30 MB/s here (its cost is per position and per match);
the same rule as a few numpy passes over a whole block's events runs at hundreds of MB/s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from opsmedic.loghunt.model import Mode

if TYPE_CHECKING:
    from opsmedic.loghunt.drain import Drain
    from opsmedic.loghunt.scanner import Found

MARKER = 0x1A  # one byte per masked token; a control byte, so no unmasked token holds it
SHOWN_MARKER = b"<*>"
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
            heads = mask_all([f.buf[f.start : f.head_end] for f in found])
            return (b"%d" % drain.add(head).id for head in heads)
        texts = [f.buf[f.start : f.end].replace(b"\r\n", b"\n") for f in found]  # CRLF as LF
        if self.mode == "exact" or not texts:
            return texts
        return mask_all(texts)


def mask_all(texts: Sequence[bytes]) -> list[bytes]:
    """Each text with every token that holds a digit (or a control byte) as one MARKER."""
    joined = b"".join(texts)
    if not joined:
        return list(texts)
    raw = np.frombuffer(joined, dtype=np.uint8)
    sep = _SEPARATOR[raw]
    token = np.cumsum(sep)  # a token's bytes share the number of the separator before them
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
    kept = np.concatenate(([0], np.cumsum(keep)))[np.concatenate(([0], ends))].tolist()
    return [result[kept[i] : kept[i + 1]] for i in range(len(texts))]


def shown(key: bytes) -> str:
    """A key as people read it: each masked token as <*>."""
    return key.replace(bytes([MARKER]), SHOWN_MARKER).decode("utf-8", "replace")
