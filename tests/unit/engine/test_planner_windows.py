"""The planner's public read of its throttles and limits (the dashboard's Rules page)."""

from __future__ import annotations

from pathlib import Path

from test_planner import T0, ev, planned, ruleset

from opsmedic.engine.planner import Planner, WindowState

RULES = """
- {name: t, when: {source: disk}, do: [noop], throttle: {once_within: 60s, per: [host]},
   limit: {max_runs: 2, within: 100s, per: [resource]}}
- {name: idle, when: {source: none}, do: [noop], throttle: {once_within: 60s}}
"""


def test_windows_show_what_holds_and_until_when(tmp_path: Path) -> None:
    p = Planner(ruleset(tmp_path, RULES), lambda: 0.0)
    assert p.windows(T0) == {}
    assert [planned(p, ev(t, host=h)) for t, h in ((0, "a"), (10, "b"), (20, "c"))] == [1, 1, 0]
    held = p.windows(T0 + 30)
    assert list(held) == ["t"]  # `idle` holds nothing: left out
    state = held["t"]
    # Newest first; c was refused by the limit, so its throttle was never taken.
    assert state.throttles == [
        WindowState(("b",), 1, 1, T0 + 70),
        WindowState(("a",), 1, 1, T0 + 60),
    ]
    # Full: paused until the oldest of the two runs leaves the 100 s window.
    assert state.limits == [WindowState(("/var/log",), 2, 2, T0 + 100)]
    later = p.windows(T0 + 65)["t"]  # a's throttle has passed; the limit still counts it
    assert [w.key for w in later.throttles] == [("b",)]
    assert p.windows(T0 + 105)["t"].limits == [WindowState(("/var/log",), 1, 2, None)]
    assert p.windows(T0 + 200) == {}


def test_windows_are_cut_to_the_first_shown_with_their_totals(tmp_path: Path) -> None:
    p = Planner(ruleset(tmp_path, RULES), lambda: 0.0)
    for n in range(5):
        planned(p, ev(n, host=f"h{n}", resource=f"/r{n}"))
    state = p.windows(T0 + 10, shown=2)["t"]
    assert [w.key for w in state.throttles] == [("h4",), ("h3",)] and state.throttles_total == 5
    assert len(state.limits) == 2 and state.limits_total == 5
