"""The engine end to end on a real store (SQLite and PostgreSQL): plan, claim, run, record."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import BaseModel

from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config
from opsmedic.engine.loop import Engine
from opsmedic.errors import ActionError, RetryableError
from opsmedic.logs import configure_logging
from opsmedic.model import Event, Outcome, Run, RunState
from opsmedic.plugins import ActionContext, ActionSpec, Registry
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from opsmedic.store.store import Store


class FlakyParams(BaseModel):
    fail_times: int = 0
    mode: str = "retryable"
    sleep: float = 0.0


CALLS: list[tuple[str, dict[str, Any]]] = []


async def flaky(params: FlakyParams, ctx: ActionContext) -> Outcome:
    """Fails `fail_times` times per run (retryable, fatal or by crashing), then succeeds."""
    CALLS.append((ctx.run_id, params.model_dump()))
    attempt = sum(1 for run_id, _ in CALLS if run_id == ctx.run_id)
    if params.sleep:
        await asyncio.sleep(params.sleep)
    if attempt <= params.fail_times:
        if params.mode == "retryable":
            raise RetryableError("connection refused")
        if params.mode == "crash":
            raise ZeroDivisionError("bug in the action")
        if params.mode == "fatal":
            raise ActionError("permission denied")
        return Outcome(ok=False, message="exit 1")
    return Outcome(ok=True, message=f"ok after {attempt}", output="out")


async def leashed(params: FlakyParams, ctx: ActionContext) -> Outcome:
    """Reports what it would have done and does nothing (like a leashed kill_process)."""
    return Outcome(ok=True, message="would act", details={"pid": 4242, "skipped": "leashed"})


async def announcing(params: FlakyParams, ctx: ActionContext) -> Outcome:
    """Reports a change as an event (like dns_failover), for rules to react to."""
    change = Event(
        source="opsmedic", kind="switched", resource="resolver", payload={"by": ctx.rule}
    )
    return Outcome(ok=True, message="switched", events=[change])


def registry() -> Registry:
    reg = build_registry(load_entry_points=False)
    reg.actions["flaky"] = ActionSpec("flaky", FlakyParams, flaky, idempotent=True)
    reg.actions["leashed"] = ActionSpec("leashed", FlakyParams, leashed)
    reg.actions["announcing"] = ActionSpec("announcing", FlakyParams, announcing)
    return reg


def config() -> Config:
    cfg = Config()
    cfg.actions.retry.backoff = 0.001
    cfg.actions.retry.max_backoff = 0.002
    cfg.actions.timeout = 5.0
    return cfg


@pytest.fixture
async def make_engine(store: Store, tmp_path: Path) -> AsyncIterator[Any]:
    engines: list[Engine] = []

    async def make(rules: str, **kw: Any) -> Engine:
        (tmp_path / "rules.yaml").write_text(rules)
        reg = registry()
        engine = Engine(settings={}, probe_once=None, ruleset=load_rules(tmp_path / "rules.yaml", reg), registry=reg,
                        config=kw.pop("config", config()), store=store, clock=SystemClock(),
                        **kw)  # fmt: skip
        await engine.start()
        engines.append(engine)
        return engine

    CALLS.clear()
    yield make
    for engine in engines:
        await engine.close()


def ev(**kw: Any) -> Event:
    return Event(**{"source": "disk", "resource": "/var/log/app", **kw})


async def test_an_event_is_committed_with_its_runs_before_submit_returns(
    make_engine: Any, store: Store
) -> None:
    """The reply carries the event id and its run ids, and both are already in the store."""
    engine = await make_engine("- {name: r, when: {source: disk}, do: [{flaky: {}}]}")
    (accepted,) = await engine.submit([ev()])
    assert store.get_event(accepted.event_id).source == "disk"
    assert len(accepted.run_ids) == 1
    assert store.get_run(accepted.run_ids[0]).rule == "r"
    await engine.drain()
    run = store.get_run(accepted.run_ids[0])
    assert run.state is RunState.SUCCEEDED
    assert run.steps[0].output == "out" and run.finished_at is not None


async def test_later_steps_see_earlier_outcomes_and_a_skip_is_not_a_failure(
    make_engine: Any, store: Store
) -> None:
    """A notify after a kill can name the victim: `steps[0].details` is the first outcome's."""
    engine = await make_engine("""
- name: r
  when: {source: disk}
  do:
    - leashed: {}
    - noop: {message: "pid {{ steps[0].details.pid }} was {{ steps[0].state }}"}
""")
    (accepted,) = await engine.submit([ev()])
    await engine.drain()
    run = store.get_run(accepted.run_ids[0])
    assert [s.state for s in run.steps] == [RunState.SKIPPED, RunState.SUCCEEDED]
    assert run.steps[1].message == "pid 4242 was skipped"
    assert run.state is RunState.SUCCEEDED


async def test_retryable_failures_are_retried_with_backoff(make_engine: Any, store: Store) -> None:
    engine = await make_engine("- {name: r, when: {source: disk}, do: [{flaky: {fail_times: 2}}]}")
    (accepted,) = await engine.submit([ev()])
    await engine.drain()
    run = store.get_run(accepted.run_ids[0])
    assert run.state is RunState.SUCCEEDED
    assert run.steps[0].attempts == 3


async def test_retries_are_bounded(make_engine: Any, store: Store) -> None:
    engine = await make_engine(
        "- {name: r, when: {source: disk}, do: [{flaky: {fail_times: 9}, max_attempts: 2}]}"
    )
    (accepted,) = await engine.submit([ev()])
    await engine.drain()
    run = store.get_run(accepted.run_ids[0])
    assert (run.state, run.steps[0].attempts) == (RunState.FAILED, 2)
    assert "connection refused" in run.message


@pytest.mark.parametrize(
    ("mode", "text"),
    [("fatal", "permission denied"), ("crash", "action crashed: ZeroDivisionError"),
     ("outcome", "exit 1")],
)  # fmt: skip
async def test_a_failed_step_stops_the_rest_and_runs_on_failure(
    make_engine: Any, store: Store, mode: str, text: str
) -> None:
    """A failure (error, crash, or not-ok outcome) stops the run; on_failure steps then run."""
    engine = await make_engine(f"""
- name: r
  when: {{source: disk}}
  do:
    - flaky: {{fail_times: 1, mode: {mode}}}
    - noop: {{message: never}}
  on_failure:
    - noop: {{message: "failed on {{{{ event.resource }}}}"}}
""")
    (accepted,) = await engine.submit([ev()])
    await engine.drain()
    run = store.get_run(accepted.run_ids[0])
    assert run.state is RunState.FAILED
    assert text in run.message
    assert [(s.action, s.on_failure) for s in run.steps] == [("flaky", False), ("noop", True)]
    assert run.steps[1].params == {"message": "failed on /var/log/app"}
    assert run.steps[0].attempts == 1  # not retryable: tried once


async def test_continue_on_failure_goes_on_but_the_run_fails(
    make_engine: Any, store: Store
) -> None:
    engine = await make_engine("""
- name: r
  when: {source: disk}
  do:
    - {flaky: {fail_times: 1, mode: fatal}, continue_on_failure: true}
    - noop: {}
""")
    (accepted,) = await engine.submit([ev()])
    await engine.drain()
    run = store.get_run(accepted.run_ids[0])
    assert [s.state for s in run.steps] == [RunState.FAILED, RunState.SUCCEEDED]
    assert run.state is RunState.FAILED


async def test_a_step_over_its_timeout_is_timed_out(make_engine: Any, store: Store) -> None:
    engine = await make_engine(
        "- {name: r, when: {source: disk}, do: [{flaky: {sleep: 30}, timeout: 50ms}]}"
    )
    (accepted,) = await engine.submit([ev()])
    await engine.drain()
    run = store.get_run(accepted.run_ids[0])
    assert run.state is RunState.TIMED_OUT
    assert "timed out after 0.05s" in run.message


async def test_a_template_error_fails_the_step_with_its_path(
    make_engine: Any, store: Store
) -> None:
    # Labels are free-form, so a missing one is only found when the step renders
    # (a misspelt event field, `event.hots`, is refused when the rules load).
    engine = await make_engine(
        "- {name: r, when: {source: disk}, do: [{noop: {message: '{{ event.labels.hots }}'}}]}"
    )
    (accepted,) = await engine.submit([ev()])
    await engine.drain()
    run = store.get_run(accepted.run_ids[0])
    assert run.state is RunState.FAILED
    assert "bad parameters" in run.message and "hots" in run.message


async def test_dry_run_records_what_would_run_and_runs_nothing(
    make_engine: Any, store: Store
) -> None:
    engine = await make_engine("- {name: r, when: {source: disk}, do: [{flaky: {}}]}", dry_run=True)
    (accepted,) = await engine.submit([ev()])
    await engine.drain()
    run = store.get_run(accepted.run_ids[0])
    assert run.state is RunState.SKIPPED and run.dry_run
    assert run.steps[0].message == "dry-run: not executed"
    assert CALLS == []


async def test_the_limit_escalation_event_can_fire_a_rule(make_engine: Any, store: Store) -> None:
    """Hitting a limit records a skipped run and emits an event that a notify rule matches."""
    engine = await make_engine("""
- {name: fix, when: {source: disk}, do: [noop], limit: {max_runs: 1, within: 1h}}
- {name: page, when: {source: opsmedic, kind: escalation}, do: [{noop: {message: "{{ event.payload.message }}"}}]}
""")
    await engine.submit([ev()])
    await engine.drain()
    await engine.submit([ev()])
    await engine.drain()
    runs = {r.rule: r for r in store.list_runs(limit=10) if r.state is not RunState.SUCCEEDED}
    assert runs["fix"].state is RunState.SKIPPED
    page = [r for r in store.list_runs(rule="page", limit=10)]
    assert len(page) == 1 and page[0].state is RunState.SUCCEEDED
    assert "limit reached" in page[0].steps[0].params["message"]


async def test_a_restart_inside_a_limit_pause_does_not_escalate_again(
    make_engine: Any, store: Store
) -> None:
    """The escalation is committed with the skipped run that records the limit (both are in
    the store when submit returns), and a new engine on the same store rebuilds the pause
    from it: the next refused event escalates nothing."""
    rules = """
- {name: fix, when: {source: disk}, do: [noop], limit: {max_runs: 1, within: 1h}}
- {name: page, when: {source: opsmedic, kind: escalation}, do: [noop]}
"""
    engine = await make_engine(rules)
    await engine.submit([ev()])
    await engine.drain()  # else the in-flight lock, not the limit, holds the next one back
    (limited,) = await engine.submit([ev()])
    escalations = store.list_events(source="opsmedic")
    assert [e.payload["run_id"] for e in escalations] == limited.run_ids
    await engine.drain()
    await engine.close()
    restarted = await make_engine(rules)
    (again,) = await restarted.submit([ev()])
    await restarted.drain()
    assert again.run_ids == []
    assert len(store.list_events(source="opsmedic")) == 1
    assert len(store.list_runs(rule="page", limit=10)) == 1


async def test_events_an_action_announces_are_recorded_and_can_fire_rules(
    make_engine: Any, store: Store
) -> None:
    engine = await make_engine("""
- {name: switch, when: {source: disk}, do: [announcing]}
- {name: tell, when: {source: opsmedic, kind: switched}, do: [{noop: {message: "by {{ event.payload.by }}"}}]}
""")
    await engine.submit([ev()])
    await engine.drain()
    (told,) = store.list_runs(rule="tell", limit=10)
    assert told.state is RunState.SUCCEEDED
    assert told.steps[0].message == "by switch"
    assert store.get_event(told.event_id).resource == "resolver"


async def test_runs_left_running_by_a_crash_are_interrupted_and_idempotent_ones_rerun(
    store: Store, tmp_path: Path
) -> None:
    """At start-up: running → interrupted (reported), and an idempotent run is planned again."""
    (tmp_path / "r.yaml").write_text("- {name: r, when: {source: disk}, do: [{flaky: {}}]}")
    CALLS.clear()
    reg = registry()
    event = ev()
    crashed = Run(rule="r", event_id=event.id, target=event.target, fingerprint=event.fingerprint,
                  actions=["flaky"], state=RunState.PLANNED, created_at=event.time)  # fmt: skip
    store.record([event], [crashed])
    assert store.claim([crashed.id], event.time) == [crashed.id]
    engine = Engine(settings={}, probe_once=None, ruleset=load_rules(tmp_path, reg), registry=reg, config=config(), store=store,
                    clock=SystemClock())  # fmt: skip
    interrupted = await engine.start(recover=True)
    await engine.drain()
    await engine.close()
    assert [r.id for r in interrupted] == [crashed.id]
    assert store.get_run(crashed.id).state is RunState.INTERRUPTED
    rerun = [r for r in store.list_runs(limit=10) if r.id != crashed.id]
    assert len(rerun) == 1 and rerun[0].state is RunState.SUCCEEDED
    assert rerun[0].event_id == event.id
    assert rerun[0].rerun_of == crashed.id
    assert [run_id for run_id, _ in CALLS] == [rerun[0].id]


async def test_a_run_is_recorded_and_claimed_in_the_event_commit(
    make_engine: Any, store: Store
) -> None:
    """One commit between an event and its action: the run is already `running` (or done)."""
    engine = await make_engine("- {name: r, when: {source: disk}, do: [{flaky: {sleep: 0.2}}]}")
    (accepted,) = await engine.submit([ev()])
    run = store.get_run(accepted.run_ids[0])
    assert run.state is RunState.RUNNING
    assert run.started_at is not None
    assert store.claim([run.id], 0.0) == []  # nobody else can claim it now
    await engine.drain()


@pytest.mark.parametrize(("total", "per_action", "bound"), [(2, {}, 2), (10, {"flaky": 1}, 1)])
async def test_concurrency_is_bounded_globally_and_per_action(
    make_engine: Any, store: Store, total: int, per_action: dict[str, int], bound: int
) -> None:
    cfg = config()
    cfg.actions.concurrency.total = total
    cfg.actions.concurrency.per_action = per_action
    running = 0
    peak = 0

    async def counting(params: FlakyParams, ctx: ActionContext) -> Outcome:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return Outcome(ok=True)

    engine = await make_engine("- {name: r, when: {source: disk}, do: [{flaky: {}}]}", config=cfg)
    engine.executor.registry.actions["flaky"] = replace(
        engine.executor.registry.actions["flaky"], run=counting
    )
    await engine.submit([ev(resource=f"/r{i}") for i in range(10)])
    await engine.drain()
    assert peak == bound
    assert engine.finished == {"succeeded": 10}


async def test_every_action_line_is_logfmt_with_what_ran_and_how_it_went(
    make_engine: Any, store: Store
) -> None:
    """Logs alone answer what ran, against what, did it work, how long."""
    stream = io.StringIO()
    configure_logging("info", stream)
    try:
        engine = await make_engine("- {name: r, when: {source: disk}, do: [{flaky: {}}]}")
        (accepted,) = await engine.submit([ev()])
        await engine.drain()
    finally:
        structlog.reset_defaults()
    (line,) = [x for x in stream.getvalue().splitlines() if "event=action " in x]
    fields = dict(part.split("=", 1) for part in line.split(" ") if "=" in part)
    assert fields["run_id"] == accepted.run_ids[0]
    assert (fields["rule"], fields["action"], fields["target"]) == ("r", "flaky", "/var/log/app")
    assert fields["outcome"] == "succeeded"
    assert float(fields["duration_ms"]) >= 0


@pytest.mark.parametrize("in_event_order", [False, True])
async def test_in_event_order_a_repeat_waits_for_the_run_instead_of_being_dropped(
    make_engine: Any, store: Store, in_event_order: bool
) -> None:
    """One submission, three events of one alert: live order drops the repeats while the
    first run is in flight; event order (replay) lets each run finish, then plans the next,
    and the one reply still lists every event with its runs."""
    engine = await make_engine("- {name: r, when: {source: disk}, do: [{flaky: {}}]}")
    engine.in_event_order = in_event_order
    accepted = await engine.submit([ev(time=1.0e9 + t) for t in range(3)])
    await engine.drain()
    assert [len(a.run_ids) for a in accepted] == ([1, 1, 1] if in_event_order else [1, 0, 0])
    assert engine.planner.stats.suppressed_in_flight == (0 if in_event_order else 2)
    assert len(store.list_runs()) == sum(len(a.run_ids) for a in accepted)


async def test_in_event_order_a_failed_commit_fails_the_submission_it_cut(
    make_engine: Any, store: Store
) -> None:
    """The batch cut before the repeat fails to commit: the submission hears of it, and the
    events after the cut are not planned on top of what was lost."""
    from opsmedic.errors import StoreError

    engine = await make_engine("- {name: r, when: {source: disk}, do: [{flaky: {}}]}")
    engine.in_event_order = True
    await engine.submit([ev(source="other", id="fixed-id-1")])
    clash = ev(source="other", id="fixed-id-1")  # a duplicate key fails the commit
    with pytest.raises(StoreError):
        await engine.submit([ev(time=1.0e9), clash, ev(time=1.0e9 + 1)])
    await engine.drain()
    assert store.list_runs() == []
    assert engine.planner.stats.events == 3  # the first one, then the failed batch's two
