"""The approvals table on both backends: a wait recorded with its run, pruned with it."""

from __future__ import annotations

import pytest

from opsmedic.errors import RunRefused
from opsmedic.model import Approval, RunState
from opsmedic.store import Store
from opsmedic.store.codec import encode_event
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


def test_a_run_by_hand_is_refused_while_the_alerts_run_waits_for_approval(store: Store) -> None:
    """A waiting run goes on when someone approves: it is as unfinished as a running one."""
    event = make_event()
    run = make_run(event, state=RunState.RUNNING, started_at=T0)
    store.record([event], [run])
    assert store.approvals.wait(run, Approval(run.id, 0, "noop", T0, T0 + 60, "skip"),
                                IncidentRows())  # fmt: skip
    by_hand = make_event(time=T0 + 1)
    manual = make_run(by_hand, state=RunState.RUNNING, started_at=T0 + 1, started_by="cli a")
    with pytest.raises(RunRefused, match=f"run {run.id} of archive-app-logs .* waiting_approval"):
        store.start_manual(encode_event(by_hand), manual, None)
    assert store.counts()["runs"] == 1
