"""`explain` on a real store (SQLite and PostgreSQL): each match's outcome and its history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config
from opsmedic.engine.decisions import Outcome
from opsmedic.engine.explain import RuleVerdict, explain_stored
from opsmedic.engine.loop import Engine
from opsmedic.model import Event, Status
from opsmedic.rules.loader import load_rules
from opsmedic.rules.ruleset import RuleSet
from opsmedic.runtime import build_registry
from opsmedic.store.store import Store

RULES = """
- name: archive
  when: {source: disk}
  do: [noop]
  throttle: {once_within: 10m, per: [host]}
- name: slow
  when: {source: disk, for: 30s}
  do: [noop]
- name: capped
  when: {source: disk, kind: cap}
  do: [noop]
  limit: {max_runs: 1, within: 1h}
"""
T0 = 1_800_000_000.0


@pytest.fixture
async def engine(store: Store, tmp_path: Path) -> AsyncIterator[Engine]:
    (tmp_path / "rules.yaml").write_text(RULES)
    registry = build_registry(load_entry_points=False)
    engine = Engine(settings={}, probe_once=None, registry=registry, config=Config(
        record_suppressed=False), store=store, clock=SystemClock(),
        ruleset=load_rules(tmp_path / "rules.yaml", registry))  # fmt: skip
    await engine.start()
    yield engine
    await engine.close()


async def feed(engine: Engine, *events: Event) -> None:
    for event in events:  # one at a time: each run finishes before the next event
        await engine.submit([event])
        await engine.drain()


def disk(n: int, at: float, **kw: Any) -> Event:
    return Event(id=f"ev-{n}", source="disk", resource="/var", host="h1", time=T0 + at, **kw)


def verdicts(engine: Engine, store: Store, event_id: str) -> dict[str, RuleVerdict]:
    ruleset: RuleSet = engine.planner.ruleset
    found = explain_stored(ruleset, store.get_event(event_id), store)
    return {v.rule: v for v in found}


async def test_history_explains_what_recording_off_left_unrecorded(
    engine: Engine, store: Store
) -> None:
    """With nothing recorded, the outcomes come from the store's history alone."""
    await feed(engine, disk(0, 0), disk(1, 20, status=Status.RESOLVED), disk(2, 25),
               disk(3, 40), disk(4, 60, kind="cap"), disk(5, 61, kind="cap"))  # fmt: skip
    first = verdicts(engine, store, "ev-0")
    assert first["archive"].outcome is Outcome.PLANNED and first["capped"].match is False
    assert first["archive"].detail.endswith("(succeeded)")
    resolved = verdicts(engine, store, "ev-1")
    assert not resolved["slow"].match and resolved["slow"].outcome is None
    later = verdicts(engine, store, "ev-3")
    assert later["archive"].outcome is Outcome.THROTTLED
    run_id = first["archive"].detail.split()[1]
    assert later["archive"].detail == f"last run {run_id} at 08:00:00, once_within 600s"
    slow = later["slow"]
    assert slow.outcome is Outcome.WAITING_FOR and slow.detail == "for: 30s; matching for 15s"
    assert slow.history == [
        "a resolved event at 08:00:20 (ev-1) reset the `for:` clock: "
        "status == 'firing' (implicit) did not hold",
        "matching since 08:00:25: 15s of for: 30s",
    ]
    assert verdicts(engine, store, "ev-4")["capped"].outcome is Outcome.PLANNED
    over = verdicts(engine, store, "ev-5")["capped"]
    assert over.outcome is Outcome.OVER_LIMIT
    assert over.detail.startswith("limit reached: 1 runs within 3600s")  # its skipped run
    assert "limit: 1 runs within 3600s for h1:/var (limit 1)" in over.history


async def test_every_condition_is_tested_and_shown_with_its_value(
    engine: Engine, store: Store
) -> None:
    await feed(engine, disk(0, 0, kind="other"))
    capped = verdicts(engine, store, "ev-0")["capped"]
    assert [(c.condition, c.holds, c.actual) for c in capped.conditions] == [
        ("source == 'disk'", True, "disk"), ("kind == 'cap'", False, "other"),
        ("status == 'firing' (implicit)", True, "firing"),
    ]  # fmt: skip
    assert capped.detail == "kind == 'cap' does not hold (actual: 'other')"
