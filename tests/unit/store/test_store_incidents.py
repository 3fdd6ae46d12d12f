"""Incidents, tokens and cursors in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from opsmedic.engine.incidents import Grouping, IncidentTracker
from opsmedic.errors import NotFoundError
from opsmedic.model import IncidentChanges, IncidentStatus, Status
from opsmedic.store import Store
from opsmedic.store.incident_rows import IncidentRows
from opsmedic.tokens import Scope, digest, mint
from store_fixtures import T0, make_event, make_run


def test_incident_changes_commit_with_their_events_and_merge_counts(store: Store) -> None:
    tracker = IncidentTracker(Grouping({}))
    a1, a2 = make_event(kind="full"), make_event(kind="full")
    changes = IncidentChanges()
    tracker.observe(a1, changes)
    run = make_run(a1)
    tracker.planned(a1, [run], changes)
    store.record([a1], [run], incidents=IncidentRows.of(changes))
    changes = IncidentChanges()
    tracker.observe(a2, changes)  # a repeat: the alert's count grows in the store
    store.record([a2], [], incidents=IncidentRows.of(changes))
    incident, alerts, timeline = store.get_incident(a1.incident_id)
    assert (incident.status, incident.events, incident.title) == (
        IncidentStatus.OPEN,
        2,
        "full on /var/log/app",
    )
    assert [(a.fingerprint, a.events, a.status) for a in alerts] == [(a1.fingerprint, 2, "firing")]
    assert [t.kind for t in timeline] == ["status_changed", "event_received", "rule_matched"]
    assert store.get_event(a1.id).incident_id == incident.id
    assert store.get_run(run.id).incident_id == incident.id
    (active,) = store.active_incidents()
    assert active.alerts == {a1.fingerprint: "firing"}
    changes = IncidentChanges()
    tracker.observe(make_event(kind="full", status=Status.RESOLVED), changes)
    store.record([], [], incidents=IncidentRows.of(changes))
    assert store.active_incidents() == []
    (listed,) = store.list_incidents(status=IncidentStatus.RESOLVED)
    assert listed.id == incident.id and store.list_incidents(status=IncidentStatus.OPEN) == []
    assert store.get_incident(incident.id[-6:])[0].id == incident.id
    with pytest.raises(NotFoundError):
        store.get_incident("ffffffffffff")


def test_tokens_are_kept_as_hashes_and_revocation_frees_the_name(store: Store) -> None:
    record, secret = mint("alertmanager", [Scope.INGEST], 1.0)
    store.add_token(record, digest(secret))
    found = store.find_token(digest(secret))
    assert found is not None and found.scopes == ("ingest",)
    assert store.find_token(digest(secret + "x")) is None
    with pytest.raises(ValueError, match="exists already"):
        store.add_token(mint("alertmanager", [Scope.READ], 2.0)[0], digest("other"))
    store.revoke_token("alertmanager", 3.0)
    assert store.find_token(digest(secret)) is None
    with pytest.raises(ValueError, match="no active token"):
        store.revoke_token("alertmanager", 4.0)
    store.add_token(mint("alertmanager", [Scope.READ], 5.0)[0], digest("again"))
    assert [t.revoked_at for t in store.list_tokens()] == [3.0, None]


def test_cursors_round_trip(store: Store) -> None:
    assert store.load_cursor("feed") is None
    store.save_cursor("feed", '{"v": 1}', 1.0)
    store.save_cursor("feed", '{"v": 2}', 2.0)
    assert store.load_cursor("feed") == '{"v": 2}'


def test_prune_deletes_resolved_incidents_with_their_alerts_and_timeline(store: Store) -> None:
    tracker = IncidentTracker(Grouping({}))
    for kind, resolve in (("old", True), ("open", False)):
        changes = IncidentChanges()
        tracker.observe(make_event(kind=kind), changes)
        if resolve:
            tracker.observe(make_event(kind=kind, status=Status.RESOLVED), changes)
        store.record([], [], incidents=IncidentRows.of(changes))
    assert store.prune(T0 - 1).incidents == 0  # resolved at T0: not older than the cutoff
    assert store.prune(T0 + 1).incidents == 1
    (left,) = store.list_incidents()
    assert left.status is IncidentStatus.OPEN  # open incidents stay, however old
    assert store.prune(T0 + 10**9).incidents == 0
    _, alerts, timeline = store.get_incident(left.id)
    assert alerts and timeline


def test_flaps_are_stored_and_a_recently_resolved_incident_is_loaded_to_reopen(
    store: Store,
) -> None:
    tracker = IncidentTracker(Grouping({}))
    events = []
    for i in range(8):  # four firings, three reopenings: flapping (3 within the hour)
        status = Status.FIRING if i % 2 == 0 else Status.RESOLVED
        events.append(make_event(kind="full", status=status, time=T0 + i))
    for event in events:
        changes = IncidentChanges()
        tracker.observe(event, changes)
        store.record([event], [], incidents=IncidentRows.of(changes))
    incident, _, timeline = store.get_incident(events[0].incident_id)
    assert (incident.flaps, incident.flapping, incident.status) == (
        3,
        True,
        IncidentStatus.RESOLVED,
    )
    assert timeline[-1].message.startswith("flapping: 3 reopenings")
    assert store.active_incidents() == []
    (recent,) = store.active_incidents(resolved_since=T0)
    assert recent.id == incident.id and recent.alerts == {events[0].fingerprint: "resolved"}
    assert store.active_incidents(resolved_since=T0 + 8) == []
