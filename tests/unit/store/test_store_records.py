"""Store: events and runs go in and come back out exactly; lookups, listings and counts."""

from __future__ import annotations

import math

import pytest

from opsmedic.errors import StoreError
from opsmedic.model import Run, RunState, Status, StepRecord
from opsmedic.store import Store

if __package__:
    from ...store_fixtures import T0, make_event, make_run
else:
    from store_fixtures import T0, make_event, make_run


def test_events_round_trip_exactly(store: Store) -> None:
    events = [
        make_event(
            kind="usage",
            host="web-1",
            labels={"env": "prod"},
            value=87.5,
            payload={"nested": {"list": [1, 2.5, None, True, "x"]}, "empty": {}},
        ),
        make_event(
            source="alertmanager",
            resource="päth/日本語\nsecond line\ttab 🔥",
            labels={"multi\nline": 'it\'s "quoted"; DROP TABLE events; --', "emoji": "🔥"},
            value="down",
            severity="critical",
            status=Status.RESOLVED,
            time=T0 + 0.000_001,
        ),
        make_event(
            value=None,
            labels={f"label-{i}": "x" * 1000 for i in range(1000)},
            payload={"body": "y" * 1_000_000},
        ),
        make_event(value=0.1 + 0.2, time=1_700_000_000.123_456_7),
    ]
    store.record(events, [])
    for event in events:
        assert store.get_event(event.id) == event


def test_runs_round_trip_exactly_with_their_steps(store: Store) -> None:
    event = make_event()
    run = make_run(
        event,
        actions=["archive_logs", "notify"],
        queue="investigation",
        dry_run=True,
        state=RunState.SKIPPED,
        message="throttled:\nonce within 10m — again ✓",
        steps=[
            StepRecord(
                action="archive_logs",
                params={"dir": "/var/log/app", "include": ["*.gz"]},
                state=RunState.SUCCEEDED,
                message="archived 3 files",
                output="line 1\nline 2\n",
                details={"files": 3, "bytes": 1.5e9},
                attempts=2,
                started_at=T0 + 1,
                duration_ms=12.5,
            ),
            StepRecord(action="notify", params={}, on_failure=True),
        ],
        started_at=T0 + 0.5,
        finished_at=T0 + 2.25,
    )
    store.record([event], [run])
    assert store.get_run(run.id) == run


def test_text_columns_replace_nul_and_lone_surrogates_json_keeps_them(store: Store) -> None:
    # PostgreSQL text cannot hold NUL and UTF-8 cannot hold a lone surrogate (which Python's
    # json.loads happily produces from "\ud800"); one such event must not sink its batch.
    odd = "a\x00b\ud800c"
    # An explicit fingerprint: model.fingerprint_of cannot hash a lone surrogate.
    event = make_event(resource=odd, labels={odd: odd}, payload={"raw": odd}, fingerprint="f" * 16)
    store.record([event], [make_run(event, message=odd)])

    got = store.get_event(event.id)
    assert got.resource == "a\ufffdb\ufffdc"
    assert got.labels == {odd: odd}
    assert got.payload == {"raw": odd}
    # A run's message is the world's text: the surrogate is kept as its escape (valid_utf8).
    assert store.list_runs()[0].message == "a\ufffdb\\ud800c"


def test_non_finite_numbers_are_stored_as_their_json_names(store: Store) -> None:
    event = make_event(value=math.nan, payload={"up": math.inf, "down": [-math.inf, 1.0]})
    store.record([event], [])
    got = store.get_event(event.id)
    assert got.value == "NaN"
    assert got.payload == {"up": "Infinity", "down": ["-Infinity", 1.0]}


def test_record_is_one_transaction(store: Store) -> None:
    good = make_event()
    orphan = make_run(make_event())  # its event is not recorded: the foreign key refuses it
    with pytest.raises(StoreError) as caught:
        store.record([good], [orphan])
    assert "\n" not in str(caught.value)
    assert store.counts() == {"events": 0, "runs": 0}

    with pytest.raises(StoreError):
        store.record([good, good], [])
    assert store.counts() == {"events": 0, "runs": 0}


def test_record_of_nothing_does_nothing(store: Store) -> None:
    store.record([], [])
    assert store.counts() == {"events": 0, "runs": 0}


def test_a_run_may_reference_an_event_of_an_earlier_batch(store: Store) -> None:
    event = make_event()
    store.record([event], [])
    run = make_run(event)
    store.record([], [run])
    assert store.get_run(run.id).event_id == event.id


def _runs_with_ids(store: Store, *ids: str) -> list[Run]:
    event = make_event()
    runs = [make_run(event, id=run_id) for run_id in ids]
    store.record([event], runs)
    return runs


def test_get_run_by_full_id_prefix_or_suffix(store: Store) -> None:
    first, second, third = _runs_with_ids(
        store, "0123456789abcdef0001", "0123456789abcdef0002", "fedcba98765432100003"
    )
    assert store.get_run(first.id) == first
    assert store.get_run("fedc") == third
    assert store.get_run("0002") == second
    assert store.get_run("0123456789abcdef0001") == first


def test_get_run_prefers_an_exact_id_over_longer_ones(store: Store) -> None:
    short, _ = _runs_with_ids(store, "abcd", "abcdef")
    assert store.get_run("abcd") == short


def test_get_run_names_the_candidates_of_an_ambiguous_ref(store: Store) -> None:
    _runs_with_ids(store, "0123456789abcdef0001", "0123456789abcdef0002")
    with pytest.raises(StoreError, match="several runs") as caught:
        store.get_run("0123")
    assert "0123456789abcdef0001" in str(caught.value)
    assert "0123456789abcdef0002" in str(caught.value)


def test_get_run_is_case_sensitive_and_literal(store: Store) -> None:
    _runs_with_ids(store, "0123456789abcdef0001")
    for ref in ("0123456789ABCDEF0001", "0%01", "0_23", "%"):
        with pytest.raises(StoreError, match="no run"):
            store.get_run(ref)


def test_get_run_of_an_unknown_or_too_short_ref_is_a_clear_error(store: Store) -> None:
    _runs_with_ids(store, "0123456789abcdef0001")
    with pytest.raises(StoreError, match="no run id starts or ends with '9999'"):
        store.get_run("9999")
    with pytest.raises(StoreError, match="at least 4 characters"):
        store.get_run("012")


def test_get_event_by_prefix_or_suffix(store: Store) -> None:
    a = make_event(id="aaaa00000000000000b1")
    b = make_event(id="aaaa00000000000000b2")
    store.record([a, b], [])
    assert store.get_event("00b2") == b
    with pytest.raises(StoreError, match="several events"):
        store.get_event("aaaa")
    with pytest.raises(StoreError, match="no event"):
        store.get_event("zzzz")


def test_list_runs_newest_first_with_filters(store: Store) -> None:
    event = make_event()
    runs = [
        make_run(
            event,
            rule=f"rule-{i % 2}",
            created_at=T0 + i,
            state=RunState.PLANNED if i % 3 else RunState.SKIPPED,
        )
        for i in range(10)
    ]
    store.record([event], runs)
    newest_first = runs[::-1]

    assert store.list_runs() == newest_first
    assert store.list_runs(limit=3) == newest_first[:3]
    assert store.list_runs(rule="rule-1") == [r for r in newest_first if r.rule == "rule-1"]
    assert store.list_runs(since=T0 + 7) == newest_first[:3]
    assert store.list_runs(state=RunState.SKIPPED) == [
        r for r in newest_first if r.state is RunState.SKIPPED
    ]
    assert store.list_runs(rule="rule-0", state=RunState.SKIPPED, since=T0 + 1) == [runs[6]]


def test_list_events_newest_first_with_filters(store: Store) -> None:
    events = [make_event(source="disk" if i % 2 else "http", time=T0 + i) for i in range(6)]
    store.record(events, [])
    newest_first = events[::-1]

    assert store.list_events() == newest_first
    assert store.list_events(limit=2) == newest_first[:2]
    assert store.list_events(source="http") == [e for e in newest_first if e.source == "http"]
    assert store.list_events(since=T0 + 4, source="disk") == [events[5]]


def test_list_events_by_kind(store: Store) -> None:
    events = [make_event(kind=kind, time=T0 + i) for i, kind in enumerate("abab")]
    store.record(events, [])
    assert store.list_events(kind="a") == [events[2], events[0]]
    assert store.list_events(kind="a", source="http") == []


def test_recent_runs_are_the_unskipped_runs_since_oldest_first(store: Store) -> None:
    event = make_event()
    store.record(
        [event],
        [
            make_run(event, target="old", created_at=T0 - 1),
            make_run(event, target="b", created_at=T0 + 2, state=RunState.SUCCEEDED),
            make_run(event, target="skipped", created_at=T0 + 1, state=RunState.SKIPPED),
            make_run(event, target="a", created_at=T0),
        ],
    )
    recent = store.recent_runs(T0)
    assert [(rule, target, at) for rule, target, at, _ in recent] == [
        ("archive-app-logs", "a", T0),
        ("archive-app-logs", "b", T0 + 2),
    ]
    assert [e.id for *_, e in recent] == [event.id, event.id]  # for a limit's `per` fields


def test_counts(store: Store) -> None:
    events = [make_event() for _ in range(3)]
    store.record(events, [make_run(events[0]), make_run(events[1])])
    assert store.counts() == {"events": 3, "runs": 2}
