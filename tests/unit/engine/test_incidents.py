"""The incident tracker: grouping keys, opening, mitigation, reopening and resolution."""

from __future__ import annotations

from opsmedic.engine.incidents import Grouping, IncidentTracker, Reopening
from opsmedic.model import Event, IncidentChanges, IncidentStatus, Run, RunState, Status, StepRecord


def am(instance: str, status: Status = Status.FIRING, **labels: str) -> Event:
    return Event(source="alertmanager", kind="HighErrorRate", status=status, time=100.0,
                 labels={"alertname": "HighErrorRate", "service": "checkout",
                         "instance": instance, **labels})  # fmt: skip


def observe(tracker: IncidentTracker, *events: Event) -> IncidentChanges:
    changes = IncidentChanges()
    for event in events:
        tracker.observe(event, changes)
    return changes


def finished_run(event: Event, state: RunState, *, dry_run: bool = False) -> Run:
    run = Run(rule="fix", event_id=event.id, target=event.target, fingerprint=event.fingerprint,
              actions=["run_command", "notify"], state=state, dry_run=dry_run,
              incident_id=event.incident_id, finished_at=200.0)  # fmt: skip
    run.steps = [StepRecord("run_command", {}, state=state),
                 StepRecord("notify", {}, state=RunState.SUCCEEDED, message="sent")]  # fmt: skip
    return run


def test_default_key_is_alert_name_and_service() -> None:
    grouping = Grouping({})
    assert grouping.key(am("a")) == grouping.key(am("b")) == "HighErrorRate/checkout"
    assert grouping.key(Event(source="disk", resource="/var")) == "disk//var"
    assert (
        grouping.key(Event(source="dns", kind="primary", resource="10.0.0.1")) == "primary/10.0.0.1"
    )


def test_group_by_per_source_like_alertmanager() -> None:
    grouping = Grouping({"alertmanager": ["labels.alertname", "labels.instance"],
                         "default": ["source"]})  # fmt: skip
    assert grouping.key(am("a")) != grouping.key(am("b"))
    assert grouping.key(am("a")) == "alertmanager:labels.alertname=HighErrorRate,labels.instance=a"
    assert grouping.key(Event(source="disk", resource="/x")) == "disk:source=disk"
    every = Grouping({"alertmanager": ["..."]})
    assert every.key(am("a")) == f"alertmanager:{am('a').fingerprint}"


def test_alerts_of_a_group_share_one_incident_that_resolves_when_all_resolve() -> None:
    tracker = IncidentTracker(Grouping({}))
    a, b = am("a"), am("b")
    changes = observe(tracker, a, b, am("a"))  # the repeat of `a` adds a count, not a line
    assert a.incident_id and a.incident_id == b.incident_id
    (incident,) = changes.incidents.values()
    assert incident.events == 3 and incident.status is IncidentStatus.OPEN
    assert changes.alerts[(incident.id, a.fingerprint)].events == 2
    # The alerts that fired in one batch share a line, as in one Alertmanager notification.
    assert [t.kind for t in changes.timeline] == ["status_changed", "event_received"]
    assert changes.lines()[1].message == (
        "2 alerts firing: alertmanager HighErrorRate checkout; alertmanager HighErrorRate checkout"
    )
    changes = observe(tracker, am("a", Status.RESOLVED))
    assert incident.status is IncidentStatus.OPEN  # b still fires
    changes = observe(tracker, am("b", Status.RESOLVED))
    assert incident.status is IncidentStatus.RESOLVED and incident.resolved_at == 100.0
    assert changes.timeline[-1].message.startswith("resolved")
    assert len(tracker) == 0
    again = am("a")
    again.time = 100.0 + 1800.5  # past the 30-minute reopen window (in event time)
    observe(tracker, again)
    assert again.incident_id != a.incident_id  # a new firing long after: a new incident


def test_a_successful_run_mitigates_and_a_new_firing_reopens() -> None:
    tracker = IncidentTracker(Grouping({}))
    a = am("a")
    observe(tracker, a)
    changes = tracker.finished(finished_run(a, RunState.FAILED), 200.0)
    assert [t.kind for t in changes.timeline] == ["notification_sent", "run_finished"]
    assert not changes.incidents  # a failed run mitigates nothing
    changes = tracker.finished(finished_run(a, RunState.SUCCEEDED, dry_run=True), 200.0)
    assert not changes.incidents  # nor does a dry run
    changes = tracker.finished(finished_run(a, RunState.SUCCEEDED), 200.0)
    (incident,) = changes.incidents.values()
    assert incident.status is IncidentStatus.MITIGATED and incident.mitigated_at == 200.0
    observe(tracker, am("a"))  # a repeat of the same firing alert: still mitigated
    assert incident.status is IncidentStatus.MITIGATED
    changes = observe(tracker, am("c"))  # another alert of the group fires: open again
    assert incident.status is IncidentStatus.OPEN
    assert changes.timeline[-1].message.startswith("reopened")


def test_resolutions_without_an_incident_and_escalations_open_nothing() -> None:
    tracker = IncidentTracker(Grouping({}))
    ok = Event(source="disk", resource="/var", status=Status.RESOLVED)
    escalation = Event(source="opsmedic", kind="escalation", resource="fix")
    changes = observe(tracker, ok, escalation)
    assert not changes and not ok.incident_id and not escalation.incident_id


def test_severity_is_the_worst_seen_and_runs_join_the_incident() -> None:
    tracker = IncidentTracker(Grouping({}))
    a, b = am("a"), am("b")
    a.severity, b.severity = "warning", "critical"
    changes = observe(tracker, a, b, am("c"))
    (incident,) = changes.incidents.values()
    assert incident.severity == "critical"
    run = Run(rule="fix", event_id=a.id, target="t", fingerprint=a.fingerprint, actions=["noop"],
              created_at=100.0)  # fmt: skip
    skipped = Run(rule="fix", event_id=a.id, target="t", fingerprint=a.fingerprint,
                  actions=["noop"], state=RunState.SKIPPED, dry_run=True)  # fmt: skip
    tracker.planned(a, [run, skipped], changes)
    assert run.incident_id == skipped.incident_id == incident.id
    assert changes.timeline[-2].message == "rule fix matched; run planned: noop"
    assert changes.timeline[-1].message == "rule fix matched; run skipped (dry-run): noop"
    assert [t.kind for t in tracker.started(run).timeline] == ["run_started"]


def test_tracker_restarts_from_the_stored_active_incidents() -> None:
    first = IncidentTracker(Grouping({}))
    a = am("a")
    (incident,) = observe(first, a).incidents.values()
    restarted = IncidentTracker(Grouping({}), [incident])
    b = am("b")
    observe(restarted, b)
    assert b.incident_id == a.incident_id


def test_an_alert_stays_with_its_incident_when_its_key_changes() -> None:
    """A PagerDuty v2 resolve carries no payload, so no service: its key differs from the
    trigger's; and a severity that drops on recovery changes a `severity` key."""
    tracker = IncidentTracker(Grouping({"datadog": ["kind", "severity"]}))
    trigger = Event(source="pagerduty", kind="disk", resource="db1", fingerprint="pd:disk-db1")
    (incident,) = observe(tracker, trigger).incidents.values()
    resolve = Event(source="pagerduty", status=Status.RESOLVED, fingerprint="pd:disk-db1")
    observe(tracker, resolve)
    assert resolve.incident_id == incident.id and incident.status is IncidentStatus.RESOLVED
    warn = Event(source="datadog", kind="cpu", severity="warning", fingerprint="dd:1")
    (dd,) = observe(tracker, warn).incidents.values()
    ok = Event(source="datadog", kind="cpu", severity="info", status=Status.RESOLVED,
               fingerprint="dd:1")  # fmt: skip
    observe(tracker, ok)
    assert ok.incident_id == dd.id and dd.status is IncidentStatus.RESOLVED


def test_a_big_group_is_one_line_naming_the_first_alerts() -> None:
    tracker = IncidentTracker(Grouping({}))
    changes = observe(tracker, *(am(f"web-{i}") for i in range(8)))
    (line,) = [t for t in changes.lines() if t.kind == "event_received"]
    assert line.message.startswith("8 alerts firing: ") and line.message.endswith("; and 3 more")
    later = observe(tracker, am("web-0", Status.RESOLVED))
    assert [t.message for t in later.lines()] == [
        "alert resolved: alertmanager HighErrorRate checkout"
    ]


def test_in_event_order_a_run_finishing_late_still_lets_a_later_alert_reopen() -> None:
    """A replay observes b firing before a's run finishes; live the run finished first and b
    reopened the mitigated incident. In event order the tracker ends where live ended: open.
    An alert that fired before the run's event does not reopen it."""
    for in_event_order, status in ((False, IncidentStatus.MITIGATED), (True, IncidentStatus.OPEN)):
        tracker = IncidentTracker(Grouping({}), in_event_order=in_event_order)
        a, b = am("a"), am("b")
        observe(tracker, a)
        run = finished_run(a, RunState.SUCCEEDED)
        run.state = RunState.PLANNED
        tracker.planned(a, [run], IncidentChanges())
        observe(tracker, b)
        run.state = RunState.SUCCEEDED
        changes = tracker.finished(run, 200.0)
        assert changes.incidents[a.incident_id].status is status
    tracker = IncidentTracker(Grouping({}), in_event_order=True)
    a, b = am("a"), am("b")
    observe(tracker, b, a)
    run = finished_run(a, RunState.PLANNED)
    tracker.planned(a, [run], IncidentChanges())
    run.state = RunState.SUCCEEDED
    changes = tracker.finished(run, 200.0)
    assert changes.incidents[a.incident_id].status is IncidentStatus.MITIGATED


def flips(n: int, start: float = 1000.0, step: float = 0.05) -> list[Event]:
    """`n` alternations of one alert, firing then resolved, `step` s apart in event time."""
    events = []
    for i in range(n):
        status = Status.FIRING if i % 2 == 0 else Status.RESOLVED
        event = am("a", status)
        event.time = start + i * step
        events.append(event)
    return events


def test_a_thousand_flips_in_a_minute_are_one_flapping_incident() -> None:
    tracker = IncidentTracker(Grouping({}))
    events = flips(1000)  # 500 firing, 500 resolved, within 50 s of event time
    changes = observe(tracker, *events)
    assert {e.incident_id for e in events} == {events[0].incident_id}
    (incident,) = changes.incidents.values()
    assert (incident.flaps, incident.flapping, incident.events) == (499, True, 1000)
    assert incident.status is IncidentStatus.RESOLVED  # the last flip resolved it
    lines = [t.message for t in changes.lines()]
    # One story, not a thousand lines: opened, three flaps, the third makes it flapping.
    assert len(lines) == 11, lines
    assert [m for m in lines if m.startswith("reopened")] == [
        "reopened: alertmanager HighErrorRate checkout fired again 0.05 s after it resolved "
        f"(flap {n})"
        for n in (1, 2, 3)
    ]
    assert lines[-1].startswith("flapping: 3 reopenings within 3600 s;")


def test_firing_after_the_reopen_window_opens_a_new_incident() -> None:
    tracker = IncidentTracker(Grouping({}), reopening=Reopening(within=60.0))
    first, resolved = flips(2)
    observe(tracker, first, resolved)
    soon, later = am("a"), am("a")
    soon.time = resolved.time + 60.0
    observe(tracker, soon)  # at the window's edge: still a flap
    assert soon.incident_id == first.incident_id
    gone = am("a", Status.RESOLVED)
    gone.time = soon.time + 1
    observe(tracker, gone)
    later.time = gone.time + 60.5
    (opened,) = observe(tracker, later).incidents.values()
    assert later.incident_id != first.incident_id
    assert (opened.flaps, opened.flapping) == (0, False)


def test_flaps_spread_wider_than_the_flap_window_are_not_flapping() -> None:
    tracker = IncidentTracker(Grouping({}), reopening=Reopening(flaps=3, flap_window=10.0))
    events = flips(20, step=4.0)  # a reopening every 8 s: at most 2 within 10 s
    (incident,) = observe(tracker, *events).incidents.values()
    assert (incident.flaps, incident.flapping) == (9, False)


def test_no_reopening_when_the_window_is_zero() -> None:
    tracker = IncidentTracker(Grouping({}), reopening=Reopening(within=0.0))
    first, resolved, again = flips(3)
    observe(tracker, first, resolved, again)
    assert again.incident_id != first.incident_id


def test_a_restarted_tracker_reopens_a_stored_resolved_incident() -> None:
    first, resolved, again = flips(3)
    (incident,) = observe(IncidentTracker(Grouping({})), first, resolved).incidents.values()
    restarted = IncidentTracker(Grouping({}), [incident])
    assert len(restarted) == 0  # resolved: not active
    (reopened,) = observe(restarted, again).incidents.values()
    assert again.incident_id == first.incident_id
    assert (reopened.status, reopened.flaps, reopened.resolved_at) == (IncidentStatus.OPEN, 1, None)


def test_a_new_incident_of_the_same_key_is_joined_not_the_resolved_one() -> None:
    """The key is taken by an incident opened meanwhile: the alert joins that one."""
    tracker = IncidentTracker(Grouping({}))
    first, resolved = flips(2)
    observe(tracker, first, resolved)
    other = am("b")
    other.time = resolved.time + 1
    observe(tracker, other)
    again = am("a")
    again.time = resolved.time + 2
    observe(tracker, again)
    assert again.incident_id == other.incident_id != first.incident_id


def test_an_approval_request_joins_no_incident() -> None:
    """Grouped, requests about unrelated hosts opened one incident that never resolved."""
    tracker = IncidentTracker(Grouping({}))
    requests = [Event(source="opsmedic", kind="approval_requested", resource="/data", host=h,
                      labels={"rule": "wipe", "run_id": h}) for h in ("web-1", "db-1")]  # fmt: skip
    changes = observe(tracker, *requests)
    assert not changes and len(tracker) == 0
    assert not any(r.incident_id for r in requests)
