"""The Redis layout of flags without Redis: documents encode and decode unchanged, anything
else is refused with a message that names the key and the problem."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmedic.errors import FlagRefused
from opsmedic.flags.redis_wire import (
    BadEntry,
    Change,
    Entry,
    Layout,
    check_key,
    decode_change,
    decode_entry,
    encode_doc,
    redact,
)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip
DOCS = st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5)
KEYS = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp", "Cf", "Co", "Cn", "Zs")), min_size=1, max_size=40)  # fmt: skip


def stored(version: int, doc_json: str) -> bytes:
    """The hash value the writer's Lua script builds."""
    return f'{{"version":{version},"doc":{doc_json}}}'.encode()


@given(key=KEYS, doc=DOCS, version=st.integers(1, 2**53))
def test_a_stored_document_reads_back_as_written(
    key: str, doc: dict[str, Any], version: int
) -> None:
    entry = decode_entry(check_key(key), stored(version, encode_doc(key, doc)))
    assert entry == Entry(key, version, json.loads(json.dumps(doc)))


@given(key=KEYS, doc=st.none() | DOCS, version=st.integers(1, 2**53))
def test_a_published_change_reads_back_as_written(key: str, doc: Any, version: int) -> None:
    body = "null" if doc is None else encode_doc(key, doc)
    raw = f'{{"key":{json.dumps(key)},"version":{version},"epoch":"e1","doc":{body}}}'
    assert decode_change(raw.encode()) == Change(key, version, "e1", doc)


def test_the_layout_names_every_key_from_its_prefix() -> None:
    layout = Layout("team:flags")
    assert (layout.flags, layout.version, layout.epoch, layout.channel) == (
        "team:flags",
        "team:flags:version",
        "team:flags:epoch",
        "team:flags:changes",
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"", "not JSON"),
        (b"\xff", "not JSON"),
        (b'{"version": 1, "doc": NaN}', "not JSON"),
        (b'"text"', "a JSON str, not an object"),
        (b'{"doc": {}}', "its version None is not a positive integer"),
        (b'{"version": 0, "doc": {}}', "its version 0 is not a positive integer"),
        (b'{"version": 1.5, "doc": {}}', "its version 1.5 is not a positive integer"),
        (b'{"version": false, "doc": {}}', "its version False is not a positive integer"),
        (b'{"version": 1}', "its doc is NoneType, not a JSON object"),
        (b'{"version": 1, "doc": null}', "its doc is NoneType, not a JSON object"),
        (b'{"version": 1, "doc": "on"}', "its doc is str, not a JSON object"),
    ],
)
def test_a_stored_value_that_is_not_an_entry_says_why(raw: bytes, problem: str) -> None:
    with pytest.raises(BadEntry, match=problem):
        decode_entry("k", raw)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"version": 1, "epoch": "e", "doc": null}', "its key is missing"),
        (
            b'{"key": 3, "version": 1, "epoch": "e", "doc": null}',
            "its key is missing or not a string",
        ),
        (b'{"key": "k", "version": 1, "doc": null}', "its epoch is missing"),
        (b'{"key": "k", "version": 1, "epoch": "e"}', "its doc is NoneType"),
        (b'{"key": "k", "version": -2, "epoch": "e", "doc": null}', "its version -2"),
    ],
)
def test_a_message_that_is_not_a_change_says_why(raw: bytes, problem: str) -> None:
    with pytest.raises(BadEntry, match=problem):
        decode_change(raw)


def test_sizes_are_bounded_on_both_sides() -> None:
    assert encode_doc("k", {"x": "é" * 10}, max_bytes=28) == '{"x":"éééééééééé"}'
    with pytest.raises(FlagRefused, match="flag 'k': the document is 29 bytes, above 28"):
        encode_doc("k", {"x": "é" * 10 + "y"}, max_bytes=28)
    with pytest.raises(BadEntry, match=r"\d+ bytes, above the limit of 100"):
        decode_entry("k", stored(1, '{"x":"' + "y" * 2000 + '"}'), max_bytes=100)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("rediss://user:p%40ss@host/2", "rediss://user:***@host/2"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redact(url) == shown
