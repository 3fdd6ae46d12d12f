"""The Now page's store reads, on SQLite and PostgreSQL: each incident's latest runs, the last
hour's flag changes with what they moved, a canary's progress kept with its heartbeat."""

from __future__ import annotations

from typing import Any

from opsmedic.engine.incidents import Grouping, IncidentTracker
from opsmedic.flags.changes import Author
from opsmedic.flags.model import Flag
from opsmedic.model import Deployment, IncidentChanges, IncidentStatus, RunState, Status
from opsmedic.store import Store
from opsmedic.store.incident_rows import IncidentRows

if __package__:
    from ...store_fixtures import T0, make_event, make_run
else:
    from store_fixtures import T0, make_event, make_run

ALICE = Author("cli", "alice")


def _flag(key: str, **fields: Any) -> Flag:
    return Flag.model_validate({"key": key, **fields})


def test_latest_runs_are_the_newest_few_of_each_incident_asked_for(store: Store) -> None:
    event = make_event()
    runs = [make_run(event, incident_id=f"inc-{i % 3}", created_at=T0 + i, rule=f"r{i}")
            for i in range(12)]  # fmt: skip
    runs[11].dry_run = True
    store.record([event], runs)
    found = store.now.latest_runs(["inc-1", "inc-2", "inc-none"], per=2)
    assert sorted(found) == ["inc-1", "inc-2"]
    assert [m.rule for m in found["inc-1"]] == ["r10", "r7"]  # newest first, 2 of 4
    assert [(m.rule, m.dry_run) for m in found["inc-2"]] == [("r11", True), ("r8", False)]
    assert found["inc-1"][0].state is RunState.PLANNED and found["inc-1"][0].created_at == T0 + 10
    assert store.now.latest_runs([], per=5) == {}


def test_active_incidents_are_counted(store: Store) -> None:
    tracker, changes = IncidentTracker(Grouping({})), IncidentChanges()
    events = [make_event(kind=f"k{i}", fingerprint=f"f{i}") for i in range(3)]
    for event in events:
        tracker.observe(event, changes)
    store.record(events, [], incidents=IncidentRows.of(changes))
    active = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED)
    assert store.now.count_incidents(active) == 3
    changes = IncidentChanges()
    tracker.observe(make_event(kind="k0", fingerprint="f0", status=Status.RESOLVED), changes)
    store.record([], [], incidents=IncidentRows.of(changes))
    assert store.now.count_incidents(active) == 2
    assert store.now.count_incidents([IncidentStatus.RESOLVED]) == 1


def test_flag_changes_since_are_newest_first_bounded_and_counted(store: Store) -> None:
    store.flags.set(_flag("old"), ALICE, 10.0)
    store.flags.set(_flag("checkout"), ALICE, 100.0)
    store.flags.set(_flag("checkout", enabled=False), Author("api", "bot"), 200.0)
    store.flags.set(_flag("search"), ALICE, 300.0)
    changes, total = store.flags.since(50.0, 2)
    assert total == 3
    assert [(c.key, c.version, str(c.by)) for c in changes] == [
        ("search", 1, "cli alice"), ("checkout", 2, "api bot")
    ]  # fmt: skip
    assert changes[0].what() == "created"
    assert changes[1].what() == "enabled: true → false"
    assert store.flags.since(250.0, 10)[1] == 1
    assert store.flags.since(1000.0, 10) == ([], 0)


def test_a_heartbeat_keeps_the_progress_given_and_only_then(store: Store) -> None:
    mine = Deployment("shop", "production", "v2", strategy="canary", owner="host:1",
                      created_at=1.0, updated_at=1.0, checks={"switches": []})  # fmt: skip
    store.start_deployment(mine)
    step = {"canary_percent": 10, "weights": {"10.0.0.1:80": 90, "10.0.0.2:80": 10}}
    progress = {"switches": [], "canary": {"steps": [step]}}
    assert store.deployment_heartbeat(mine.id, "host:1", 2.0, progress)
    assert store.get_deployment(mine.id).checks == progress
    assert store.deployment_heartbeat(mine.id, "host:1", 3.0)  # a beat alone keeps it
    assert store.get_deployment(mine.id).checks == progress
    assert not store.deployment_heartbeat(mine.id, "host:9", 4.0, {"canary": {}})  # not ours
    assert store.get_deployment(mine.id).checks == progress
