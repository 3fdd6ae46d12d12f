"""An incident's whole story written into a store the way the engine and people write it
(the tracker's changes, runs claimed and finished, an acknowledgement, a deployment and a
flag change in its window), for the reports' tests."""

from __future__ import annotations

from dataclasses import dataclass

from opsmedic.engine.incidents import Grouping, IncidentTracker
from opsmedic.flags.changes import Author
from opsmedic.flags.model import Flag
from opsmedic.lifecycle import Action
from opsmedic.model import (
    Deployment,
    DeploymentState,
    Event,
    IncidentChanges,
    Run,
    RunState,
    Status,
    StepRecord,
)
from opsmedic.store import Store
from opsmedic.store.incident_rows import IncidentRows
from store_fixtures import T0


@dataclass
class Scene:
    incident_id: str
    fired: Event
    fix: Run
    failed: Run
    deployment: Deployment


def alert(status: Status = Status.FIRING, at: float = T0, **labels: str) -> Event:
    return Event(source="alertmanager", kind="HighErrorRate", host="web-1", resource="checkout",
                 status=status, time=at, labels={"alertname": "HighErrorRate",
                                                 "service": "checkout", **labels})  # fmt: skip


def _run(store: Store, tracker: IncidentTracker, event: Event, rule: str, state: RunState,
         start: float, end: float) -> Run:  # fmt: skip
    """A run of `rule` for `event`, planned, claimed at `start`, finished at `end`."""
    run = Run(rule=rule, event_id=event.id, target=event.host, fingerprint=event.fingerprint,
              actions=["restart_service", "notify"], created_at=start,
              incident_id=event.incident_id)  # fmt: skip
    changes = IncidentChanges()
    tracker.planned(event, [run], changes)
    store.record([], [run], claim=[run.id], started_at=start, incidents=IncidentRows.of(changes))
    run.state, run.started_at, run.finished_at = RunState.RUNNING, start, end
    store.record([], [], incidents=IncidentRows.of(tracker.started(run)))
    run.state, run.message = state, f"{rule} {state}"
    run.steps = [StepRecord("restart_service", {}, state=state, duration_ms=(end - start) * 1000)]
    store.record([], [], finished=[run], incidents=IncidentRows.of(tracker.finished(run, end)))
    return run


def incident_scene(store: Store, *, resolve: bool = True, **labels: str) -> Scene:
    """Fired at T0; a failing run, then a fix that mitigates; acknowledged by alice; a
    deployment and a flag change in the window; resolved at T0 + 300 (unless `resolve`)."""
    tracker = IncidentTracker(Grouping({}))
    deployment = Deployment("checkout", "production", "v2", previous_version="v1",
                            requested_by="bob", owner="host:1", created_at=T0 - 30,
                            updated_at=T0 - 30, checks={"gates": {"forced": False,
                                                                  "results": []}})  # fmt: skip
    store.start_deployment(deployment)
    deployment.state, deployment.finished_at = DeploymentState.ROLLED_BACK, T0 + 20
    deployment.reason, deployment.rolled_back_to = "verification failed: 5xx 12%", "v1"
    assert store.update_deployment(deployment, [DeploymentState.STARTED])
    fired = alert(**labels)
    changes = IncidentChanges()
    tracker.observe(fired, changes)
    store.record([fired], [], incidents=IncidentRows.of(changes))
    failed = _run(store, tracker, fired, "restart-app", RunState.FAILED, T0 + 2, T0 + 9.5)
    fix = _run(store, tracker, fired, "rollback-app", RunState.SUCCEEDED, T0 + 10, T0 + 42.25)
    acked, _ = store.incident_action(fired.incident_id, Action.ACK, "alice", T0 + 60)
    tracker.adopt(acked)  # as the engine catches up with people's actions
    store.flags.set(Flag.model_validate({"key": "new_checkout", "enabled": False}),
                    Author("cli", "carol"), T0 + 70)  # fmt: skip
    if resolve:
        changes, resolved = IncidentChanges(), alert(Status.RESOLVED, T0 + 300, **labels)
        tracker.observe(resolved, changes)
        store.record([resolved], [], incidents=IncidentRows.of(changes))
    return Scene(fired.incident_id, fired, fix, failed, deployment)


def probe_incident(store: Store, probe: str = "info", *, resolve: bool = True) -> str:
    """An http probe's own incident (its readings: source http, kind the probe's name), slow
    from T0, answering in time again at T0 + 300 (unless `resolve`); never acknowledged; its
    id."""
    tracker = IncidentTracker(Grouping({}))
    readings = [(Status.FIRING, T0), (Status.RESOLVED, T0 + 300)][: 2 if resolve else 1]
    for status, at in readings:
        reading = Event(source="http", kind=probe, resource=f"http://127.0.0.1:8000/{probe}",
                        host="web-1", status=status, time=at, value=900.0)  # fmt: skip
        changes = IncidentChanges()
        tracker.observe(reading, changes)
        store.record([reading], [], incidents=IncidentRows.of(changes))
    assert reading.incident_id is not None
    return reading.incident_id
