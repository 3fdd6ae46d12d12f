"""Store: the run lifecycle — exclusive claims, final states, crash recovery and pruning."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from opsmedic.errors import StoreError
from opsmedic.model import Run, RunState, StepRecord
from opsmedic.store import PruneResult, Store
from opsmedic.store import store as store_module
from opsmedic.store.store import CLAIM_CHUNK, INTERRUPTED_MESSAGE, Recovery

if __package__:
    from ...store_fixtures import T0, make_event, make_run
else:
    from store_fixtures import T0, make_event, make_run


def _planned(store: Store, n: int = 1, **fields: object) -> list[Run]:
    event = make_event()
    runs = [make_run(event, **fields) for _ in range(n)]
    store.record([event], runs)
    return runs


def _finished(run: Run, state: RunState, message: str, at: float) -> Run:
    step = StepRecord(action="archive_logs", params={"dir": "/x"}, state=state, message=message)
    return replace(run, state=state, message=message, steps=[step], finished_at=at)


def test_claim_moves_a_planned_run_to_running_once(store: Store) -> None:
    (run,) = _planned(store)
    assert store.claim([run.id], T0 + 1) == [run.id]
    assert store.claim([run.id], T0 + 2) == []

    got = store.get_run(run.id)
    assert got.state is RunState.RUNNING
    assert got.started_at == T0 + 1


def test_claim_returns_only_the_planned_runs_in_the_order_given(store: Store) -> None:
    a, b = _planned(store, 2)
    (skipped,) = _planned(store, state=RunState.SKIPPED)
    won = store.claim([b.id, "no-such-run", skipped.id, a.id, b.id], T0)
    assert won == [b.id, a.id]
    assert store.get_run(skipped.id).state is RunState.SKIPPED
    assert store.claim([], T0) == []


def test_claim_is_exclusive_between_two_stores_in_two_threads(store_url: str) -> None:
    stores = [Store(store_url), Store(store_url)]
    try:
        stores[0].migrate()
        ids = [r.id for r in _planned(stores[0], 200)]
        chunks = [ids[i : i + 10] for i in range(0, len(ids), 10)]
        won: list[list[str]] = [[], []]
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def claim_all(which: int) -> None:
            try:
                start.wait()
                # Both walk the same chunks in the same order, so that every chunk is contested.
                for chunk in chunks:
                    won[which] += stores[which].claim(chunk, T0 + which)
            except BaseException as e:  # reported below, not lost in the thread
                errors.append(e)

        threads = [threading.Thread(target=claim_all, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert errors == []
        assert not set(won[0]) & set(won[1])
        assert sorted(won[0] + won[1]) == sorted(ids)
        for which in (0, 1):
            for run_id in won[which][:5]:
                assert stores[1].get_run(run_id).started_at == T0 + which
    finally:
        for s in stores:
            s.close()


def test_finish_writes_the_final_state(store: Store) -> None:
    (run,) = _planned(store)
    store.claim([run.id], T0 + 1)
    done = _finished(run, RunState.SUCCEEDED, "archived 3 files", T0 + 5)
    store.finish([done])
    assert store.get_run(run.id) == replace(done, started_at=T0 + 1)


def test_finish_never_overwrites_a_finished_run(store: Store) -> None:
    (run,) = _planned(store)
    store.claim([run.id], T0)
    first = _finished(run, RunState.FAILED, "disk full", T0 + 1)
    store.finish([first])
    store.finish([_finished(run, RunState.SUCCEEDED, "late and wrong", T0 + 2)])
    assert store.get_run(run.id) == replace(first, started_at=T0)


def test_a_late_finish_leaves_an_interrupted_run_interrupted(store: Store) -> None:
    (run,) = _planned(store)
    store.claim([run.id], T0)
    store.interrupt_running(T0 + 1)
    store.finish([_finished(run, RunState.SUCCEEDED, "too late", T0 + 2)])
    assert store.get_run(run.id).state is RunState.INTERRUPTED


def test_finish_a_planned_run_that_never_started(store: Store) -> None:
    (run,) = _planned(store)
    store.finish([_finished(run, RunState.SKIPPED, "leashed: report only", T0 + 1)])
    got = store.get_run(run.id)
    assert (got.state, got.message, got.started_at) == (
        RunState.SKIPPED,
        "leashed: report only",
        None,
    )


def test_finish_many_runs_at_once(store: Store) -> None:
    runs = _planned(store, 50)
    store.claim([r.id for r in runs], T0)
    store.finish([_finished(r, RunState.SUCCEEDED, f"run {i}", T0 + i) for i, r in enumerate(runs)])
    for i, r in enumerate(runs):
        got = store.get_run(r.id)
        assert (got.state, got.message, got.finished_at) == (RunState.SUCCEEDED, f"run {i}", T0 + i)


def test_finish_refuses_a_state_that_is_not_final(store: Store) -> None:
    (run,) = _planned(store)
    with pytest.raises(ValueError, match=run.id):
        store.finish([replace(run, state=RunState.RUNNING)])
    assert store.get_run(run.id).state is RunState.PLANNED


def test_interrupt_running_marks_and_returns_only_running_runs(store: Store) -> None:
    planned, running_a, running_b, done = _planned(store, 4)
    store.claim([running_a.id, running_b.id, done.id], T0)
    store.finish([_finished(done, RunState.SUCCEEDED, "ok", T0 + 1)])

    interrupted = store.interrupt_running(T0 + 10).interrupted

    assert sorted(r.id for r in interrupted) == sorted([running_a.id, running_b.id])
    for r in interrupted:
        assert (r.state, r.message) == (RunState.INTERRUPTED, INTERRUPTED_MESSAGE)
        assert (r.started_at, r.finished_at) == (T0, T0 + 10)
        assert store.get_run(r.id) == r
    assert store.get_run(planned.id).state is RunState.PLANNED
    assert store.get_run(done.id).state is RunState.SUCCEEDED
    assert store.interrupt_running(T0 + 20) == Recovery([], [])


def test_interrupted_runs_and_their_reruns_are_one_transaction(store: Store) -> None:
    """Re-runs are inserted already claimed with the marking; if planning one fails, the
    marking is undone too, so the next start finds the runs still running and tries again."""
    a, b = _planned(store, 2)
    store.claim([a.id, b.id], T0)

    def broken(old: Run) -> Run | None:
        raise RuntimeError("crash mid-recovery")

    with pytest.raises(RuntimeError):
        store.interrupt_running(T0 + 5, broken)
    assert {store.get_run(r.id).state for r in (a, b)} == {RunState.RUNNING}

    def again_a(old: Run) -> Run | None:
        return replace(old, id=f"re-{old.id}", rerun_of=old.id) if old.id == a.id else None

    recovery = store.interrupt_running(T0 + 10, again_a)
    assert sorted(r.id for r in recovery.interrupted) == sorted([a.id, b.id])
    (rerun,) = recovery.reruns
    stored = store.get_run(rerun.id)
    assert (stored.state, stored.started_at, stored.rerun_of) == (RunState.RUNNING, T0 + 10, a.id)
    # The re-run is claimed: no other worker can claim it, and the next start interrupts it.
    assert store.claim([rerun.id], T0 + 11) == []
    assert [r.id for r in store.interrupt_running(T0 + 20).interrupted] == [rerun.id]
    # The store itself refuses a second re-run of the same run.
    with pytest.raises(StoreError):
        store.record([], [replace(rerun, id="another", state=RunState.PLANNED)])
    assert store.get_run(a.id).state is RunState.INTERRUPTED


def test_prune_never_deletes_unfinished_runs_or_their_events(store: Store) -> None:
    cutoff = T0 + 100
    old = [make_event(time=T0 + i) for i in range(5)]
    new = make_event(time=cutoff + 1)
    finished_old = make_run(old[0], state=RunState.SUCCEEDED)
    planned_old = make_run(old[1])
    running_old = make_run(old[2])
    # An old event whose run was created after the cutoff stays with its run.
    finished_new = make_run(old[3], state=RunState.FAILED, created_at=cutoff)
    store.record([*old, new], [finished_old, planned_old, running_old, finished_new])
    store.claim([running_old.id], T0)

    assert store.prune(cutoff) == PruneResult(events=2, runs=1)  # old[0] and old[4]

    assert {r.id for r in store.list_runs()} == {planned_old.id, running_old.id, finished_new.id}
    assert {e.id for e in store.list_events()} == {old[1].id, old[2].id, old[3].id, new.id}
    assert store.prune(cutoff) == PruneResult(events=0, runs=0)


def test_prune_deletes_an_old_run_and_its_event_once_finished(store: Store) -> None:
    (run,) = _planned(store)
    store.claim([run.id], T0)
    assert store.prune(T0 + 1) == PruneResult(events=0, runs=0)
    store.finish([_finished(run, RunState.SUCCEEDED, "ok", T0 + 1)])
    assert store.prune(T0 + 1) == PruneResult(events=1, runs=1)
    assert store.counts() == {"events": 0, "runs": 0}


def test_prune_deletes_in_batches(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "PRUNE_BATCH", 2)
    events = [make_event() for _ in range(5)]
    store.record(events, [make_run(e, state=RunState.SKIPPED) for e in events[:4]])
    assert store.prune(T0 + 1) == PruneResult(events=5, runs=4)
    assert store.counts() == {"events": 0, "runs": 0}


def test_claim_of_more_ids_than_one_statement_takes(store: Store) -> None:
    runs = _planned(store, CLAIM_CHUNK + 5)
    ids = [r.id for r in runs]
    assert store.claim([*ids, "unknown"], T0) == ids


def test_a_run_stored_with_lone_surrogates_reads_back_as_valid_utf8(store: Store) -> None:
    """Rows written before outcomes were made valid UTF-8 still read as text every reader can
    serve: an undecodable byte as `\\xff`, any other lone surrogate as `\\ud800`."""
    event = make_event()
    odd = b"bad\xff.log".decode("utf-8", "surrogateescape")
    step = StepRecord(action="archive_logs", params={"dir": odd}, state=RunState.SUCCEEDED,
                      message=f"skipped {odd}", output="\ud800",
                      details={"files_skipped": [{"path": odd}], odd: 1})  # fmt: skip
    run = make_run(event, state=RunState.SUCCEEDED, message=odd, steps=[step], finished_at=T0)
    store.record([event], [run])
    (back,) = store.list_runs()
    assert back.message == "bad\\xff.log"
    (s,) = back.steps
    assert s.params == {"dir": "bad\\xff.log"} and s.message == "skipped bad\\xff.log"
    assert s.output == "\\ud800"
    assert s.details == {"files_skipped": [{"path": "bad\\xff.log"}], "bad\\xff.log": 1}
    assert store.get_run(run.id).steps == back.steps
