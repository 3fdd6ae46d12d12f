"""Held runs through the engine on a real store (SQLite and PostgreSQL): info's remediation
waits while data, which it depends on, is failing, and runs again once data recovered."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config
from opsmedic.config.services import ServiceConfig
from opsmedic.engine.loop import Engine
from opsmedic.logs import configure_logging
from opsmedic.metrics import Metrics
from opsmedic.model import Deployment, DeploymentState, Event, RunState, Status
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from opsmedic.store.store import Store

RULES = """
- {name: restart-info, when: {labels.service: info}, do: [{noop: {message: restart}}]}
- {name: page-data, when: {labels.service: data}, do: [noop]}
- {name: any-web, when: {kind: web}, do: [noop]}
"""
REASON = "held: info depends on data, which is failing"


def services(**data: Any) -> dict[str, ServiceConfig]:
    def one(**kw: Any) -> ServiceConfig:
        return ServiceConfig(versions=Path("/srv"), switch=[{"noop": {}}], **kw)

    return {"data": one(**data), "info": one(depends_on=["data"])}


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """The log lines, configured before the engine takes its logger."""
    stream = io.StringIO()
    configure_logging("info", stream)
    yield stream
    structlog.reset_defaults()


def new_engine(store: Store, tmp_path: Path) -> Engine:
    (tmp_path / "rules.yaml").write_text(RULES)
    registry = build_registry(load_entry_points=False)
    config = Config()
    config.services = services(hold_dependents=60.0)
    return Engine(settings={}, probe_once=None, registry=registry, config=config, store=store,
                  ruleset=load_rules(tmp_path / "rules.yaml", registry),
                  clock=SystemClock())  # fmt: skip


@pytest.fixture
async def engine(store: Store, tmp_path: Path, logs: io.StringIO) -> AsyncIterator[Engine]:
    engine = new_engine(store, tmp_path)
    await engine.start()
    yield engine
    await engine.close()


def probe(service: str, status: Status = Status.FIRING, **kw: Any) -> Event:
    return Event(source="http", kind="web", resource=f"{service}-page",
                 labels={"service": service}, severity="critical", status=status,
                 **kw)  # fmt: skip


async def one(engine: Engine, event: Event) -> Any:
    (accepted,) = await engine.submit([event])
    await engine.drain()
    return accepted


async def test_info_is_held_while_data_fires_and_runs_again_once_data_resolved(
    engine: Engine, store: Store, logs: io.StringIO
) -> None:
    metrics = Metrics()
    engine.on_held = metrics.hold
    assert len((await one(engine, probe("data"))).run_ids) == 2  # data's own rules run
    held = [await one(engine, probe("info")) for _ in range(3)]
    for accepted in held:
        assert accepted.run_ids == []
        assert [rule for rule, _ in accepted.held] == ["restart-info", "any-web"]
        assert all(why.startswith(REASON + " (incident ") for _, why in accepted.held)
    event = store.get_event(held[0].event_id)
    incident, _, timeline = store.get_incident(event.incident_id)
    assert incident.title == "web on info"
    lines = [t.message for t in timeline if t.kind == "rule_held"]
    assert len(lines) == 2  # once per rule and cause, not per repeat of the alert
    data_event = store.get_event(store.list_runs(rule="page-data")[0].event_id)
    assert lines[0] == f"rule restart-info matched; {REASON} (incident {data_event.incident_id})"
    assert [x for x in timeline if x.kind == "rule_matched"] == []
    logged = [x for x in logs.getvalue().splitlines() if "event=run.held" in x]
    assert len(logged) == 2 and "rule=restart-info" in logged[0]
    assert b'opsmedic_runs_held_total{dependency="data",rule="restart-info"} 3.0' in (
        metrics.exposition()
    )
    assert store.list_runs(rule="restart-info") == []

    await one(engine, probe("data", Status.RESOLVED))
    ran = await one(engine, probe("info"))
    assert ran.held == () and len(ran.run_ids) == 2
    (run,) = store.list_runs(rule="restart-info")
    assert run.state is RunState.SUCCEEDED and run.steps[0].message == "restart"


async def test_a_rollback_of_data_holds_info_for_hold_dependents(engine: Engine) -> None:
    """The release controller's own event (resource = the service) makes data failing."""
    rolled_back = Event(source="opsmedic", kind="deployment", resource="data",
                        labels={"env": "production", "version": "v2", "state": "rolled_back"},
                        severity="warning", payload={"deployment_id": "d-17"})  # fmt: skip
    await one(engine, rolled_back)
    accepted = await one(engine, probe("info"))
    assert accepted.run_ids == []
    assert dict(accepted.held)["restart-info"] == f"{REASON} (deployment d-17 rolled_back)"
    later = await one(engine, probe("info", time=rolled_back.time + 61))
    assert later.held == () and len(later.run_ids) == 2


async def test_no_depends_on_an_unknown_service_or_no_service_is_never_held(
    engine: Engine,
) -> None:
    await one(engine, probe("data"))
    for event in (
        probe("data"),  # data depends on nothing
        probe("nosuch"),  # not a declared service: not attributed, not an error
        Event(source="http", kind="web", resource="info"),  # no labels.service
    ):
        accepted = await one(engine, event)
        assert accepted.held == () and accepted.run_ids, event


@pytest.mark.parametrize(
    ("states", "held"),
    [(["rolled_back"], True), (["failed"], True), (["rolled_back", "promoted"], False),
     (["promoted"], False)],
)  # fmt: skip
async def test_a_rollback_before_a_restart_still_holds_info(
    store: Store, tmp_path: Path, states: list[str], held: bool
) -> None:
    """What the events taught is in memory; a deployment's end is in the store, read at start."""
    now = time.time()
    for i, state in enumerate(states):
        at = now - 10 + i
        store.start_deployment(Deployment(service="data", env="production", version=f"v{i}",
                                          state=DeploymentState(state), created_at=at,
                                          updated_at=at, finished_at=at))  # fmt: skip
    first = store.list_deployments("data")[-1]
    store.start_deployment(Deployment(service="data", env="staging", version="v9",
                                      state=DeploymentState.ROLLED_BACK, created_at=now - 600,
                                      updated_at=now - 600, finished_at=now - 600))  # fmt: skip
    engine = new_engine(store, tmp_path)
    await engine.start()
    try:
        accepted = await one(engine, probe("info"))
    finally:
        await engine.close()
    if held:
        assert (
            dict(accepted.held)["restart-info"] == f"{REASON} (deployment {first.id} {states[0]})"
        )
    else:
        assert accepted.held == () and accepted.run_ids
