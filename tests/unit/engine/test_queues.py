"""Queues through the engine on a real store (SQLite and PostgreSQL): each queue has its own
pool, so a full one never holds up the other; an investigation's outputs become evidence on
its incident and never mitigate it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from opsmedic.clock import SystemClock
from opsmedic.config.schema import Concurrency, Config
from opsmedic.engine.decisions import Outcome as Decided
from opsmedic.engine.decisions import RuleOutcome
from opsmedic.engine.evidence import EVIDENCE_CHARS, MESSAGE_CHARS, _shares, evidence_line
from opsmedic.engine.loop import Engine
from opsmedic.engine.pools import Pool, Pools
from opsmedic.errors import ConfigError
from opsmedic.metrics import Metrics
from opsmedic.model import Event, IncidentStatus, Outcome, Queue, Run, RunState, StepRecord
from opsmedic.plugins import ActionContext, ActionSpec, Registry
from opsmedic.rules.loader import load_rules
from opsmedic.rules.model import RuleSpec
from opsmedic.runtime import build_registry
from opsmedic.store.store import Store

BOUND = 30.0  # seconds: a bound on waits for what must happen, never a measured time


class StepParams(BaseModel):
    wait: bool = False  # held until the test opens the gate
    output: str = ""
    message: str = "done"


class Actions:
    """A `step` action whose runs the test can hold, and a record of which ones started."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started: list[str] = []  # rule of each run, in the order their step started
        self.changed = asyncio.Event()

    async def step(self, params: StepParams, ctx: ActionContext) -> Outcome:
        self.started.append(ctx.rule)
        self.changed.set()
        if params.wait:
            await self.gate.wait()
        return Outcome(ok=True, message=params.message, output=params.output)

    async def until(self, ready: Any) -> None:
        """Wait (bounded) until `ready()` holds, checking whenever a step starts."""
        async with asyncio.timeout(BOUND):
            while not ready():
                self.changed.clear()
                await self.changed.wait()

    def registry(self) -> Registry:
        reg = build_registry(load_entry_points=False)
        reg.actions["step"] = ActionSpec("step", StepParams, self.step)
        return reg


def config(**concurrency: Any) -> Config:
    cfg = Config()
    cfg.actions.timeout = BOUND
    cfg.actions.concurrency = Concurrency(**concurrency)
    return cfg


@pytest.fixture
async def make_engine(store: Store, tmp_path: Path) -> AsyncIterator[Any]:
    engines: list[tuple[Engine, Actions]] = []

    async def make(rules: str, cfg: Config) -> tuple[Engine, Actions]:
        (tmp_path / "rules.yaml").write_text(rules)
        actions = Actions()
        reg = actions.registry()
        engine = Engine(settings={}, probe_once=None, registry=reg, config=cfg, store=store,
                        ruleset=load_rules(tmp_path / "rules.yaml", reg), clock=SystemClock())  # fmt: skip
        await engine.start(recover=True)  # as `opsmedic run` starts
        engines.append((engine, actions))
        return engine, actions

    yield make
    for engine, actions in engines:
        actions.gate.set()  # a failed test must not leave runs waiting forever
        await engine.close()


def ev(kind: str, n: int = 0) -> Event:
    return Event(source="disk", kind=kind, resource=f"/r{n}")


@pytest.mark.parametrize(("full", "other"), [("remediation", "investigation"),
                                             ("investigation", "remediation")])  # fmt: skip
async def test_a_full_pool_never_holds_up_the_other_queue(
    make_engine: Any, store: Store, full: str, other: str
) -> None:
    """Two slow runs fill one queue's two slots and two more wait for them; a run of the other
    queue starts and finishes while they all still wait. The per-action limit is per queue
    too: the other queue's `step` does not wait behind the full queue's two."""
    rules = f"""
- {{name: slow, when: {{kind: slow}}, do: [{{step: {{wait: true}}}}], queue: {full}}}
- {{name: quick, when: {{kind: quick}}, do: [{{step: {{output: diag}}}}], queue: {other}}}
"""
    engine, actions = await make_engine(
        rules, config(total=2, investigation=2, per_action={"step": 2})
    )
    slow = [a.run_ids[0] for a in await engine.submit([ev("slow", n) for n in range(4)])]
    await actions.until(lambda: len(actions.started) == 2)
    pool = engine.pools[full]
    assert (pool.running, pool.waiting) == (2, 2)
    finished: list[Run] = []
    quick_done = asyncio.Event()

    def on_finished(run: Run) -> None:
        finished.append(run)
        if run.rule == "quick":
            quick_done.set()

    engine.on_finished = on_finished
    (accepted,) = await engine.submit([ev("quick")])
    async with asyncio.timeout(BOUND):
        await quick_done.wait()
    assert [r.rule for r in finished] == ["quick"]  # before any slow run ended
    assert actions.started == ["slow", "slow", "quick"]
    quick = store.get_run(accepted.run_ids[0])
    assert (quick.state, quick.queue) == (RunState.SUCCEEDED, other)
    assert {store.get_run(i).state for i in slow} == {RunState.RUNNING}  # claimed, not done
    actions.gate.set()
    await engine.drain()
    assert engine.finished == {"succeeded": 5}
    assert actions.started == ["slow", "slow", "quick", "slow", "slow"]
    assert all(p.running == p.waiting == 0 for p in engine.pools.values())


async def test_a_full_investigation_backlog_refuses_investigations_and_remediations_still_run(
    make_engine: Any, store: Store
) -> None:
    """One slot and one waiting place: a third investigation is refused with a recorded
    decision (no limit or throttle used up), and the planning of a remediation after it is
    not held up: it runs while both investigations still wait."""
    rules = """
- {name: look, when: {kind: look}, do: [{step: {wait: true}}], queue: investigation,
   limit: {max_runs: 5, within: 1h}}
- {name: fix, when: {kind: fix}, do: [{step: {output: freed}}]}
"""
    engine, actions = await make_engine(rules, config(total=2, investigation=1))
    fixed = asyncio.Event()
    engine.on_finished = lambda run: fixed.set() if run.rule == "fix" else None
    async with asyncio.timeout(BOUND):
        looks = await engine.submit([ev("look", n) for n in range(2)])
        await actions.until(lambda: len(actions.started) == 1)
        (refused,) = await engine.submit([ev("look", 9)])
        (fix,) = await engine.submit([ev("fix")])
        await fixed.wait()
    assert refused.run_ids == []
    assert refused.decisions == [RuleOutcome("look", Decided.QUEUE_FULL,
                                             "investigation queue full: 1 running, 1 waiting")]  # fmt: skip
    assert store.get_run(fix.run_ids[0]).state is RunState.SUCCEEDED
    assert {store.get_run(a.run_ids[0]).state for a in looks} == {RunState.RUNNING}
    (row,) = store.suppressed.list(rule="look")
    assert (row.outcome, row.count, row.last_event_id) == ("queue_full", 1, refused.event_id)
    assert engine.planner.stats.queue_full == 1
    actions.gate.set()
    await engine.drain()
    (again,) = await engine.submit([ev("look", 9)])  # room again; the limit counts 3 of 5
    await engine.drain()
    assert store.get_run(again.run_ids[0]).state is RunState.SUCCEEDED


async def test_investigation_outputs_are_evidence_on_the_incident_and_do_not_mitigate_it(
    make_engine: Any, store: Store
) -> None:
    """Outputs stored whole when short, cut with a marker past the bound (non-ASCII and NUL
    kept exactly on both backends); the incident stays open until a remediation succeeds."""
    short, long = "df: 91% \x00 ok ✓", "ü" * (EVIDENCE_CHARS * 2)
    rules = f"""
- name: diagnose
  when: {{kind: disk}}
  do:
    - step: {{output: "df: 91% \\u0000 ok ✓"}}
    - step: {{output: "{long}", message: "{"m" * (MESSAGE_CHARS + 5)}"}}
  queue: investigation
"""
    engine, _ = await make_engine(rules, config())
    (accepted,) = await engine.submit([ev("disk")])
    await engine.drain()
    run = store.get_run(accepted.run_ids[0])
    assert run.state is RunState.SUCCEEDED
    incident, _, timeline = store.get_incident(run.incident_id)
    assert incident.status is IncidentStatus.OPEN  # diagnostics collected mitigate nothing
    (line,) = [t for t in timeline if t.kind == "evidence"]
    assert line.ref == run.id
    assert line.message == (
        f"evidence from run of diagnose (succeeded): 2 step(s), {len(short + long):,} "
        f"characters of output, {len(short + long) - EVIDENCE_CHARS:,} cut (whole in the run)"
    )
    assert line.evidence is not None
    first, second = line.evidence["steps"]
    assert (first["output"], first["cut"]) == (short, 0)
    kept = EVIDENCE_CHARS - len(short)
    assert second["cut"] == len(long) - kept
    assert second["output"] == "ü" * kept + (
        f"\n… [{len(long) - kept:,} more characters cut; the whole output: "
        f"opsmedic runs show {run.id}]"
    )
    assert second["message"] == "m" * MESSAGE_CHARS + "… [5 more characters cut]"
    assert line.evidence["run_id"] == run.id and line.evidence["rule"] == "diagnose"
    assert [t.kind for t in timeline].index("evidence") > [t.kind for t in timeline].index(
        "run_finished"
    )


async def test_an_investigation_a_crash_stopped_gets_its_evidence_line_at_recovery(
    make_engine: Any, store: Store
) -> None:
    """A run of an investigation left `running` by a crash: the next start marks it
    interrupted and its incident's evidence says so, in the recovery's own commit."""
    rules = (
        "- {name: diagnose, when: {kind: disk}, do: [{step: {output: top}}], queue: investigation}"
    )
    engine, _ = await make_engine(rules, config())
    (first,) = await engine.submit([ev("disk")])
    await engine.drain()
    incident_id = store.get_run(first.run_ids[0]).incident_id
    event = ev("disk")
    crashed = Run(rule="diagnose", event_id=event.id, target=event.target,
                  fingerprint=event.fingerprint, actions=["step"], queue="investigation",
                  incident_id=incident_id, state=RunState.PLANNED, created_at=event.time)  # fmt: skip
    store.record([event], [crashed])
    assert store.claim([crashed.id], event.time) == [crashed.id]  # then the process died
    await make_engine(rules, config())  # the next start
    assert store.get_run(crashed.id).state is RunState.INTERRUPTED
    _, _, timeline = store.get_incident(incident_id)
    (line,) = [t for t in timeline if t.kind == "evidence" and t.ref == crashed.id]
    assert line.message == (
        "evidence from run of diagnose (interrupted): 0 step(s), 0 characters of output"
    )
    assert line.evidence is not None and line.evidence["state"] == "interrupted"


async def test_a_remediation_still_mitigates_beside_an_investigation(
    make_engine: Any, store: Store
) -> None:
    rules = """
- {name: diagnose, when: {kind: disk}, do: [{step: {output: top}}], queue: investigation}
- {name: fix, when: {kind: disk}, do: [{step: {output: freed}}]}
"""
    engine, _ = await make_engine(rules, config())
    (accepted,) = await engine.submit([ev("disk")])
    await engine.drain()
    runs = {store.get_run(i).rule: store.get_run(i) for i in accepted.run_ids}
    assert {r: run.queue for r, run in runs.items()} == {"diagnose": "investigation",
                                                         "fix": "remediation"}  # fmt: skip
    incident, _, timeline = store.get_incident(runs["fix"].incident_id)
    assert incident.status is IncidentStatus.MITIGATED
    assert [t.message for t in timeline if t.message.startswith("mitigated")] == [
        "mitigated: run of fix succeeded"
    ]
    assert [t.ref for t in timeline if t.kind == "evidence"] == [runs["diagnose"].id]
    assert store.list_runs(queue="investigation") == [runs["diagnose"]]
    assert store.list_runs(queue=Queue.REMEDIATION) == [runs["fix"]]


async def test_a_dry_run_investigation_leaves_no_evidence(make_engine: Any, store: Store) -> None:
    rules = "- {name: d, when: {kind: disk}, do: [step], queue: investigation, dry_run: true}"
    engine, actions = await make_engine(rules, config())
    (accepted,) = await engine.submit([ev("disk")])
    await engine.drain()
    run = store.get_run(accepted.run_ids[0])
    assert run.state is RunState.SKIPPED and actions.started == []
    _, _, timeline = store.get_incident(run.incident_id)
    assert "evidence" not in [t.kind for t in timeline]


def test_evidence_shares_keep_short_outputs_whole_and_split_the_rest() -> None:
    assert _shares([10, 100_000, 50], 1000) == [10, 940, 50]
    assert _shares([900, 900, 900], 1000) == [333, 333, 334]
    assert _shares([], 1000) == []
    run = Run(rule="d", event_id="e", target="t", fingerprint="f", actions=["step"],
              queue="remediation", incident_id="i", state=RunState.SUCCEEDED,
              steps=[StepRecord(action="step", params={}, output="x")])  # fmt: skip
    assert evidence_line(run, 0.0) is None  # a remediation's output is the run's, not evidence
    run.queue = "investigation"
    assert evidence_line(run, 0.0) is not None


async def test_a_pool_admits_its_slots_and_as_many_waiting_runs_then_holds_planning() -> None:
    """Past its backlog `admit` waits: the backpressure that bounds claimed runs in memory."""
    pool = Pool(2)
    for _ in range(4):
        await pool.admit()
    blocked = asyncio.create_task(pool.admit())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not blocked.done() and pool.waiting == 4
    await pool.acquire()
    await pool.acquire()
    assert (pool.running, pool.waiting) == (2, 2)
    pool.release()  # a run ends: its place goes to the admission that waited
    async with asyncio.timeout(BOUND):
        await blocked
    assert (pool.running, pool.waiting) == (1, 3)
    await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    waiting.cancel()  # shutdown while waiting for a slot: the place is given back
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (pool.running, pool.waiting) == (2, 1)
    blocked = asyncio.create_task(pool.admit())
    await asyncio.sleep(0)
    assert blocked.done()  # the place the cancelled run gave back


def test_the_queue_gauges_read_each_pool() -> None:
    pools = Pools(Concurrency(total=3, investigation=1))
    metrics = Metrics()
    metrics.watch_queues(pools)
    pools["investigation"].running, pools["remediation"].waiting = 1, 2
    text = metrics.exposition().decode()
    assert 'opsmedic_runs_in_flight{queue="investigation"} 1.0' in text
    assert 'opsmedic_runs_in_flight{queue="remediation"} 0.0' in text
    assert 'opsmedic_runs_waiting{queue="remediation"} 2.0' in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("actions:\n  concurrency:\n    investigation: 0\n",
         "opsmedic.yaml:3:20: actions.concurrency.investigation: Input should be greater than or "
         "equal to 1"),
        ("actions:\n  concurrency: {investigation: many}\n",
         "opsmedic.yaml:2:32: actions.concurrency.investigation: Input should be a valid integer, unable to parse "
         "string as an integer"),
        ("actions:\n  concurrency: {investigations: 2}\n",
         "opsmedic.yaml:2:17: actions.concurrency.investigations: unknown field 'investigations' "
         "(did you mean investigation?)"),
    ],
)  # fmt: skip
def test_a_bad_investigation_pool_size_is_located(tmp_path: Path, text: str, expected: str) -> None:
    from opsmedic.config.loader import load_config

    (tmp_path / "opsmedic.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "opsmedic.yaml", [], environ={})
    found = [str(p) for p in info.value.problems]
    assert any(p.endswith(expected) for p in found), found


def test_an_unknown_queue_is_refused_where_it_is_written_with_the_queues_there_are(
    tmp_path: Path,
) -> None:
    """Queues are the two the engine has pools for; a rule naming another would run in none."""
    path = tmp_path / "r.yaml"
    path.write_text("- name: a\n  when: {source: x}\n  do: [noop]\n  queue: logs\n")
    with pytest.raises(ConfigError) as info:
        load_rules(path, build_registry(load_entry_points=False))
    assert [str(p) for p in info.value.problems] == [
        f"{path}:4:10: [0].queue: Input should be 'remediation' or 'investigation' "
        "(known: investigation, remediation)"
    ]


def test_the_queues_rules_accept_are_the_queues_with_pools() -> None:
    """The rule schema spells its queues out (for its error message); each needs a pool."""
    accepted = set(get_args(RuleSpec.model_fields["queue"].annotation))
    assert accepted == {q.value for q in Queue} == set(Pools(Concurrency()))
