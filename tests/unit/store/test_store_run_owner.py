"""Store: runs' owners and leases — recovery takes only the runs of an engine that is gone."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace

import pytest
import sqlalchemy as sa

from opsmedic.model import Approval, Run, RunState
from opsmedic.store import Store
from opsmedic.store.codec import encode_event
from opsmedic.store.incident_rows import IncidentRows
from opsmedic.store.run_owner import RunOwner, this_node
from opsmedic.store.schema import runs as run_table

if __package__:
    from ...store_fixtures import T0, make_event, make_run
else:
    from store_fixtures import T0, make_event, make_run

LEASE = 30.0


class Clock:
    """The time an owner stamps its leases with; the test moves it."""

    def __init__(self) -> None:
        self.at = T0

    def now(self) -> float:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def other(store_url: str, store: Store) -> Iterator[Store]:
    """A second process's store on the same database (`store` migrated it)."""
    found = Store(store_url)
    yield found
    found.close()


def _owned(store_url: str, run_id: str) -> tuple[str | None, float | None]:
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(run_table.c.owner, run_table.c.lease_until).where(
                    run_table.c.id == run_id
                )
            ).one()
        return row.owner, row.lease_until
    finally:
        engine.dispose()


def _running(store: Store, owner: RunOwner | None) -> Run:
    """A run `owner` claimed in the event's own commit, as the engine does."""
    store.owner = owner
    event = make_event()
    run = make_run(event)
    assert store.record([event], [run], claim=[run.id], started_at=T0) == [run.id]
    return run


def _interrupted(store: Store, at: float) -> list[str]:
    return [r.id for r in store.interrupt_running(at).interrupted]


def test_a_claim_records_its_owner_and_lease(store: Store, store_url: str, clock: Clock) -> None:
    owner = RunOwner(clock.now, LEASE)
    run = _running(store, owner)
    assert _owned(store_url, run.id) == (owner.id, T0 + LEASE)
    # The other ways a run becomes running: a claim of a planned run, a run by hand.
    event, alone = make_event(), make_event(resource="/srv/by-hand")
    planned, by_hand = make_run(event), make_run(alone, state=RunState.RUNNING)
    store.record([event], [planned])
    clock.at = T0 + 5
    assert store.claim([planned.id], T0 + 5) == [planned.id]
    assert _owned(store_url, planned.id) == (owner.id, T0 + 5 + LEASE)
    store.start_manual(encode_event(alone), by_hand, None)
    assert _owned(store_url, by_hand.id) == (owner.id, T0 + 5 + LEASE)
    # A run that waited for approval goes on under the engine that resumes it.
    wait = Approval(run.id, 0, "noop", requested_at=T0, deadline=T0 + 60, on_timeout="skip")
    assert store.approvals.wait(run, wait, IncidentRows())
    resumer = RunOwner(clock.now, LEASE, token="resumer")
    store.owner, clock.at = resumer, T0 + 9
    assert store.approvals.resume(run.id) is not None
    assert _owned(store_url, run.id) == (resumer.id, T0 + 9 + LEASE)


def test_a_live_owners_run_is_left_until_its_lease_runs_out(
    store: Store, other: Store, clock: Clock
) -> None:
    """Another host's engine holds a run: a start here leaves it while the lease holds (it
    cannot know that process is gone), and takes it once the lease ran out unrenewed."""
    elsewhere = RunOwner(clock.now, LEASE, node="another-host/0123456789ab")
    run = _running(other, elsewhere)
    store.owner = RunOwner(clock.now, LEASE)
    assert _interrupted(store, T0 + LEASE - 1) == []
    assert store.get_run(run.id).state is RunState.RUNNING
    assert _interrupted(store, T0 + LEASE + 1) == [run.id]


def test_renewal_extends_only_the_owners_running_runs(
    store: Store, other: Store, store_url: str, clock: Clock
) -> None:
    elsewhere = RunOwner(clock.now, LEASE, node="another-host/0123456789ab")
    run, done = _running(other, elsewhere), _running(other, elsewhere)
    other.finish([replace(done, state=RunState.SUCCEEDED, finished_at=T0 + 1)])
    mine = _running(store, RunOwner(clock.now, LEASE))
    clock.at = T0 + 25
    assert other.renew_leases() == 1
    assert _owned(store_url, run.id) == (elsewhere.id, T0 + 25 + LEASE)
    assert _owned(store_url, mine.id)[1] == T0 + LEASE  # not another owner's
    assert _interrupted(store, T0 + LEASE + 10) == [mine.id]  # out: this one was not renewed
    assert store.get_run(run.id).state is RunState.RUNNING


def test_an_owner_on_this_host_whose_process_is_gone_is_recovered_at_once(
    store: Store, other: Store, clock: Clock
) -> None:
    """Same host, its pid gone (a kill -9): no need to wait out the lease."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    run = _running(other, RunOwner(clock.now, LEASE, pid=gone.pid))
    store.owner = RunOwner(clock.now, LEASE)
    assert _interrupted(store, T0 + 1) == [run.id]


def test_an_owner_on_this_host_whose_process_lives_keeps_its_runs(
    store: Store, other: Store, clock: Clock
) -> None:
    with subprocess.Popen(["sleep", "60"]) as alive:
        try:
            run = _running(other, RunOwner(clock.now, LEASE, pid=alive.pid))
            store.owner = RunOwner(clock.now, LEASE)
            assert _interrupted(store, T0 + 1) == []
        finally:
            alive.kill()
    assert store.get_run(run.id).state is RunState.RUNNING


def test_this_pid_under_another_token_is_a_process_that_is_gone(
    store: Store, other: Store, clock: Clock
) -> None:
    """The pid is this process's, the token another's: an earlier process had the pid."""
    run = _running(other, RunOwner(clock.now, LEASE, pid=os.getpid(), token="earlier"))
    store.owner = RunOwner(clock.now, LEASE)
    assert _interrupted(store, T0 + 1) == [run.id]


def test_runs_claimed_without_an_owner_are_recovered_as_before(store: Store, clock: Clock) -> None:
    """Rows from before owners were kept (and claims outside an engine) have no owner."""
    run = _running(store, None)
    store.owner = RunOwner(clock.now, LEASE)
    assert _interrupted(store, T0 + 1) == [run.id]


@pytest.mark.parametrize("owner", ["", "nonsense", "a:b:c", f"{this_node()}:x:y"])
def test_an_owner_id_not_of_this_node_or_unreadable_is_never_provably_gone(owner: str) -> None:
    assert not RunOwner(lambda: T0).sees_gone(owner)
