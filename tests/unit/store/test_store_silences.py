"""Silences in the store, on SQLite and PostgreSQL: added, listed, expired, and versioned."""

from __future__ import annotations

import pytest

from opsmedic.config.matchers import Silence, new_silence
from opsmedic.errors import UnknownSilence
from opsmedic.store.store import Store

T0 = 1_800_000_000.0


def made(*matchers: str, now: float = T0, **kw: float) -> Silence:
    return new_silence(list(matchers), now=now, starts_at=kw.get("starts_at"), ends_at=None,
                       duration=kw.get("duration", 3600.0), created_by="cli ann",
                       comment="disk swap")  # fmt: skip


def test_added_listed_and_expired(store: Store) -> None:
    a, b = made("host=web-1", "labels.env=~prod|dr"), made("kind=DiskFull", duration=60.0)
    store.silences.add(a)
    store.silences.add(b)
    assert store.silences.list() == [b, a]  # soonest end first, read back whole
    assert store.silences.list(ending_after=T0 + 60) == [a]
    ended = store.silences.expire(a.id[-6:], T0 + 10)  # a unique end of the id will do
    assert (ended.id, ended.starts_at, ended.ends_at) == (a.id, T0, T0 + 10)
    assert ended.state(T0 + 10) == "expired"
    assert store.silences.expire(a.id, T0 + 20) == ended  # already over: as it was
    assert store.silences.list(ending_after=T0 + 10) == [b]


def test_a_pending_silence_expired_never_starts(store: Store) -> None:
    pending = made("host=web-1", starts_at=T0 + 600)
    store.silences.add(pending)
    ended = store.silences.expire(pending.id, T0)
    assert ended.starts_at == ended.ends_at == T0 and not ended.active(T0)


@pytest.mark.parametrize("ref", ["nosuch", "01", ""])
def test_an_unknown_id_is_refused_and_nothing_changes(store: Store, ref: str) -> None:
    store.silences.add(made("host=web-1"))
    before = store.silences.version()
    with pytest.raises(UnknownSilence, match="silence"):
        store.silences.expire(ref, T0)
    assert store.silences.version() == before
    assert UnknownSilence.exit_code == 2


def test_the_version_moves_with_every_change_even_from_a_clock_behind(store: Store) -> None:
    a = made("host=web-1")
    store.silences.add(a)
    first = store.silences.version()
    store.silences.add(made("host=web-2", now=T0 + 100))  # a worker whose clock is ahead
    second = store.silences.version()
    store.silences.expire(a.id, T0 + 50)  # one behind it: the newest change stays T0 + 100
    assert len({first, second, store.silences.version()}) == 3


def test_prune_deletes_the_silences_that_ended_before_the_cutoff(store: Store) -> None:
    ended, ends_later = made("host=web-1", duration=60.0), made("host=web-2", duration=7200.0)
    expired = made("host=web-3", duration=86400.0)
    for silence in (ended, ends_later, expired):
        store.silences.add(silence)
    store.silences.expire(expired.id, T0 + 30)
    before = store.silences.version()
    assert store.prune(T0 + 60).silences == 1  # expired at T0 + 30; ended at T0 + 60 stays
    assert [s.id for s in store.silences.list()] == [ended.id, ends_later.id]
    assert store.silences.version() != before  # the engine re-reads what is left
    assert store.prune(T0 + 7200).silences == 1
    assert [s.id for s in store.silences.list()] == [ends_later.id]
