"""Runs by hand, without a store: the planner's lock and limit, the event, disabled rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmedic.engine.manual import event_by_hand
from opsmedic.engine.planner import Planner
from opsmedic.errors import RunRefused
from opsmedic.model import Event
from opsmedic.rules.loader import load_rules
from opsmedic.rules.ruleset import RuleSet
from opsmedic.runtime import build_registry

T0 = 1_700_000_000.0
RULES = """
- name: clean
  when: {source: disk}
  do: [noop]
  limit: {max_runs: 2, within: 1h}
- name: quiet
  enabled: false
  when: {source: disk}
  do: [noop]
"""


def ruleset(tmp_path: Path, text: str = RULES) -> RuleSet:
    (tmp_path / "r.yaml").write_text(text)
    return load_rules(tmp_path, build_registry())


def ev(t: float = 0, host: str = "h1") -> Event:
    return Event(source="manual", host=host, time=T0 + t)


def test_a_run_by_hand_takes_the_in_flight_lock_and_a_place_in_the_limit(tmp_path: Path) -> None:
    planner = Planner(ruleset(tmp_path), lambda: T0)
    rule = planner.ruleset.get("clean")
    assert rule is not None
    first = planner.by_hand(rule, ev(), dry_run=False)
    with pytest.raises(RunRefused, match="in flight"):
        planner.by_hand(rule, ev(1), dry_run=False)  # the same alert, still running
    # The live engine's event for that alert is suppressed by the same lock.
    live = Event(source="manual", host="h1", time=T0 + 2, fingerprint=first.fingerprint)
    assert planner.decide(live).runs == []
    planner.done(first)
    planner.done(planner.by_hand(rule, ev(3), dry_run=False))
    with pytest.raises(RunRefused, match="limit reached: 2 runs within 3600s for h1"):
        planner.by_hand(rule, ev(4), dry_run=False)
    # Another target has its own window; an hour later the first one has room again.
    planner.done(planner.by_hand(rule, ev(5, host="h2"), dry_run=False))
    planner.done(planner.by_hand(rule, ev(3601), dry_run=False))


def test_a_dry_run_by_hand_takes_neither_lock_nor_limit(tmp_path: Path) -> None:
    planner = Planner(ruleset(tmp_path), lambda: T0)
    rule = planner.ruleset.get("clean")
    assert rule is not None
    runs = [planner.by_hand(rule, ev(t), dry_run=True) for t in range(5)]
    assert all(r.dry_run for r in runs)
    planner.done(planner.by_hand(rule, ev(6), dry_run=False))  # nothing was taken


def test_give_back_returns_the_lock_and_the_limit_place(tmp_path: Path) -> None:
    planner = Planner(ruleset(tmp_path), lambda: T0)
    rule = planner.ruleset.get("clean")
    assert rule is not None
    for t in range(4):  # each refused by the store, say: none counts
        event = ev(t)
        planner.give_back(planner.by_hand(rule, event, dry_run=False), rule, event)
    planner.by_hand(rule, ev(5), dry_run=False)


def test_a_global_or_rule_dry_run_still_applies_by_hand(tmp_path: Path) -> None:
    text = "- {name: leashed, when: {source: disk}, do: [noop], dry_run: true}"
    rule = ruleset(tmp_path, text).get("leashed")
    assert rule is not None
    assert Planner(ruleset(tmp_path, text), lambda: T0).by_hand(rule, ev(), dry_run=False).dry_run
    planner = Planner(ruleset(tmp_path), lambda: T0, dry_run=True)
    clean = planner.ruleset.get("clean")
    assert clean is not None
    assert planner.by_hand(clean, ev(), dry_run=False).dry_run


def test_disabled_rules_are_kept_apart_and_never_matched(tmp_path: Path) -> None:
    rules = ruleset(tmp_path)
    assert [r.name for r in rules] == ["clean"]
    assert rules.get("quiet") is None
    assert rules.disabled["quiet"].enabled is False
    assert [r.name for r in rules.match(Event(source="disk"))] == ["clean"]


def test_the_event_by_hand_is_validated_as_an_ingested_one() -> None:
    event = event_by_hand({"host": "web1", "labels": {"n": 3}, "id": "x1", "time": 5.0}, T0)
    assert (event.source, event.kind, event.host) == ("manual", "run_by_hand", "web1")
    assert event.labels == {"n": "3"}  # labels are text, as ingested
    assert event.time == T0  # a run's limit counts on now
    assert event.payload == {"client_id": "x1", "given_time": 5.0}
    assert event.id != "x1"
    for data, where in (({"labels": "x"}, "labels"), ({"source": ""}, "source"),
                        ({"status": "open"}, "status"), ({"host": "a\nb"}, "host"),
                        ({"resource": "r" * 5000}, "resource")):  # fmt: skip
        with pytest.raises(ValueError, match=f"^{where}: "):
            event_by_hand(data, T0)
    with pytest.raises(ValueError, match="JSON object"):
        event_by_hand([], T0)
