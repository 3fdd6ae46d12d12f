"""Poller cursors: ordering numbers, times and text; the saved state; the retry schedule."""

from __future__ import annotations

import pytest

from opsmedic.sources.poller import CursorState, compare_cursors, item_digest, retry_delay


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        ("9", "10", -1),  # numbers as numbers, not as text ("9" > "10")
        ("10", "10.0", 0),
        ("-1.5", "-2", 1),
        ("1e3", "999", 1),
        ("9007199254740993", "9007199254740992", 1),  # past float precision: still exact
        ("2026-12-02T10:00:00Z", "2026-12-02T11:00:00+02:00", 1),  # times as times
        ("2026-12-02T10:00:00Z", "2026-12-02T10:00:00+00:00", 0),
        ("2026-12-02T10:00:00", "2026-12-02T10:00:00Z", 0),  # no offset: UTC
        ("2026-12-02T10:00:00.5Z", "2026-12-02T10:00:00Z", 1),
        ("2026-12-02", "2026-12-01T23:59:59Z", 1),
        ("abc", "abd", -1),  # else text
        ("2026-13-45T00:00:00Z", "2026-12-01T00:00:00Z", 1),  # not a real time: text
        ("10", "2026-12-02T10:00:00Z", -1),  # mixed kinds: text
    ],
)
def test_cursor_values_compare_by_kind(a: str, b: str, order: int) -> None:
    assert compare_cursors(a, b) == order
    assert compare_cursors(b, a) == -order


def test_cursor_state_round_trips() -> None:
    state = CursorState("2026-12-02T10:00:00Z", frozenset({"a1", "b2"}))
    assert CursorState.load(state.dump()) == state


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "null",
        "[]",
        '{"value": 5, "seen": []}',
        '{"value": "5"}',
        '{"value": "5", "seen": "ab"}',
        '{"value": "5", "seen": [1]}',
    ],
)
def test_a_corrupt_cursor_state_is_refused(text: str) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        CursorState.load(text)


def test_items_are_identified_by_their_whole_content() -> None:
    assert item_digest({"a": 1, "b": [1, 2]}) == item_digest({"b": [1, 2], "a": 1})
    assert item_digest({"a": 1}) != item_digest({"a": 2})
    assert item_digest({"a": 1}) != item_digest({"a": "1"})
    assert item_digest({"a": "\ud800"})  # a lone surrogate from JSON must not crash identity


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, 30.0), (1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (10_000, 30.0)],
)
def test_failed_polls_retry_sooner_then_back_off_to_the_interval(
    failures: int, delay: float
) -> None:
    assert retry_delay(30.0, failures) == delay


def test_retry_never_waits_longer_than_a_short_interval() -> None:
    assert retry_delay(0.5, 1) == 0.5
