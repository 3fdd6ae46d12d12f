"""The engine's lease on its runs (engine/leases.py), on a real store (SQLite and PostgreSQL):
renewed while a run is in flight; only `opsmedic run` (start with recover) takes others' runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from pydantic import BaseModel

from opsmedic.clock import ManualClock
from opsmedic.config.schema import Config, RunLease
from opsmedic.engine.loop import Engine
from opsmedic.model import Event, Outcome, RunState
from opsmedic.plugins import ActionContext, ActionSpec
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from opsmedic.store.schema import runs as run_table
from opsmedic.store.store import Store

if __package__:
    from ...store_fixtures import make_event, make_run
else:
    from store_fixtures import make_event, make_run

BOUND = 30.0  # seconds: a bound on waits for what must happen, never a measured time


class NoParams(BaseModel):
    pass


def _engine(store: Store, tmp_path: Path, clock: ManualClock, gate: asyncio.Event) -> Engine:
    async def held(params: NoParams, ctx: ActionContext) -> Outcome:
        await gate.wait()
        return Outcome(ok=True, message="released")

    reg = build_registry(load_entry_points=False)
    reg.actions["held"] = ActionSpec("held", NoParams, held)
    (tmp_path / "r.yaml").write_text("- {name: r, when: {source: disk}, do: [{held: {}}]}")
    config = Config()
    config.actions.lease = RunLease(duration=60.0, renew_every=0.01)
    return Engine(settings={}, probe_once=None, ruleset=load_rules(tmp_path, reg), registry=reg,
                  config=config, store=store, clock=clock)  # fmt: skip


def _lease(store_url: str, run_id: str) -> float | None:
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            query = sa.select(run_table.c.lease_until).where(run_table.c.id == run_id)
            found: float | None = conn.execute(query).scalar_one()
            return found
    finally:
        engine.dispose()


async def test_a_run_in_flight_has_its_lease_renewed(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    clock, gate = ManualClock(), asyncio.Event()
    engine = _engine(store, tmp_path, clock, gate)
    await engine.start(recover=True)
    try:
        (accepted,) = await engine.submit([Event(source="disk")])
        (run_id,) = accepted.run_ids
        assert _lease(store_url, run_id) == clock.now() + 60.0
        clock.advance(3600)  # an hour on: only renewals move the lease this far
        async with asyncio.timeout(BOUND):
            while (_lease(store_url, run_id) or 0.0) < clock.now():  # noqa: ASYNC110 - the store is the signal
                await asyncio.sleep(0.01)
        assert _lease(store_url, run_id) == clock.now() + 60.0
    finally:
        gate.set()
        await engine.close()
    assert store.get_run(run_id).state is RunState.SUCCEEDED


async def test_a_start_without_recover_leaves_running_runs_alone(
    store: Store, tmp_path: Path
) -> None:
    """A replay, `deploy`, `rollback`, `flags`: their engine never takes a run, not even one
    without an owner (that a live service of an older version may be running)."""
    event = make_event()
    run = make_run(event)
    store.record([event], [run], claim=[run.id], started_at=event.time)
    engine = _engine(store, tmp_path, ManualClock(), asyncio.Event())
    assert await engine.start() == []
    await engine.close()
    assert store.get_run(run.id).state is RunState.RUNNING
