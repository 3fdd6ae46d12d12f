"""Concurrent approve and reject of one wait, from two processes on one store (SQLite and the
real PostgreSQL): exactly one wins; the other is refused, naming the winner."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier

from opsmedic.errors import ApprovalConflict
from opsmedic.model import Approval, RunState
from opsmedic.store import Store
from opsmedic.store.incident_rows import IncidentRows
from store_fixtures import T0, make_event, make_run

ROUNDS = 8
DECISIONS = ("approved", "rejected")


def decide(
    url: str, run_ids: list[str], n: int, barrier: Barrier, results: multiprocessing.Queue[str]
) -> None:
    """One decider in its own process; for each wait both are released together."""
    store = Store(url)
    try:
        for run_id in run_ids:
            barrier.wait(60)
            try:
                store.approvals.decide(run_id, DECISIONS[n], f"cli p{n}", "", T0 + 1)
                results.put(f"{run_id} won {n}")
            except ApprovalConflict as exc:
                results.put(f"{run_id} lost {n}: {exc}")
    finally:
        store.close()


def waiting(store: Store) -> str:
    event = make_event()
    run = make_run(event, state=RunState.RUNNING, started_at=T0)
    store.record([event], [run])
    wait = Approval(run.id, 1, "kill_process", T0, T0 + 600, "skip")
    assert store.approvals.wait(run, wait, IncidentRows())
    return run.id


def test_approve_and_reject_race_and_exactly_one_wins(store: Store, store_url: str) -> None:
    run_ids = [waiting(store) for _ in range(ROUNDS)]
    spawn = multiprocessing.get_context("spawn")  # no fork of a process with threads
    barrier, results = spawn.Barrier(2), spawn.Queue()
    procs = [spawn.Process(target=decide, args=(store_url, run_ids, n, barrier, results))
             for n in range(2)]  # fmt: skip
    for proc in procs:
        proc.start()
    outcomes = sorted(results.get(timeout=120) for _ in range(2 * ROUNDS))
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    for run_id in run_ids:
        mine = [o.removeprefix(f"{run_id} ") for o in outcomes if o.startswith(run_id)]
        won = [o for o in mine if o.startswith("won")]
        lost = [o for o in mine if o.startswith("lost")]
        assert len(won) == 1 and len(lost) == 1, mine
        winner = int(won[0][-1])
        # The loser is told who won, and the store holds the winner's decision.
        assert f"{DECISIONS[winner]} by cli p{winner} at" in lost[0], lost
        (wait,) = store.approvals.of_run(run_id)
        assert (wait.decision, wait.decided_by) == (DECISIONS[winner], f"cli p{winner}")
        assert store.get_run(run_id).state is RunState.WAITING_APPROVAL  # the engine's to resume
