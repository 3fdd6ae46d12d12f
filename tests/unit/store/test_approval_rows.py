"""The approvals table on both backends: a wait recorded with its run, pruned with it."""

from __future__ import annotations

from opsmedic.model import Approval, RunState
from opsmedic.store import Store
from opsmedic.store.incident_rows import IncidentRows
from store_fixtures import T0, make_event, make_run


def test_a_wait_parks_only_a_running_run_and_goes_with_it_when_pruned(store: Store) -> None:
    event = make_event()
    run = make_run(event, state=RunState.RUNNING, started_at=T0)
    planned = make_run(event)
    store.record([event], [run, planned])
    wait = Approval(run.id, 0, "noop", T0, T0 + 60, "skip")
    assert not store.approvals.wait(planned, Approval(planned.id, 0, "noop", T0, T0 + 60, "skip"),
                                    IncidentRows())  # fmt: skip
    assert store.approvals.wait(run, wait, IncidentRows())
    assert store.get_run(run.id).state is RunState.WAITING_APPROVAL
    assert store.prune(T0 + 3600).runs == 0  # a waiting run stays (as a planned one)
    assert store.approvals.of_run(run.id) == [wait]
    store.approvals.decide(run.id, "rejected", "cli a", "", T0 + 1)
    resumed = store.approvals.resume(run.id)
    assert resumed is not None and store.approvals.resume(run.id) is None  # claimed once
    resumed.state, resumed.finished_at = RunState.SKIPPED, T0 + 2
    store.finish([resumed])
    assert store.prune(T0 + 3600).runs == 1
    assert store.approvals.of_run(run.id) == []
