"""Masked keys: the token rule, and the memory of repeats that must give what masking gives."""

from __future__ import annotations

import re
from dataclasses import asdict
from unittest import mock

from hunt_helpers import LOGS, PiecesSource
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmedic.loghunt import HuntOptions, HuntReport, hunt, keys
from opsmedic.loghunt.keys import REPEAT_BYTES, REPEAT_KEYS, Keyer, mask

SEPARATORS = b" \t\n\r=,;()[]\"'<>{}"
# Bytes that make a text interesting to mask: separators, digits, control bytes (the
# marker itself among them), letters, and bytes that are not UTF-8.
TEXTS = st.lists(
    st.sampled_from(list(SEPARATORS + b"0123456789\x00\x1a\x7fabcXYZ-:./_\xff\xe2")), max_size=80
).map(bytes)
STAMP = st.builds(
    lambda n, sep: b"2024-05-01T10:00:%02d.%03dZ%s" % (n % 60, n % 1000, sep),
    st.integers(0, 10**6),
    st.sampled_from([b" ", b"  ", b" 4242 ", b"\t[7] ", b" pid=42 "]),
)


def reference(text: bytes) -> bytes:
    """The rule as written in the docs: each token (bytes between separators) holding a digit
    or a control byte is one marker."""
    parts = re.split(b"([" + re.escape(SEPARATORS) + b"])", text)
    variable = re.compile(rb"[0-9\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
    return b"".join(b"\x1a" if variable.search(p) and p not in SEPARATORS else p for p in parts)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS)
def test_mask_is_the_token_rule(text: bytes) -> None:
    assert mask(text) == reference(text)


@settings(max_examples=150, deadline=None)
@given(events=st.lists(st.tuples(STAMP, st.sampled_from(["a", "b", "c"]), TEXTS), max_size=40))
def test_remembered_repeats_give_what_masking_gives(
    events: list[tuple[bytes, str, bytes]],
) -> None:
    """Texts after varied timestamps (and pids), many of them repeats (from a pool of three):
    the key from memory is the key masking gives, and a repeat after leading variables only
    is taken from memory."""
    pool: dict[str, bytes] = {}
    keyer = Keyer("masked")
    for stamp, which, body in events:
        text = stamp + pool.setdefault(which, body) + b"\n"
        assert keyer.masked(text) == mask(text)
    keyer = Keyer("masked")
    for stamp, which, _ in events:
        if b"pid" not in stamp:
            keyer.masked(stamp + b"ERROR " + pool[which] + b"\n")
    texts = [pool[which] for stamp, which, _ in events if b"pid" not in stamp]
    assert keyer.hits == len(texts) - len(set(texts))


def test_the_memory_of_repeats_is_bounded() -> None:
    keyer = Keyer("masked")
    for n in range(REPEAT_KEYS * 2 + 10):
        keyer.masked(b"10:00 ERROR job %s failed\n" % bytes([97 + n % 26]) * (1 + n // 26))
        assert len(keyer.repeats) <= REPEAT_KEYS
    long = b"1 ERROR " + b"x" * REPEAT_BYTES + b"\n"
    keyer.repeats.clear()
    assert keyer.masked(long) == mask(long) and keyer.repeats == {}


def _report(data: bytes, mode: str, context: int) -> HuntReport:
    options = HuntOptions(mode=mode, context=context, chunk_bytes=64)  # type: ignore[arg-type]
    return hunt([PiecesSource(data, 37)], options)


@settings(max_examples=80, deadline=None)
@given(
    data=LOGS,
    repeat=st.integers(1, 6),
    probe=st.integers(1, 300),
    mode=st.sampled_from(["masked", "template"]),
    context=st.integers(0, 3),
)
def test_a_hunt_is_the_same_with_and_without_the_memory_of_repeats(
    data: bytes, repeat: int, probe: int, mode: str, context: int
) -> None:
    """Events, counts, first and last seen, lines and order: the fast path for repeats (on,
    with any probe size, so also switched off for the rest of a batch) changes nothing."""
    data = (data + b"\n") * repeat
    with mock.patch.object(keys, "PROBE_EVENTS", probe):
        fast = _report(data, mode, context)
    with mock.patch.object(Keyer, "masked", lambda _self, text: mask(text)):
        slow = _report(data, mode, context)
    stats_fast, stats_slow = asdict(fast.stats), asdict(slow.stats)
    for s in (stats_fast, stats_slow):
        s.pop("seconds")
    assert fast.events == slow.events
    assert stats_fast == stats_slow
