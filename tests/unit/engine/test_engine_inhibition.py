"""Inhibition through the engine on a real store (SQLite and PostgreSQL): a source resolved or
closed by hand, or silent past resolve_timeout, stops holding, and its next hold is news."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_engine_silences import one, probe

from opsmedic.clock import ManualClock
from opsmedic.config.schema import Config
from opsmedic.engine.loop import Engine
from opsmedic.lifecycle import Action
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from opsmedic.store.store import Store

RULES = "- {name: restart-web, when: {kind: web}, do: [{noop: {message: restart}}]}\n"
NODE_DOWN = {"name": "node-down", "source_matchers": ["kind=NodeDown"],
             "target_matchers": ["kind=web"], "equal": ["host"]}  # fmt: skip


def new_engine(store: Store, tmp_path: Path, clock: ManualClock, **config: Any) -> Engine:
    (tmp_path / "rules.yaml").write_text(RULES)
    registry = build_registry(load_entry_points=False)
    return Engine(settings={}, probe_once=None, registry=registry,
                  config=Config.model_validate({"inhibit": [NODE_DOWN], **config}), store=store,
                  ruleset=load_rules(tmp_path / "rules.yaml", registry), clock=clock)  # fmt: skip


def held_lines(store: Store, event_id: str) -> list[str]:
    _, _, timeline = store.get_incident(store.get_event(event_id).incident_id)
    return [t.ref for t in timeline if t.kind == "rule_held"]


@pytest.mark.parametrize("action", [Action.RESOLVE, Action.CLOSE])
async def test_a_source_resolved_or_closed_by_hand_stops_inhibiting(
    store: Store, tmp_path: Path, action: Action
) -> None:
    clock = ManualClock()
    engine = new_engine(store, tmp_path, clock)
    await engine.start()
    try:
        source = await one(engine, probe("web-3", kind="NodeDown"))
        first = await one(engine, probe("web-3"))
        assert first.held and not first.run_ids
        # Its probe died: no resolve comes. The on-call ends its incident (API or CLI).
        incident = store.get_event(source.event_id).incident_id
        store.incident_action(incident, action, "ann", clock.now())
        engine.acted_on_incidents()  # what the API does; the CLI's are seen within a second
        clock.advance(1)
        lifted = await one(engine, probe("web-3"))
        assert lifted.held == () and lifted.run_ids
        # Still down after all: its next repeat holds again, and that hold is news.
        clock.advance(1)
        await one(engine, probe("web-3", kind="NodeDown"))
        clock.advance(1)
        await engine._catch_up()  # a later look at the person's action leaves the repeat be
        again = await one(engine, probe("web-3"))
    finally:
        await engine.close()
    assert again.held and not again.run_ids
    assert held_lines(store, again.event_id) == [first.event_id, again.event_id]


async def test_a_source_not_repeated_within_resolve_timeout_expires(
    store: Store, tmp_path: Path
) -> None:
    clock = ManualClock()
    engine = new_engine(store, tmp_path, clock)
    await engine.start()
    try:
        await one(engine, probe("web-3", kind="NodeDown"))
        clock.advance(200)
        await one(engine, probe("web-3", kind="NodeDown"))  # a repeat keeps it firing
        clock.advance(250)
        kept = await one(engine, probe("web-3"))
        clock.advance(50)  # 300 s after the last repeat
        expired = await one(engine, probe("web-3"))
        clock.advance(10)
        await one(engine, probe("web-3", kind="NodeDown"))  # down again: a new episode
        again = await one(engine, probe("web-3"))
    finally:
        await engine.close()
    assert kept.held and not kept.run_ids
    assert expired.held == () and expired.run_ids
    assert again.held
    assert held_lines(store, again.event_id) == [kept.event_id, again.event_id]
