"""Dashboard sessions: random ids, expiry, sign-out, and a bounded table."""

from __future__ import annotations

import pytest

from opsmedic.ui import sessions
from opsmedic.ui.sessions import SESSION_SECONDS, Sessions


def test_a_session_ends_when_it_expires_or_is_closed() -> None:
    table = Sessions()
    one = table.open("hash", "alice", ("read",), now=100.0)
    other = table.open("hash", "alice", ("read",), now=100.0)
    assert one.id != other.id and one.csrf != other.csrf and len(one.id) >= 43
    assert table.get(one.id, 100.0 + SESSION_SECONDS - 1) == one
    assert table.get(one.id, 100.0 + SESSION_SECONDS) is None
    table.close(other.id)
    assert table.get(other.id, 101.0) is None
    assert table.get("", 101.0) is None


def test_a_full_table_drops_expired_sessions_then_the_oldest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sessions, "MAX_SESSIONS", 3)
    table = Sessions()
    old = table.open("h", "a", ("read",), now=0.0)
    mid = table.open("h", "a", ("read",), now=SESSION_SECONDS / 2)
    late = table.open("h", "a", ("read",), now=SESSION_SECONDS / 2 + 1)
    now = SESSION_SECONDS + 1  # `old` has expired: it makes the room
    table.open("h", "a", ("read",), now=now)
    assert table.get(old.id, now) is None and table.get(mid.id, now) == mid
    table.open("h", "a", ("read",), now=now)  # none expired: the oldest, `mid`, goes
    assert table.get(mid.id, now) is None and table.get(late.id, now) == late
