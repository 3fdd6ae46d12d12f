"""The incident tracker with people's actions: what the engine does not undo, and how it
catches up with actions taken in the store (IncidentTracker.adopt)."""

from __future__ import annotations

import copy

from test_incidents import am, finished_run, observe

from opsmedic.engine.incidents import Grouping, IncidentTracker
from opsmedic.lifecycle import Action, act
from opsmedic.model import Incident, IncidentStatus, RunState, Status

S = IncidentStatus


def acted(tracker: IncidentTracker, incident_id: str, action: Action, at: float) -> Incident:
    """What the store holds after a person's action: a copy of the engine's incident, changed
    and adopted by the tracker, as Engine._catch_up does."""
    stored = copy.deepcopy(tracker._by_id.get(incident_id) or next(
        i for i in tracker._resolved.values() if i.id == incident_id))  # fmt: skip
    act(stored, action, "alice", at)
    tracker.adopt(stored)
    return stored


def test_an_acknowledged_incident_stays_acknowledged_as_alerts_fire_and_mitigates() -> None:
    tracker = IncidentTracker(Grouping({}))
    a = am("a")
    observe(tracker, a)
    acted(tracker, a.incident_id, Action.ACK, 150.0)
    changes = observe(tracker, am("a"), am("b"))  # a repeat, and a new alert of the group
    (incident,) = changes.incidents.values()
    assert incident.status is S.ACKNOWLEDGED and incident.human_actions == 1
    assert not [t for t in changes.timeline if t.kind == "status_changed"]
    changes = tracker.finished(finished_run(a, RunState.SUCCEEDED), 200.0)
    assert changes.incidents[a.incident_id].status is S.MITIGATED
    changes = observe(tracker, am("c"))  # fires after the mitigation: back to who has it
    assert changes.incidents[a.incident_id].status is S.ACKNOWLEDGED
    assert changes.timeline[-1].message == (
        "reopened: an alert fired after the mitigation (still acknowledged)")  # fmt: skip


def test_a_stale_adoption_changes_nothing() -> None:
    tracker = IncidentTracker(Grouping({}))
    a = am("a")
    observe(tracker, a)
    stored = acted(tracker, a.incident_id, Action.ACK, 150.0)
    older = copy.deepcopy(stored)
    older.status, older.human_actions = S.OPEN, 0
    tracker.adopt(older)
    assert tracker._by_id[a.incident_id].status is S.ACKNOWLEDGED


def test_resolved_by_hand_while_firing_the_next_firing_reopens_it() -> None:
    tracker = IncidentTracker(Grouping({}))
    a = am("a")
    observe(tracker, a)
    acted(tracker, a.incident_id, Action.RESOLVE, 150.0)
    assert len(tracker) == 0
    again = am("a")
    again.time = 160.0
    changes = observe(tracker, again)
    assert again.incident_id == a.incident_id
    incident = changes.incidents[a.incident_id]
    assert (incident.status, incident.flaps, incident.resolved_at) == (S.OPEN, 1, None)
    assert any(t.message.startswith("reopened: alertmanager") for t in changes.timeline)


def test_a_closed_incident_is_never_reopened_its_alerts_open_a_new_one() -> None:
    tracker = IncidentTracker(Grouping({}))
    a = am("a")
    observe(tracker, a, am("a", Status.RESOLVED))
    acted(tracker, a.incident_id, Action.CLOSE, 150.0)
    again = am("a")
    again.time = 160.0  # well within the reopen window
    changes = observe(tracker, again)
    assert again.incident_id != a.incident_id
    assert changes.incidents[again.incident_id].status is S.OPEN
    assert a.incident_id not in changes.incidents


def test_reopened_by_hand_the_engine_follows_it_again() -> None:
    tracker = IncidentTracker(Grouping({}))
    a = am("a")
    observe(tracker, a, am("a", Status.RESOLVED))
    stored = copy.deepcopy(next(iter(tracker._resolved.values())))
    act(stored, Action.REOPEN, "alice", 150.0)
    fresh = IncidentTracker(Grouping({}))  # one that never knew it: from the store alone
    for each in (tracker, fresh):
        each.adopt(copy.deepcopy(stored))
        again = am("a")
        changes = observe(each, again)
        assert again.incident_id == a.incident_id
        assert changes.incidents[a.incident_id].status is S.OPEN
