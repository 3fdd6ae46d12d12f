"""The planner's outcome for every rule an event matched: one per match, none for the rest."""

from __future__ import annotations

from pathlib import Path

from opsmedic.engine.decisions import Outcome, RuleOutcome
from opsmedic.engine.planner import Planner
from opsmedic.model import Event
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry

T0 = 1_700_000_000.0
RULES = """
- {name: a, when: {source: disk}, do: [noop], throttle: {once_within: 1m}}
- {name: b, when: {source: disk, for: 10s}, do: [noop]}
- {name: c, when: {source: dns}, do: [noop]}
"""


def planner(tmp_path: Path) -> Planner:
    (tmp_path / "r.yaml").write_text(RULES)
    return Planner(load_rules(tmp_path, build_registry()), lambda: 0.0)


def disk(t: float) -> Event:
    return Event(source="disk", resource="/", host="h1", time=T0 + t)


def test_each_match_has_one_outcome_in_rule_order(tmp_path: Path) -> None:
    p = planner(tmp_path)
    first = p.decide(disk(0))
    (run, _) = first.runs[0]
    assert first.outcomes == [
        RuleOutcome("a", Outcome.PLANNED, f"run {run.id}"),
        RuleOutcome("b", Outcome.WAITING_FOR, "for: 10s; matching for 0s"),
    ]
    # a's run is still in flight: the same alert is not run twice at once
    second = p.decide(disk(5))
    assert [(o.rule, o.outcome) for o in second.outcomes] == [
        ("a", Outcome.IN_FLIGHT), ("b", Outcome.WAITING_FOR)
    ]  # fmt: skip
    p.done(run)
    third = p.decide(disk(12))
    assert [(o.rule, o.outcome) for o in third.outcomes] == [
        ("a", Outcome.THROTTLED), ("b", Outcome.PLANNED)
    ]  # fmt: skip
    assert third.outcomes[0].detail == "once_within 60s; last run at 22:13:20"


def test_a_held_match_is_held_and_no_match_has_no_outcome(tmp_path: Path) -> None:
    p = planner(tmp_path)
    held = p.decide(disk(0), held=True)
    assert [(o.rule, o.outcome) for o in held.outcomes] == [
        ("a", Outcome.HELD), ("b", Outcome.WAITING_FOR)
    ]  # fmt: skip
    assert p.decide(Event(source="web", resource="/", time=T0)).outcomes == []


def test_a_match_of_a_disabled_rule_is_said_and_never_runs(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        RULES + "- {name: paused, when: {source: disk}, do: [noop], enabled: false}\n"
        "- {name: off_dns, when: {source: dns}, do: [noop], enabled: false}\n"
    )
    p = Planner(load_rules(tmp_path, build_registry()), lambda: 0.0)
    found = p.decide(disk(0))
    assert [r.rule for r, _ in found.runs] == ["a"]
    assert found.outcomes[-1] == RuleOutcome("paused", Outcome.DISABLED, "enabled: false")
    assert [o.rule for o in found.outcomes] == ["a", "b", "paused"]  # off_dns: not matched
