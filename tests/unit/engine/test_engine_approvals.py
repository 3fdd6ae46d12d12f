"""Approval before destruction, in the engine on a real store (SQLite and PostgreSQL): a run
waits before a step, holds no slot, survives a restart, and goes on or ends on the decision."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from opsmedic.clock import ManualClock
from opsmedic.config.schema import Config
from opsmedic.engine.loop import Engine
from opsmedic.errors import ApprovalConflict, UnknownRun
from opsmedic.model import Event, Outcome, Run, RunState
from opsmedic.plugins import ActionContext, ActionSpec, Registry
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from opsmedic.store.store import Store

ran: list[tuple[str, str]] = []  # (run id, mark) of every step that really ran


class MarkParams(BaseModel):
    mark: str = ""


async def mark(params: MarkParams, ctx: ActionContext) -> Outcome:
    ran.append((ctx.run_id, params.mark))
    return Outcome(ok=True, message=f"did {params.mark}")


def registry() -> Registry:
    reg = build_registry(load_entry_points=False)
    reg.actions["mark"] = ActionSpec("mark", MarkParams, mark, destructive=True)
    return reg


WAITS = """
- name: wipe
  when: {source: disk}
  do:
    - mark: {mark: before}
    - mark: {mark: destroy}
      approve: {timeout: %s, on_timeout: %s}
    - mark: {mark: after}
"""


@pytest.fixture
async def make_engine(store: Store, tmp_path: Path) -> AsyncIterator[Any]:
    engines: list[Engine] = []

    async def make(rules: str, clock: ManualClock, total: int = 4) -> Engine:
        (tmp_path / "rules.yaml").write_text(rules)
        reg, config = registry(), Config()
        config.actions.concurrency.total = total
        engine = Engine(settings={}, probe_once=None, registry=reg, config=config, store=store,
                        ruleset=load_rules(tmp_path / "rules.yaml", reg), clock=clock)  # fmt: skip
        await engine.start(recover=True)  # as `opsmedic run` starts
        engines.append(engine)
        return engine

    ran.clear()
    yield make
    for engine in engines:
        await engine.close()


async def until(check: Callable[[], bool]) -> None:
    """A bounded wait for what the engine's poll does in its own task."""
    async with asyncio.timeout(30):
        while not check():  # noqa: ASYNC110 - the store is the signal
            await asyncio.sleep(0.01)


async def decide(
    engine: Engine, store: Store, run: Run, decision: str, by: str, final: RunState,
    comment: str = "",
) -> None:  # fmt: skip
    """Decide `run`'s wait as the CLI does (in the store), wake the engine, see it end: in
    the store, then its in-flight lock released (just after the store has the end)."""
    store.approvals.decide(run.id, decision, by, comment, 1_700_000_000.0)
    engine.approvals.wake()
    await until(lambda: state(store, run.id) is final)
    alert = Event(source="disk", resource="/data")
    await until(lambda: not engine.planner.in_flight_for(alert))


def state(store: Store, run_id: str) -> RunState:
    return store.get_run(run_id).state


async def waiting_run(engine: Engine, store: Store, **event: Any) -> Run:
    (accepted,) = await engine.submit([Event(source="disk", resource="/data", **event)])
    await engine.drain()  # the run's task ends once the run is parked
    run = store.get_run(accepted.run_ids[0])
    assert run.state is RunState.WAITING_APPROVAL, run
    return run


async def test_an_approved_run_goes_on_at_the_step_it_waited_before(
    make_engine: Any, store: Store
) -> None:
    clock = ManualClock()
    engine = await make_engine(WAITS % ("10m", "skip"), clock)
    run = await waiting_run(engine, store)
    assert ran == [(run.id, "before")]
    assert "opsmedic runs approve " + run.id in run.message
    (wait,) = store.approvals.waits()
    assert (wait.step, wait.action, wait.deadline - wait.requested_at) == (1, "mark", 600.0)
    await decide(engine, store, run, "approved", "cli alice", RunState.SUCCEEDED, "go ahead")
    assert ran == [(run.id, "before"), (run.id, "destroy"), (run.id, "after")]
    assert [s.message for s in store.get_run(run.id).steps] == [
        "did before", "did destroy", "did after"]  # fmt: skip
    (decided,) = store.approvals.of_run(run.id)
    assert (decided.decision, decided.decided_by, decided.comment) == (
        "approved", "cli alice", "go ahead")  # fmt: skip
    # The request and the decision are on the incident's timeline, with how to approve.
    _, _, lines = store.get_incident(run.incident_id)
    kinds = {line.kind: line.message for line in lines}
    assert "opsmedic runs approve" in kinds["approval_requested"]
    assert kinds["approval_decided"] == "step 2 (mark) approved by cli alice: go ahead"
    # The notification: an event rules can match (source opsmedic, kind approval_requested).
    (asked,) = store.list_events(source="opsmedic", kind="approval_requested")
    assert asked.payload["approve"] == f"opsmedic runs approve {run.id} --step 2"
    assert asked.payload["api"].startswith(f"POST /api/v1/runs/{run.id}/approve")


async def test_a_rejected_run_ends_skipped_and_its_step_never_runs(
    make_engine: Any, store: Store
) -> None:
    clock = ManualClock()
    engine = await make_engine(WAITS % ("10m", "run"), clock)
    run = await waiting_run(engine, store)
    await decide(engine, store, run, "rejected", "api bot", RunState.SKIPPED, "not now")
    assert ran == [(run.id, "before")]
    ended = store.get_run(run.id)
    assert ended.message == "step 2 (mark) rejected by api bot: not now; the run ends here"
    assert ended.finished_at is not None
    # The in-flight lock is released: the alert may start the rule again.
    again = await waiting_run(engine, store)
    assert again.id != run.id


@pytest.mark.parametrize(
    ("on_timeout", "final", "marks"),
    [("skip", RunState.SKIPPED, ["before"]), ("escalate", RunState.SKIPPED, ["before"]),
     ("run", RunState.SUCCEEDED, ["before", "destroy", "after"])],
)  # fmt: skip
async def test_on_timeout_says_what_happens_when_nobody_answers(
    make_engine: Any, store: Store, on_timeout: str, final: RunState, marks: list[str]
) -> None:
    clock = ManualClock()
    engine = await make_engine(WAITS % ("90s", on_timeout), clock)
    run = await waiting_run(engine, store)
    clock.advance(89)
    engine.approvals.wake()
    await asyncio.sleep(0.05)  # a poll that finds nothing due: the run still waits
    assert state(store, run.id) is RunState.WAITING_APPROVAL
    clock.advance(2)
    engine.approvals.wake()
    await until(lambda: state(store, run.id) is final)
    await engine.drain()
    assert [m for _, m in ran] == marks
    (wait,) = store.approvals.of_run(run.id)
    assert (wait.decision, wait.decided_by) == ("timed_out", "opsmedic (timeout)")
    escalations = store.list_events(source="opsmedic", kind="escalation")
    assert len(escalations) == (on_timeout == "escalate")
    if escalations:
        assert escalations[0].labels["reason"] == "approval_timeout"
        assert escalations[0].payload["run_id"] == run.id
    with pytest.raises(ApprovalConflict, match="timed out by opsmedic"):
        store.approvals.decide(run.id, "approved", "cli late", "", clock.now())


async def test_waiting_runs_hold_no_concurrency_slot(make_engine: Any, store: Store) -> None:
    """With one slot, three runs waiting for a human do not stop a fourth from running."""
    clock = ManualClock()
    rules = (
        (WAITS % ("1h", "skip")).replace("source: disk", "source: disk, kind: full")
        + """
- {name: free, when: {source: disk, kind: hot}, do: [{mark: {mark: free}}]}
"""
    )
    engine = await make_engine(rules, clock, total=1)
    waiting = [await waiting_run(engine, store, kind="full", host=f"h{i}") for i in range(3)]
    (accepted,) = await engine.submit([Event(source="disk", kind="hot", resource="/tmp")])
    async with asyncio.timeout(30):  # a slot held by a wait would block this for ever
        await engine.drain()
    assert state(store, accepted.run_ids[0]) is RunState.SUCCEEDED
    assert all(state(store, r.id) is RunState.WAITING_APPROVAL for r in waiting)


async def test_a_wait_survives_a_restart_and_the_step_runs_once(
    make_engine: Any, store: Store
) -> None:
    clock = ManualClock()
    first = await make_engine(WAITS % ("10m", "skip"), clock)
    run = await waiting_run(first, store)
    await first.close()
    second = await make_engine(WAITS % ("10m", "skip"), clock)
    assert state(store, run.id) is RunState.WAITING_APPROVAL  # not taken for interrupted
    # Its in-flight lock came back too: the same alert does not start a second run.
    (accepted,) = await second.submit([Event(source="disk", resource="/data")])
    assert accepted.run_ids == []
    await decide(second, store, run, "approved", "cli alice", RunState.SUCCEEDED)
    assert [m for _, m in ran] == ["before", "destroy", "after"]


async def test_a_decision_is_taken_once_for_the_step_it_names(
    make_engine: Any, store: Store
) -> None:
    clock = ManualClock()
    engine = await make_engine(WAITS % ("10m", "skip"), clock)
    run = await waiting_run(engine, store)
    with pytest.raises(UnknownRun):
        store.approvals.decide("ffffffffffff", "approved", "cli a", "", clock.now())
    with pytest.raises(ApprovalConflict, match=r"waits for approval of step 2 .*not step 3"):
        store.approvals.decide(run.id, "approved", "cli a", "", clock.now(), step=2)
    store.approvals.decide(run.id, "approved", "cli alice", "", clock.now(), step=1)
    for decision in ("approved", "rejected"):  # neither a replay nor a change of mind
        with pytest.raises(ApprovalConflict, match=r"approved by cli alice at .* already"):
            store.approvals.decide(run.id, decision, "cli bob", "", clock.now())
    engine.approvals.wake()
    await until(lambda: state(store, run.id) is RunState.SUCCEEDED)
    with pytest.raises(ApprovalConflict, match="is succeeded, not waiting for approval"):
        store.approvals.decide(run.id, "approved", "cli bob", "", clock.now())


async def test_a_dry_run_does_not_wait(make_engine: Any, store: Store) -> None:
    clock = ManualClock()
    engine = await make_engine((WAITS % ("10m", "skip")) + "  dry_run: true\n", clock)
    (accepted,) = await engine.submit([Event(source="disk", resource="/data")])
    await engine.drain()
    assert state(store, accepted.run_ids[0]) is RunState.SKIPPED
    assert ran == [] and store.approvals.waits() == []


async def test_a_decision_after_the_deadline_is_refused_and_on_timeout_decides(
    make_engine: Any, store: Store
) -> None:
    """With the service up, a reject just past the deadline (before the engine's poll applied
    the timeout) is refused; nothing is decided until the timeout is."""
    clock = ManualClock()
    engine = await make_engine(WAITS % ("3s", "run"), clock)
    run = await waiting_run(engine, store)
    (wait,) = store.approvals.waits()
    for decision in ("approved", "rejected"):
        with pytest.raises(ApprovalConflict, match=r"timed out at .* on_timeout \(run\) decides"):
            store.approvals.decide(run.id, decision, "cli late", "", wait.deadline + 0.2)
    assert store.approvals.waits()[0].decision == ""
    clock.advance(3)
    engine.approvals.wake()
    await until(lambda: state(store, run.id) is RunState.SUCCEEDED)
    (decided,) = store.approvals.of_run(run.id)
    assert (decided.decision, decided.decided_by) == ("timed_out", "opsmedic (timeout)")


async def test_a_deadline_passed_while_the_service_was_down_is_applied_at_start(
    make_engine: Any, store: Store
) -> None:
    """The reviewer's case: the service killed, an approval 8 s after a 3 s deadline with
    on_timeout: skip. It is refused, and the restarted engine ends the run skipped."""
    clock = ManualClock()
    first = await make_engine(WAITS % ("3s", "skip"), clock)
    run = await waiting_run(first, store)
    await first.close()
    clock.advance(8)
    with pytest.raises(ApprovalConflict, match="the wait timed out at"):
        store.approvals.decide(run.id, "approved", "cli alice", "", clock.now())
    second = await make_engine(WAITS % ("3s", "skip"), clock)
    # Applied by start itself, before any poll.
    assert store.approvals.of_run(run.id)[0].decision == "timed_out"
    await until(lambda: state(store, run.id) is RunState.SKIPPED)
    await second.drain()
    assert [m for _, m in ran] == ["before"]


TWO_WAITS = """
- name: wipe
  when: {source: disk}
  do:
    - mark: {mark: first}
      approve: {timeout: 10m, on_timeout: skip}
    - mark: {mark: second}
      approve: {timeout: 10m, on_timeout: skip}
"""


async def test_an_approval_replayed_cannot_approve_the_next_wait(
    make_engine: Any, store: Store
) -> None:
    clock = ManualClock()
    engine = await make_engine(TWO_WAITS, clock)
    run = await waiting_run(engine, store)
    (asked,) = store.list_events(source="opsmedic", kind="approval_requested")
    assert asked.payload["step"] == 1
    assert asked.payload["approve"] == f"opsmedic runs approve {run.id} --step 1"
    assert '{"step": 1}' in asked.payload["api"]
    assert f"opsmedic runs approve {run.id} --step 1" in run.message
    store.approvals.decide(run.id, "approved", "cli alice", "", clock.now())  # the first: fine
    engine.approvals.wake()
    await until(lambda: len(store.approvals.of_run(run.id)) == 2)
    await engine.drain()
    assert state(store, run.id) is RunState.WAITING_APPROVAL
    # `runs approve RUN` again (its shell history): refused, the second step does not run.
    with pytest.raises(ApprovalConflict, match=r"name the step: .* step 2 \(mark\).*--step 2"):
        store.approvals.decide(run.id, "approved", "cli alice", "", clock.now())
    assert [m for _, m in ran] == ["first"]
    second = [e for e in store.list_events(source="opsmedic", kind="approval_requested")
              if e.payload["step"] == 2]  # fmt: skip
    assert second[0].payload["approve"] == f"opsmedic runs approve {run.id} --step 2"
    store.approvals.decide(run.id, "approved", "cli bob", "", clock.now(), step=1)
    engine.approvals.wake()
    await until(lambda: state(store, run.id) is RunState.SUCCEEDED)
    assert [m for _, m in ran] == ["first", "second"]


async def test_an_approval_does_not_run_a_step_whose_parameters_changed(
    make_engine: Any, store: Store, tmp_path: Path
) -> None:
    """Same actions, another parameter (as an edited argv): the run ends skipped."""
    clock = ManualClock()
    engine = await make_engine(WAITS % ("10m", "skip"), clock)
    run = await waiting_run(engine, store)
    edited = (WAITS % ("10m", "skip")).replace("mark: destroy", "mark: destroy-all")
    (tmp_path / "rules.yaml").write_text(edited)
    engine.reload(load_rules(tmp_path / "rules.yaml", engine.executor.registry))
    await decide(engine, store, run, "approved", "cli alice", RunState.SKIPPED)
    assert store.get_run(run.id).message == (
        "rule wipe changed while the run waited; not resumed")  # fmt: skip
    assert [m for _, m in ran] == ["before"]


async def test_an_approval_resumes_a_rule_only_moved_in_its_file(
    make_engine: Any, store: Store, tmp_path: Path
) -> None:
    clock = ManualClock()
    engine = await make_engine(WAITS % ("10m", "skip"), clock)
    run = await waiting_run(engine, store)
    (tmp_path / "rules.yaml").write_text("# a comment moves every line\n" + WAITS % ("10m", "skip"))
    engine.reload(load_rules(tmp_path / "rules.yaml", engine.executor.registry))
    await decide(engine, store, run, "approved", "cli alice", RunState.SUCCEEDED)
    assert [m for _, m in ran] == ["before", "destroy", "after"]
