"""Holds: which services are failing, whose rule runs wait for them, and what the planner does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsmedic.config.loader import read_config
from opsmedic.config.services import ServiceConfig
from opsmedic.engine.holds import Hold, Holds
from opsmedic.engine.planner import Planner
from opsmedic.model import Event, IncidentChanges, Status
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry, check_config

T0 = 1_700_000_000.0


def hold(service: str, dependency: str, cause: str) -> Hold:
    """The hold of `service`'s runs while `dependency` fails, with the reason it gives."""
    why = f"held: {service} depends on {dependency}, which is failing ({cause})"
    return Hold(dependency, cause, why)


def service(*depends_on: str, **kw: Any) -> ServiceConfig:
    return ServiceConfig(versions=Path("/srv/v"), switch=[{"noop": {}}],
                         depends_on=list(depends_on), **kw)  # fmt: skip


def alert(svc: str, t: float = 0, **kw: Any) -> Event:
    """A probe's alert about `svc`, already joined to incident `inc-<svc>` (as the engine does)."""
    fields: dict[str, Any] = {"source": "http", "kind": "probe", "resource": f"{svc}-page",
                              "labels": {"service": svc}, "severity": "critical",
                              "incident_id": f"inc-{svc}", "time": T0 + t}  # fmt: skip
    return Event(**(fields | kw))


def deployed(svc: str, state: str, t: float = 0, env: str = "production") -> Event:
    """The release controller's state change of a deployment of `svc` (releases/events.py)."""
    return Event(source="opsmedic", kind="deployment", resource=svc,
                 labels={"env": env, "version": "v2", "state": state}, time=T0 + t,
                 payload={"deployment_id": f"dep-{state}"})  # fmt: skip


SEED = {"data": service(), "info": service("data")}


def test_no_service_depending_on_another_means_no_holds_at_all() -> None:
    """The engine keeps None and never asks: a config without depends_on costs nothing."""
    assert Holds.of({}) is None
    assert Holds.of({"data": service(), "info": service()}) is None
    assert Holds.of(SEED) is not None


def test_info_holds_while_an_alert_about_data_fires_and_not_after_it_resolved() -> None:
    holds = Holds(SEED)
    assert holds.observe(alert("info")) is None  # data is fine: info's rules run
    assert holds.observe(alert("data")) is None  # data's own rules always run
    assert holds.observe(alert("info", 1)) == hold("info", "data", "incident inc-data")
    assert holds.observe(alert("info", 2)).reason == (  # type: ignore[union-attr]
        "held: info depends on data, which is failing (incident inc-data)"
    )
    assert holds.observe(alert("data", 3, status=Status.RESOLVED)) is None
    assert holds.observe(alert("info", 4)) is None


@pytest.mark.parametrize("severity", ["info", "debug", ""])
def test_an_alert_below_warning_does_not_make_a_service_failing(severity: str) -> None:
    holds = Holds(SEED)
    holds.observe(alert("data", severity=severity))
    assert holds.observe(alert("info", 1)) is None


def test_a_severity_dropping_to_info_ends_the_failure() -> None:
    holds = Holds(SEED)
    holds.observe(alert("data"))
    holds.observe(alert("data", 1, severity="info"))  # same alert (fingerprint), now info
    assert holds.observe(alert("info", 2)) is None


def test_a_rolled_back_deployment_holds_for_hold_dependents_then_no_more() -> None:
    holds = Holds({"data": service(hold_dependents=60.0), "info": service("data")})
    holds.observe(deployed("data", "started"))
    holds.observe(deployed("data", "verifying", 1))
    assert holds.observe(alert("info", 2)) is None  # verifying is not failing
    holds.observe(deployed("data", "rolled_back", 5))
    assert holds.observe(alert("info", 6)) == hold(
        "info", "data", "deployment dep-rolled_back rolled_back"
    )
    assert holds.observe(alert("info", 64.9)) is not None
    assert holds.observe(alert("info", 65)) is None  # 60 s after the rollback


def test_a_failed_deployment_holds_and_a_promotion_there_ends_it() -> None:
    holds = Holds(SEED)  # default hold_dependents: 5 min
    holds.observe(deployed("data", "failed"))
    assert holds.observe(alert("info", 250)).cause == "deployment dep-failed failed"  # type: ignore[union-attr]
    holds.observe(deployed("data", "promoted", 251, env="staging"))  # another environment
    assert holds.observe(alert("info", 252)) is not None
    holds.observe(deployed("data", "promoted", 253))
    assert holds.observe(alert("info", 254)) is None


def test_hold_dependents_zero_never_holds_for_a_deployment() -> None:
    holds = Holds({"data": service(hold_dependents=0), "info": service("data")})
    holds.observe(deployed("data", "rolled_back"))
    assert holds.observe(alert("info")) is None


def test_dependencies_count_transitively_and_the_deployment_events_of_info_are_about_info() -> None:
    holds = Holds({"db": service(), "data": service("db"), "info": service("data")})
    holds.observe(alert("db"))
    assert holds.observe(alert("info", 1)) == hold("info", "db", "incident inc-db")
    assert holds.observe(alert("data", 1)) == hold("data", "db", "incident inc-db")
    assert holds.observe(deployed("info", "rolled_back", 2)) is not None


def test_events_naming_no_service_or_an_unknown_one_are_not_attributed() -> None:
    """Not an error: an unknown labels.service is just not about a declared service."""
    holds = Holds(SEED)
    holds.observe(alert("nosuch"))
    holds.observe(Event(source="disk", resource="data", severity="critical", time=T0))
    assert holds.observe(alert("info", 1)) is None
    assert holds.observe(alert("nosuch", 1)) is None
    assert holds.observe(Event(source="disk", resource="info", time=T0 + 1)) is None


def test_a_cycle_the_config_check_refuses_does_not_loop_here() -> None:
    holds = Holds({"a": service("b"), "b": service("a")})
    holds.observe(alert("a"))
    assert holds.observe(alert("b", 1)) == hold("b", "a", "incident inc-a")
    # b's alert fired too: a holds for b; nothing goes round a → b → a.
    assert holds.observe(alert("a", 1)) == hold("a", "b", "incident inc-b")


def test_a_hold_is_news_once_per_rule_alert_and_cause_and_again_after_a_recovery() -> None:
    holds = Holds(SEED)
    holds.observe(alert("data"))
    changes = IncidentChanges()
    for t in (1, 2, 3):
        event = alert("info", t)
        hold = holds.observe(event)
        assert hold is not None
        holds.held(["restart-info", "page"], event, hold, changes)
    assert [e.message for e in changes.timeline] == [
        "rule restart-info matched; held: info depends on data, which is failing (incident inc-data)",
        "rule page matched; held: info depends on data, which is failing (incident inc-data)",
    ]
    assert {(e.kind, e.incident_id) for e in changes.timeline} == {("rule_held", "inc-info")}
    holds.observe(alert("data", 4, status=Status.RESOLVED))
    holds.observe(alert("data", 5))
    event = alert("info", 6)
    found = holds.held(["page"], event, holds.observe(event), changes)  # type: ignore[arg-type]
    assert [news for *_, news in found] == [True]


def test_the_planner_holds_after_for_and_in_flight_and_spends_no_throttle(tmp_path: Path) -> None:
    """A held match waits out `for:` as usual, uses up no throttle or limit: the first match
    after the dependency recovered runs at once."""
    (tmp_path / "r.yaml").write_text(
        "- {name: r, when: {source: http, for: 10s}, do: [noop],"
        " throttle: {once_within: 1h}, limit: {max_runs: 1, within: 1h}}"
    )
    planner = Planner(load_rules(tmp_path, build_registry()), lambda: 0.0)
    assert planner.decide(alert("info"), held=True).held == []  # waiting for `for:`
    held = planner.decide(alert("info", 20), held=True)
    assert (held.held, held.runs, held.recorded) == (["r"], [], [])
    assert planner.stats.held == 1
    ran = planner.decide(alert("info", 21))
    assert [run.rule for run, _ in ran.runs] == ["r"]
    assert planner.decide(alert("info", 22), held=True).held == []  # in flight: not held


CONFIG = """services:
  data:
    versions: /tmp
    switch: [noop]
{data}
  info:
    versions: /tmp
    switch: [noop]
    depends_on: [data]
"""


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("    hold_dependents: soon", "opsmedic.yaml:5:22: services.data.hold_dependents: "),
        ("    hold_dependents: -5s", "opsmedic.yaml:5:22: services.data.hold_dependents: "),
        ("    depends_on: [info]", "opsmedic.yaml:5:18: services.data.depends_on[0]: data → info → "
                                  "… → data: a cycle"),
    ],
)  # fmt: skip
def test_a_bad_hold_dependents_or_a_cycle_is_refused_where_it_is(
    tmp_path: Path, data: str, expected: str
) -> None:
    """A cycle cannot reach the engine: `opsmedic check` (and every start) refuses it."""
    path = tmp_path / "opsmedic.yaml"
    path.write_text(CONFIG.format(data=data))
    registry = build_registry(load_entry_points=False)
    read = read_config(path, registry.settings())
    problems = [str(p) for p in read.problems + check_config(read.data, read.located, registry)]
    assert any(expected in p for p in problems), problems


def test_hold_dependents_is_a_duration_of_five_minutes_by_default(tmp_path: Path) -> None:
    path = tmp_path / "opsmedic.yaml"
    path.write_text(CONFIG.format(data="    hold_dependents: 90s"))
    config = read_config(path, build_registry(load_entry_points=False).settings()).config
    assert config is not None
    assert (config.services["data"].hold_dependents, config.services["info"].hold_dependents) == (
        90.0, 300.0)  # fmt: skip
