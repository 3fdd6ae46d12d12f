"""The shape limits of a decoded ingest body: refused exactly when a limit is passed, with a
422 that names the limit and the place; within them the value is what orjson parsed."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi import HTTPException
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmedic.api.body import decode_json, within_by_size
from opsmedic.config.schema import JsonLimits

SMALL = JsonLimits(max_depth=4, max_keys=3, max_string=64, max_nodes=100)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=80),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=80), inner, max_size=5)
    ),
    max_leaves=60,
)


def measure(value: Any, depth: int = 1) -> tuple[int, int, int, int]:
    """(depth, most keys, longest string or key, nodes), recursively: the reference."""
    if isinstance(value, str):
        return 0, 0, len(value), 1
    if not isinstance(value, dict | list):
        return 0, 0, 0, 1
    children = list(value.values()) if isinstance(value, dict) else value
    keys = len(value) if isinstance(value, dict) else 0
    longest = max((len(k) for k in value), default=0) if isinstance(value, dict) else 0
    deepest, nodes = depth, 1
    for child in children:
        d, k, s, n = measure(child, depth + 1)
        deepest, keys, longest, nodes = max(deepest, d), max(keys, k), max(longest, s), nodes + n
    return deepest, keys, longest, nodes


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_refused_exactly_past_a_limit(value: Any) -> None:
    depth, keys, longest, nodes = measure(value)
    over = {
        "max_depth": depth > SMALL.max_depth,
        "max_keys": keys > SMALL.max_keys,
        "max_string": longest > SMALL.max_string,
        "max_nodes": nodes > SMALL.max_nodes,
    }
    body = orjson.dumps(value)
    if not any(over.values()):
        assert decode_json(body, SMALL) == value
        return
    with pytest.raises(HTTPException) as caught:
        decode_json(body, SMALL)
    assert caught.value.status_code == 422
    named = str(caught.value.detail).rsplit("api.limits.", 1)[1].rstrip(")")
    assert over[named], (caught.value.detail, over)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"a": {"b": [[[1]]]}}', "a.b[0][0]: more than 4 levels of nesting (api.limits.max_depth)"),
        (b'{"a": [0, {"k1": 1, "k2": 2, "k3": 3, "k4": 4}]}', "a[1]: more than 3 keys (api.limits.max_keys)"),
        (b'{"a": ["' + b"x" * 65 + b'"]}', "a[0]: more than 64 characters (api.limits.max_string)"),
        (b'{"' + b"k" * 65 + b'": 1}', "body: more than 64 characters in a key (api.limits.max_string)"),
        (b"[" + b",".join([b"0"] * 100) + b"]", "body: more than 100 JSON values (api.limits.max_nodes)"),
        # orjson's own stop (1,024 levels) is answered the same way.
        (b"[" * 2000 + b"]" * 2000, "body: more than 4 levels of nesting (api.limits.max_depth)"),
    ],
)  # fmt: skip
def test_the_answer_names_the_limit_and_the_place(body: bytes, detail: str) -> None:
    with pytest.raises(HTTPException) as caught:
        decode_json(body, SMALL)
    assert (caught.value.status_code, caught.value.detail) == (422, detail)


def test_the_defaults_refuse_the_thousand_level_body_of_the_report() -> None:
    with pytest.raises(HTTPException, match="more than 64 levels"):
        decode_json(
            b'{"source": "app", "payload": ' + b"[" * 1000 + b"]" * 1000 + b"}", JsonLimits()
        )
    assert decode_json(b"[" * 64 + b"]" * 64, JsonLimits()) is not None


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_the_size_shortcut_never_passes_a_body_over_a_limit(value: Any) -> None:
    """`within_by_size` may only skip the walk for a body the walk would accept."""
    depth, keys, longest, nodes = measure(value)
    if within_by_size(orjson.dumps(value), SMALL):
        assert depth <= SMALL.max_depth and keys <= SMALL.max_keys
        assert longest <= SMALL.max_string and nodes <= SMALL.max_nodes


def test_an_alertmanager_group_of_ten_passes_by_its_size_alone() -> None:
    alert = {"status": "firing", "labels": {"alertname": "HighErrorRate", "service": "checkout",
             "instance": "web-1:9100"}, "annotations": {"summary": "5xx ratio 12%"},
             "startsAt": "2026-11-22T02:01:16Z", "fingerprint": "6e890fd1d2e6636f"}  # fmt: skip
    body = orjson.dumps({"receiver": "opsmedic", "status": "firing", "alerts": [alert] * 10,
                         "groupLabels": {}, "commonLabels": {}, "version": "4"})  # fmt: skip
    assert within_by_size(body, JsonLimits())
    assert not within_by_size(body, JsonLimits(max_depth=2))
