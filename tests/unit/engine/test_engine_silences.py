"""Silences through the engine on a real store (SQLite and PostgreSQL): a silenced event is
stored and joins its incident but starts nothing; the timeline says which silence held it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsmedic.clock import SystemClock
from opsmedic.config.matchers import Silence, new_silence
from opsmedic.config.schema import Config
from opsmedic.engine import muting
from opsmedic.engine.loop import Engine
from opsmedic.model import Event, RunState, Status
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from opsmedic.store.store import Store

RULES = """
- {name: restart-web, when: {kind: web}, do: [{noop: {message: restart}}]}
- {name: page-web, when: {kind: web, severity: critical}, do: [noop]}
- name: wait-for-gate
  when: {kind: gated}
  do: [{run_command: {argv: [sh, -c, "while [ ! -e \\"$0\\" ]; do sleep 0.02; done", GATE]}}]
"""


def new_engine(store: Store, tmp_path: Path, **config: Any) -> Engine:
    (tmp_path / "rules.yaml").write_text(RULES.replace("GATE", str(tmp_path / "gate")))
    registry = build_registry(load_entry_points=False)
    return Engine(settings={}, probe_once=None, registry=registry,
                  config=Config.model_validate(config), store=store,
                  ruleset=load_rules(tmp_path / "rules.yaml", registry),
                  clock=SystemClock())  # fmt: skip


@pytest.fixture
async def engine(store: Store, tmp_path: Path) -> AsyncIterator[Engine]:
    engine = new_engine(store, tmp_path)
    await engine.start()
    yield engine
    await engine.close()


def probe(host: str = "web-1", **kw: Any) -> Event:
    return Event(**{"source": "http", "kind": "web", "resource": "/health", "host": host,
                    "labels": {"env": "prod"}, "severity": "critical", **kw})  # fmt: skip


def silence(store: Store, *matchers: str, **kw: Any) -> Silence:
    made = new_silence(list(matchers), **{"now": time.time(), "starts_at": None,
                       "ends_at": None, "duration": 3600.0, "created_by": "cli ann",
                       "comment": "swapping the disk", **kw})  # fmt: skip
    store.silences.add(made)
    return made


async def one(engine: Engine, event: Event) -> Any:
    (accepted,) = await engine.submit([event])
    await engine.drain()
    return accepted


async def test_a_silenced_event_is_stored_joins_its_incident_and_starts_nothing(
    engine: Engine, store: Store
) -> None:
    first = await one(engine, probe())
    assert len(first.run_ids) == 2
    made = silence(store, "host=web-1", "labels.env=~prod|dr")
    engine.muting.changed()  # what the API does; the CLI's writes are seen within a second
    held = [await one(engine, probe()) for _ in range(3)]
    for accepted in held:
        assert accepted.run_ids == []
        assert [rule for rule, _ in accepted.held] == ["restart-web", "page-web"]
        reason = dict(accepted.held)["restart-web"]
        assert reason.startswith(f"silenced by silence {made.id}: swapping the disk (until ")
        assert reason.endswith(", by cli ann)")
    event = store.get_event(held[0].event_id)  # stored, and in the same incident as before
    assert event.incident_id == store.get_event(first.event_id).incident_id
    _, _, timeline = store.get_incident(event.incident_id)
    lines = [t.message for t in timeline if t.kind == "rule_held"]
    # Once per silence, rule and alert; not once per repeat of the alert.
    assert lines == [f"rule restart-web matched; {dict(held[0].held)['restart-web']}",
                     f"rule page-web matched; {dict(held[0].held)['page-web']}"]  # fmt: skip
    assert len(store.list_runs()) == 2  # only the first event's
    other = await one(engine, probe("web-2"))  # another host: not silenced
    assert other.held == () and len(other.run_ids) == 2

    store.silences.expire(made.id[:8], time.time())
    engine.muting.changed()
    again = await one(engine, probe())
    # The held matches used up no throttle or limit: the first match after runs.
    assert again.held == () and len(again.run_ids) == 2


async def test_the_engine_sees_a_silence_another_process_wrote(
    engine: Engine, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI writes only the store: the engine compares the silences' version before a
    batch, at most every REFRESH_EVERY seconds (0 here, so the test never waits)."""
    assert (await one(engine, probe())).run_ids
    monkeypatch.setattr(muting, "REFRESH_EVERY", 0.0)
    made = silence(store, "kind=web", "severity!=info")
    assert [why[:40] for _, why in (await one(engine, probe())).held] == [
        f"silenced by silence {made.id}"[:40]] * 2  # fmt: skip


async def test_silences_survive_a_restart_and_pending_ones_wait_for_their_start(
    store: Store, tmp_path: Path
) -> None:
    now = time.time()
    active = silence(store, "host=web-1")
    silence(store, "host=web-2", starts_at=now + 3600)
    engine = new_engine(store, tmp_path)  # a new process: it reads the silences at start
    await engine.start()
    try:
        one_ = await one(engine, probe())
        two = await one(engine, probe("web-2"))
    finally:
        await engine.close()
    assert one_.run_ids == [] and active.id in one_.held[0][1]
    assert two.held == () and two.run_ids


async def test_a_silence_added_while_a_run_is_planned_does_not_cancel_it(
    engine: Engine, store: Store, tmp_path: Path
) -> None:
    """Documented: a silence decides what starts after it; a run already planned or running
    goes on to its end (it was decided when nothing held it)."""
    gated = probe(kind="gated")
    (accepted,) = await engine.submit([gated])
    assert len(accepted.run_ids) == 1
    silence(store, "kind=gated")
    engine.muting.changed()
    later = await one_nowait(engine, probe("web-9", kind="gated"))  # another alert
    assert later.run_ids == [] and later.held  # the next match is held...
    (tmp_path / "gate").touch()
    await engine.drain()
    run = store.get_run(accepted.run_ids[0])
    assert run.state is RunState.SUCCEEDED  # ...and the one planned before ran to its end


async def one_nowait(engine: Engine, event: Event) -> Any:
    (accepted,) = await engine.submit([event])
    return accepted


async def test_a_maintenance_window_and_an_inhibit_rule_hold_through_the_engine(
    store: Store, tmp_path: Path
) -> None:
    now = time.time()
    engine = new_engine(store, tmp_path, maintenance=[{
        "name": "db patching", "hosts": ["db-1"], "start": _iso(now - 60), "end": _iso(now + 3600),
    }], inhibit=[{"name": "node-down", "source_matchers": ["kind=NodeDown"],
                  "target_matchers": ["kind=web"], "equal": ["host"]}])  # fmt: skip
    await engine.start()
    try:
        in_window = await one(engine, probe("db-1"))
        await one(engine, probe("web-3", kind="NodeDown"))
        inhibited = await one(engine, probe("web-3"))
        elsewhere = await one(engine, probe("web-4"))
        await one(engine, probe("web-3", kind="NodeDown", status=Status.RESOLVED))
        lifted = await one(engine, probe("web-3"))
    finally:
        await engine.close()
    assert dict(in_window.held)["restart-web"] == "silenced by maintenance window db patching"
    why = dict(inhibited.held)["restart-web"]
    assert why.startswith("inhibited by incident ") and why.endswith("(inhibit rule node-down)")
    assert elsewhere.held == () and elsewhere.run_ids
    assert lifted.held == () and lifted.run_ids


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


async def test_live_a_silence_is_judged_when_the_event_arrives_not_at_its_own_time(
    engine: Engine, store: Store
) -> None:
    """An Alertmanager repeat keeps its alert's old startsAt as its time, and an ingest sender
    chooses its time: live, what holds is what is in force now."""
    now = time.time()
    made = silence(store, "host=web-1")  # made after the alert started firing
    engine.muting.changed()
    repeat = await one(engine, probe(time=now - 3600))  # startsAt an hour ago
    assert repeat.run_ids == [] and made.id in repeat.held[0][1]
    backdated = await one(engine, probe(time=now - 25 * 3600))  # past the silences horizon
    assert backdated.run_ids == [] and made.id in backdated.held[0][1]
    # A silence that was in force at the repeat's startsAt but has ended holds it no more.
    silence(store, "host=web-2", now=now - 7200, duration=3600.0)
    engine.muting.changed()
    ended = await one(engine, probe("web-2", time=now - 5400))
    assert ended.held == () and ended.run_ids


async def test_a_replay_judges_silences_at_each_events_own_time(
    engine: Engine, store: Store
) -> None:
    now = time.time()
    engine.in_event_order = True  # what `opsmedic replay` sets
    past = silence(store, "host=web-2", now=now - 7200, duration=3600.0)
    silence(store, "host=web-1")
    engine.muting.changed()
    then_silenced = await one(engine, probe("web-2", time=now - 5400))
    assert then_silenced.run_ids == [] and past.id in then_silenced.held[0][1]
    before_silence = await one(engine, probe(time=now - 3600))
    assert before_silence.held == () and before_silence.run_ids


async def test_a_silence_row_the_engine_cannot_use_is_skipped_not_fatal_to_the_others(
    engine: Engine, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row written before starts and ends were bounded, ending past year 9999: the others
    still hold, and the skipped one is logged."""
    made = silence(store, "host=web-1")
    now = time.time()
    store.silences.add(Silence(id="0" * 24, matchers=made.matchers, starts_at=now,
                               ends_at=now + 99999999 * 86400.0, created_by="cli old",
                               comment="forever", created_at=now))  # fmt: skip
    engine.muting.changed()
    held = await one(engine, probe())
    assert held.run_ids == [] and made.id in held.held[0][1]
    logged = capsys.readouterr()
    assert "engine.silence_skipped" in logged.out + logged.err
    assert "engine.silences_unread" not in logged.out + logged.err


async def test_an_inhibit_rules_hold_is_on_the_timeline_again_after_its_source_fired_again(
    store: Store, tmp_path: Path
) -> None:
    engine = new_engine(store, tmp_path, inhibit=[{
        "name": "node-down", "source_matchers": ["kind=NodeDown"],
        "target_matchers": ["kind=web"], "equal": ["host"]}])  # fmt: skip
    await engine.start()
    try:
        await one(engine, probe("web-3", kind="NodeDown"))
        first = await one(engine, probe("web-3"))
        await one(engine, probe("web-3"))  # a repeat: no line of its own
        await one(engine, probe("web-3", kind="NodeDown", status=Status.RESOLVED))
        await one(engine, probe("web-3", kind="NodeDown"))  # the node goes down again
        again = await one(engine, probe("web-3"))
    finally:
        await engine.close()
    assert first.held and again.held
    incident = store.get_event(again.event_id).incident_id
    _, _, timeline = store.get_incident(incident)
    held = [t.ref for t in timeline if t.kind == "rule_held"]
    assert held == [first.event_id] * 2 + [again.event_id] * 2  # two rules, each time
