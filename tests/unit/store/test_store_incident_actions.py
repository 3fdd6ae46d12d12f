"""People's actions on incidents in the store, on SQLite and PostgreSQL: one transaction each,
the engine's stale copy refused whole (IncidentMoved), two stores acting at once, and what the
engine reads back (closed incidents are not active)."""

from __future__ import annotations

import copy
import threading

import pytest

from opsmedic.engine.incidents import Grouping, IncidentTracker
from opsmedic.errors import IncidentMoved, IncidentRefused, UnknownIncident
from opsmedic.lifecycle import Action
from opsmedic.model import Incident, IncidentChanges, IncidentStatus, Status, TimelineEntry
from opsmedic.store import Store
from opsmedic.store.incident_rows import IncidentRows
from store_fixtures import T0, make_event

S = IncidentStatus


def opened(store: Store) -> tuple[IncidentTracker, Incident]:
    """One open incident, committed as the engine commits it."""
    tracker = IncidentTracker(Grouping({}))
    event = make_event(kind="full")
    changes = IncidentChanges()
    tracker.observe(event, changes)
    store.record([event], [], incidents=IncidentRows.of(changes))
    (incident,) = changes.incidents.values()
    return tracker, incident


def test_the_engines_stale_copy_is_refused_whole(store: Store) -> None:
    _, incident = opened(store)
    acked, line = store.incident_action(incident.id[:8], Action.ACK, "alice", T0 + 60)
    assert (acked.status, acked.human_actions, line.kind) == (S.ACKNOWLEDGED, 1, "acknowledged")
    stale = copy.deepcopy(incident)  # the engine's copy, planned before the ack
    stale.status, stale.mitigated_at, stale.events = S.MITIGATED, T0 + 70, 5
    changes = IncidentChanges({stale.id: stale})
    changes.timeline.append(TimelineEntry(stale.id, T0 + 70, "status_changed", "mitigated: x"))
    event = make_event(kind="full")
    with pytest.raises(IncidentMoved, match=incident.id) as refused:
        store.record([event], [], incidents=IncidentRows.of(changes))
    assert refused.value.ids == [incident.id]
    found, _, timeline = store.get_incident(incident.id)
    assert (found.status, found.acknowledged_by, found.mitigated_at, found.events) == (
        S.ACKNOWLEDGED, "alice", None, 1)  # fmt: skip
    assert [t.kind for t in timeline] == ["status_changed", "event_received", "acknowledged"]
    assert store.stored_event_ids([event.id]) == set()  # nothing of it: the engine plans again
    # Once the engine has adopted the action, its writes set the state again.
    (seen,) = store.incidents_acted_on(T0)
    assert seen.human_actions == 1 and seen.alerts == incident.alerts
    seen.status, seen.mitigated_at = S.MITIGATED, T0 + 80
    store.record([], [], incidents=IncidentRows.of(IncidentChanges({seen.id: seen})))
    found, _, timeline = store.get_incident(incident.id)
    assert (found.status, found.acknowledged_at, found.mitigated_at) == (S.MITIGATED, T0 + 60,
                                                                         T0 + 80)  # fmt: skip
    assert [t.message for t in timeline if t.kind == "acknowledged"] == ["acknowledged by alice"]
    assert store.incidents_acted_on(T0 + 61) == []


def test_refusals_write_nothing(store: Store) -> None:
    _, incident = opened(store)
    with pytest.raises(UnknownIncident, match="no incident"):
        store.incident_action("ffffffffffff", Action.ACK, "alice", T0)
    assert UnknownIncident.exit_code == IncidentRefused.exit_code == 2
    with pytest.raises(IncidentRefused, match="the incident is open: cannot reopen it"):
        store.incident_action(incident.id, Action.REOPEN, "alice", T0)
    found, _, timeline = store.get_incident(incident.id)
    assert found.human_actions == 0 and len(timeline) == 2


def test_closed_incidents_are_not_active_and_a_reopen_takes_its_key_back(store: Store) -> None:
    _, incident = opened(store)
    store.incident_action(incident.id, Action.RESOLVE, "alice", T0 + 10)
    assert store.active_incidents() == []
    assert [i.id for i in store.active_incidents(resolved_since=T0)] == [incident.id]
    # Its alert fires again and opens another incident of the same key (in a fresh tracker,
    # as after a restart past the reopen window): this one cannot be reopened meanwhile.
    event, changes = make_event(kind="full", time=T0 + 20), IncidentChanges()
    IncidentTracker(Grouping({})).observe(event, changes)
    store.record([event], [], incidents=IncidentRows.of(changes))
    with pytest.raises(IncidentRefused, match=f"incident {event.incident_id} is open"):
        store.incident_action(incident.id, Action.REOPEN, "alice", T0 + 30)
    store.incident_action(event.incident_id, Action.CLOSE, "bob", T0 + 40)
    store.incident_action(incident.id, Action.REOPEN, "alice", T0 + 50)
    assert [i.id for i in store.active_incidents(resolved_since=T0)] == [incident.id]
    store.incident_action(incident.id, Action.CLOSE, "alice", T0 + 60)
    assert store.active_incidents(resolved_since=T0) == []  # closed: never reopened
    assert store.prune(T0 + 61).incidents == 2


def test_two_stores_acknowledging_at_once_make_one_line(store: Store, store_url: str) -> None:
    _, incident = opened(store)
    others = [Store(store_url) for _ in range(4)]
    start = threading.Barrier(len(others))
    results: list[str] = []

    def ack(other: Store, who: str) -> None:
        start.wait()
        try:
            other.incident_action(incident.id, Action.ACK, who, T0 + 60)
            results.append("acked")
        except IncidentRefused as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=ack, args=(o, f"p{i}")) for i, o in enumerate(others)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in others:
        other.close()
    assert sorted(results)[0] == "acked" and results.count("acked") == 1, results
    assert all("is acknowledged: already acknowledged by p" in r for r in results if r != "acked")
    found, _, timeline = store.get_incident(incident.id)
    assert [t.kind for t in timeline].count("acknowledged") == 1
    assert found.human_actions == 1 and found.status is S.ACKNOWLEDGED


def test_a_resolution_event_after_a_close_changes_nothing(store: Store) -> None:
    tracker, incident = opened(store)
    store.incident_action(incident.id, Action.CLOSE, "alice", T0 + 10)
    (stored,) = store.incidents_acted_on(T0)
    tracker.adopt(stored)
    changes = IncidentChanges()
    tracker.observe(make_event(kind="full", status=Status.RESOLVED, time=T0 + 20), changes)
    assert not changes
    assert store.get_incident(incident.id)[0].status is S.CLOSED
