"""The planner's decisions: `for:`, in-flight lock, throttle, limit and escalation, dry-run."""

from __future__ import annotations

from pathlib import Path

from opsmedic.engine.planner import Planner
from opsmedic.model import Event, RunState, Status
from opsmedic.rules.loader import load_rules
from opsmedic.rules.ruleset import RuleSet
from opsmedic.runtime import build_registry

T0 = 1_700_000_000.0


def ruleset(tmp_path: Path, text: str) -> RuleSet:
    (tmp_path / "r.yaml").write_text(text)
    return load_rules(tmp_path, build_registry())


def ev(t: float, value: float = 95, **kw: object) -> Event:
    fields: dict[str, object] = {"source": "disk", "resource": "/var/log", "host": "h1"}
    fields.update(kw)
    # Event times start at T0: a zero time means "now" to Event.
    return Event(value=value, time=T0 + t, **fields)  # type: ignore[arg-type]


def planned(planner: Planner, event: Event) -> int:
    decision = planner.decide(event)
    for run, _ in decision.runs:
        planner.done(run)  # runs finish at once here; in-flight has its own test
    return len(decision.runs)


def test_for_waits_until_the_condition_held_long_enough(tmp_path: Path) -> None:
    """`for: 30s` fires on the first event 30 s after the condition began, not before."""
    p = Planner(ruleset(tmp_path, "- {name: r, when: {value: '> 85', for: 30s}, do: [noop]}"),
                lambda: 0.0)  # fmt: skip
    assert [planned(p, ev(t)) for t in (0, 10, 29.9, 30)] == [0, 0, 0, 1]


def test_for_restarts_when_the_condition_breaks(tmp_path: Path) -> None:
    """A reading below the threshold, or a resolved event, resets the `for:` clock."""
    p = Planner(ruleset(tmp_path, "- {name: r, when: {value: '> 85', for: 30s}, do: [noop]}"),
                lambda: 0.0)  # fmt: skip
    assert planned(p, ev(0)) == 0
    assert planned(p, ev(20, value=50)) == 0  # breaks the streak
    assert planned(p, ev(31)) == 0  # a new streak starts here
    assert planned(p, ev(45, status=Status.RESOLVED)) == 0
    assert planned(p, ev(50)) == 0
    assert planned(p, ev(80)) == 1


def test_for_is_tracked_per_alert(tmp_path: Path) -> None:
    """Two resources have two clocks: one breaking does not reset the other."""
    p = Planner(ruleset(tmp_path, "- {name: r, when: {value: '> 85', for: 10s}, do: [noop]}"),
                lambda: 0.0)  # fmt: skip
    planned(p, ev(0, resource="/a"))
    planned(p, ev(0, resource="/b"))
    planned(p, ev(5, value=1, resource="/b"))
    assert planned(p, ev(10, resource="/a")) == 1
    assert planned(p, ev(10, resource="/b")) == 0


def test_throttle_fires_once_within_the_window_per_group(tmp_path: Path) -> None:
    """once_within 10m per host: one run per host per 10 minutes, the rest suppressed."""
    rules = (
        "- {name: r, when: {source: disk}, do: [noop], throttle: {once_within: 10m, per: [host]}}"
    )
    p = Planner(ruleset(tmp_path, rules), lambda: 0.0)
    assert planned(p, ev(0)) == 1
    assert planned(p, ev(1, resource="/other")) == 0  # same host
    assert planned(p, ev(2, host="h2")) == 1
    assert planned(p, ev(599)) == 0
    assert planned(p, ev(600)) == 1
    assert p.stats.suppressed_throttle == 2


def test_limit_pauses_the_target_and_escalates_once(tmp_path: Path) -> None:
    """max_runs 2 within 1h: the third is recorded as skipped with one escalation event."""
    rules = "- {name: r, when: {source: disk}, do: [noop], limit: {max_runs: 2, within: 1h}}"
    p = Planner(ruleset(tmp_path, rules), lambda: 0.0)
    assert planned(p, ev(0)) == 1
    assert planned(p, ev(10)) == 1
    third = p.decide(ev(20))
    assert third.runs == []
    assert [r.state for r in third.recorded] == [RunState.SKIPPED]
    assert "limit reached" in third.recorded[0].message
    (escalation,) = third.escalations
    assert (escalation.source, escalation.kind) == ("opsmedic", "escalation")
    assert escalation.labels == {"rule": "r", "reason": "limit", "target": "h1:/var/log"}
    fourth = p.decide(ev(30))
    assert fourth.runs == fourth.recorded == fourth.escalations == []  # no storm
    assert planned(p, ev(30, resource="/other")) == 1  # other targets are not paused
    assert planned(p, ev(3601)) == 1  # the window slid past the first run


def test_a_pause_escalated_before_a_restart_is_not_escalated_again(tmp_path: Path) -> None:
    """Restored from the store: an escalation after the window's last run means the pause
    was escalated; one from before that run belongs to an earlier pause and does not count."""
    rules = "- {name: r, when: {source: disk}, do: [noop], limit: {max_runs: 2, within: 1h}}"
    first = Planner(ruleset(tmp_path, rules), lambda: 0.0)
    planned(first, ev(0))
    planned(first, ev(10))
    (escalation,) = first.decide(ev(20)).escalations

    restarted = Planner(first.ruleset, lambda: 0.0)
    restarted.restore([("r", "h1:/var/log", T0, None), ("r", "h1:/var/log", T0 + 10, None)])
    restarted.restore_escalations([escalation])
    again = restarted.decide(ev(30))
    assert again.runs == again.recorded == again.escalations == []

    earlier = Planner(first.ruleset, lambda: 0.0)
    earlier.restore([("r", "h1:/var/log", T0, None), ("r", "h1:/var/log", T0 + 25, None)])
    earlier.restore_escalations([escalation])  # from before the run at 25: an older pause
    assert len(earlier.decide(ev(30)).escalations) == 1


def test_the_same_alert_never_runs_the_same_rule_twice_at_once(tmp_path: Path) -> None:
    """While a run is in flight for (rule, fingerprint), repeats are suppressed."""
    p = Planner(ruleset(tmp_path, "- {name: r, when: {source: disk}, do: [noop]}"), lambda: 0.0)
    first = p.decide(ev(0))
    assert len(first.runs) == 1
    assert p.decide(ev(1)).runs == []
    assert len(p.decide(ev(1, resource="/other")).runs) == 1
    p.done(first.runs[0][0])
    assert len(p.decide(ev(2)).runs) == 1


def test_in_flight_for_names_an_event_whose_rule_has_a_run_running(tmp_path: Path) -> None:
    """What replay asks before each event: only a matching rule's run for the same alert
    counts, and only until it is done (rules it does not match, other alerts: no)."""
    rules = (
        "- {name: r, when: {value: '> 85'}, do: [noop]}\n- {name: s, when: {host: h2}, do: [noop]}"
    )
    p = Planner(ruleset(tmp_path, rules), lambda: 0.0)
    assert not p.in_flight_for(ev(0))
    ((run, _),) = p.decide(ev(0)).runs
    assert p.in_flight_for(ev(1))
    assert not p.in_flight_for(ev(1, value=50))  # same alert, the rule does not match
    assert not p.in_flight_for(ev(1, resource="/other"))  # another alert
    p.done(run)
    p.done(run)  # a second done (a run not claimed, then finished) changes nothing
    assert not p.in_flight_for(ev(2))
    assert planned(p, ev(2)) == 1


def test_dry_run_is_global_or_per_rule(tmp_path: Path) -> None:
    """A rule's dry_run: true is dry even when the engine is live; global dry-run wins."""
    rules = ("- {name: a, when: {source: disk}, do: [noop]}\n"
             "- {name: b, when: {source: disk}, do: [noop], dry_run: true}\n")  # fmt: skip
    live = Planner(ruleset(tmp_path, rules), lambda: 0.0)
    assert [r.dry_run for r, _ in live.decide(ev(0)).runs] == [False, True]
    dry = Planner(ruleset(tmp_path, rules), lambda: 0.0, dry_run=True)
    assert [r.dry_run for r, _ in dry.decide(ev(0)).runs] == [True, True]


def test_one_event_may_fire_several_rules_in_file_order(tmp_path: Path) -> None:
    rules = ("- {name: a, when: {source: disk}, do: [noop]}\n"
             "- {name: b, when: {value: '> 90'}, do: [noop]}\n"
             "- {name: c, when: {source: http}, do: [noop]}\n")  # fmt: skip
    p = Planner(ruleset(tmp_path, rules), lambda: 0.0)
    assert [r.rule for r, _ in p.decide(ev(0)).runs] == ["a", "b"]


def test_limit_windows_survive_a_restart(tmp_path: Path) -> None:
    """Runs recorded before a restart still count against the limit."""
    rules = "- {name: r, when: {source: disk}, do: [noop], limit: {max_runs: 1, within: 1h}}"
    p = Planner(ruleset(tmp_path, rules), lambda: 0.0)
    p.restore([("r", "h1:/var/log", T0 + 100.0, None)])
    assert planned(p, ev(200)) == 0
    assert planned(p, ev(100 + 3600)) == 1


def test_limit_windows_per_a_label_survive_a_restart(tmp_path: Path) -> None:
    """A limit counted per a label is rebuilt from the runs' events, each in its own window."""
    rules = ("- {name: r, when: {source: disk}, do: [noop],\n"
             "   limit: {max_runs: 1, within: 1h, per: [labels.worker]}}")  # fmt: skip
    p = Planner(ruleset(tmp_path, rules), lambda: 0.0)
    w1, w2 = ev(0, labels={"worker": "w1"}), ev(0, labels={"worker": "w2"})
    p.restore([("r", w1.target, T0, w1)])
    assert planned(p, ev(10, labels={"worker": "w1"})) == 0  # its window is full
    assert planned(p, ev(10, labels={"worker": "w2"})) == 1  # another worker's is not
    assert w2.labels == {"worker": "w2"}


def test_reload_keeps_state_of_rules_that_remain(tmp_path: Path) -> None:
    rules = "- {name: r, when: {source: disk}, do: [noop], throttle: {once_within: 1h}}"
    p = Planner(ruleset(tmp_path, rules), lambda: 0.0)
    assert planned(p, ev(0)) == 1
    p.reload(ruleset(tmp_path, rules))
    assert planned(p, ev(10)) == 0


def test_details_say_seconds_as_people_read_them(tmp_path: Path) -> None:
    """To the millisecond at most, never in exponent notation: `for: 2w` is 1209600s, not
    1.2096e+06s; 12.299999952316284 (a float difference of event times) is 12.3."""
    p = Planner(ruleset(tmp_path, """
- {name: r, when: {value: '> 85', for: 2w}, do: [noop], limit: {max_runs: 1, within: 2w}}
"""), lambda: 0.0)  # fmt: skip
    p.decide(ev(0))
    (waiting,) = p.decide(ev(12.3)).outcomes
    assert waiting.detail == "for: 1209600s; matching for 12.3s"
    assert planned(p, ev(1_209_600)) == 1
    (over,) = p.decide(ev(1_209_601)).outcomes
    assert over.detail == "limit: 1 runs within 1209600s for h1:/var/log"
