"""One submission's bad data fails that submission alone: the group commit and the engine's
batches are retried part by part (on SQLite and PostgreSQL, with the database refusing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config
from opsmedic.engine import journal as journal_module
from opsmedic.engine.journal import Journal
from opsmedic.engine.loop import Accepted, Engine
from opsmedic.errors import NotFoundError, StoreError, StoreRefused
from opsmedic.model import Event, RunState
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from opsmedic.store.store import Store

if __package__:
    from ...store_fixtures import make_event, make_run, refuse_resource, refuse_value
else:
    from store_fixtures import make_event, make_run, refuse_resource, refuse_value

# Past orjson's 255 levels and the standard encoder's recursion limit: it cannot be encoded.
DEEP = orjson.loads(b"[" * 1000 + b"]" * 1000)


@pytest.fixture
async def engine(store: Store, store_url: str, tmp_path: Path) -> AsyncIterator[Engine]:
    refuse_resource(store_url, "poison")
    (tmp_path / "rules.yaml").write_text("- {name: r, when: {source: app}, do: [{noop: {}}]}")
    reg = build_registry(load_entry_points=False)
    eng = Engine(settings={}, probe_once=None, ruleset=load_rules(tmp_path / "rules.yaml", reg), registry=reg, config=Config(),
                 store=store, clock=SystemClock())  # fmt: skip
    await eng.start()
    try:
        yield eng
    finally:
        await eng.close()


def app(resource: str, **kw: object) -> Event:
    return Event(source="app", resource=resource, **kw)  # type: ignore[arg-type]


async def test_a_submission_the_database_refuses_fails_alone(engine: Engine, store: Store) -> None:
    """Submitted together they share one batch and one commit; the database refuses one event:
    its submission gets StoreRefused, every other one is committed and its run is executed."""
    batches = [[app(f"svc{i}"), app(f"svc{i}b")] for i in range(6)]
    batches.insert(3, [app("fine"), app("poison")])
    results = await asyncio.gather(*(engine.submit(b) for b in batches), return_exceptions=True)
    assert isinstance(results[3], StoreRefused)
    await engine.drain()
    for i, result in enumerate(results):
        if i == 3:
            continue
        assert isinstance(result, list)
        for accepted in result:
            assert isinstance(accepted, Accepted)
            assert store.get_event(accepted.event_id).resource.startswith("svc")
            (run_id,) = accepted.run_ids
            assert store.get_run(run_id).state is RunState.SUCCEEDED
    for event in batches[3]:  # nothing of the refused submission was kept
        with pytest.raises(NotFoundError):
            store.get_event(event.id)
    (later,) = await engine.submit([app("after")])  # and the engine goes on
    assert store.get_event(later.event_id).resource == "after"


async def test_an_event_that_cannot_be_encoded_is_refused_before_it_is_queued(
    engine: Engine, store: Store
) -> None:
    good, bad = [app("svc")], [app("deep", payload={"x": DEEP})]
    results = await asyncio.gather(engine.submit(good), engine.submit(bad), return_exceptions=True)
    assert isinstance(results[1], StoreRefused)
    assert "event 0: payload: cannot be stored as JSON" in str(results[1])
    assert isinstance(results[0], list)
    assert store.get_event(results[0][0].event_id).resource == "svc"
    with pytest.raises(NotFoundError):
        store.get_event(bad[0].id)


async def test_the_group_commit_retries_the_other_parts_of_a_refused_batch(
    store: Store, store_url: str
) -> None:
    """A run's final state shares a journal commit with a refused event: the state is kept."""
    refuse_resource(store_url, "poison")
    event = make_event()
    run = make_run(event)
    store.record([event], [run])
    run.state, run.message, run.finished_at = RunState.SUCCEEDED, "done", event.time + 1
    journal = Journal(store, lambda: event.time)
    journal.start()
    try:
        refused, finished = await asyncio.gather(
            journal.record([make_event(resource="poison")], []),
            journal.finish(run),
            return_exceptions=True,
        )
    finally:
        await journal.close()
    assert isinstance(refused, StoreRefused)
    assert finished is None
    assert store.get_run(run.id).state is RunState.SUCCEEDED


async def test_a_run_whose_result_is_refused_is_still_finished_and_no_other_is_lost(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    """Runs finishing together share commits; the database refuses one run's result (its
    message, written from the event): that run is recorded bare, never left `running`, and
    every other run's result is recorded whole."""
    refuse_value(store_url, "runs", "message", "%poison%", on="UPDATE")
    rule = "- {name: r, when: {source: app}, do: [{noop: {message: '{{ event.resource }}'}}]}"
    (tmp_path / "rules.yaml").write_text(rule)
    reg = build_registry(load_entry_points=False)
    engine = Engine(settings={}, probe_once=None, ruleset=load_rules(tmp_path / "rules.yaml", reg), registry=reg,
                    config=Config(), store=store, clock=SystemClock())  # fmt: skip
    await engine.start()
    try:
        batches = [[app(f"svc{i}"), app(f"svc{i}b")] for i in range(8)]
        batches.insert(4, [app("poison")])
        results = await asyncio.gather(*(engine.submit(b) for b in batches))
        await engine.drain()
    finally:
        await engine.close()
    runs = {a.event_id: store.get_run(a.run_ids[0]) for r in results for a in r}
    assert len(runs) == 17
    for batch in batches:
        for event in batch:
            run = runs[event.id]
            assert run.state is RunState.SUCCEEDED, run
            if event.resource == "poison":
                assert run.message == "succeeded; its details could not be stored (see the log)"
                assert [(s.action, s.state) for s in run.steps] == [("noop", RunState.SUCCEEDED)]
            else:
                assert run.message == f"1 step(s) succeeded: {event.resource}"
                assert run.steps[0].message == event.resource


async def test_a_run_result_is_retried_while_the_store_is_unavailable(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short outage (two failed commits) does not leave the run `running` until a restart."""
    event = make_event()
    run = make_run(event)
    store.record([event], [run])
    run.state, run.message, run.finished_at = RunState.SUCCEEDED, "done", event.time + 1
    real, outages = store.record, [StoreError("store down"), StoreError("store down")]

    def flaky(*args: object, **kw: object) -> list[str]:
        if outages:
            raise outages.pop()
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "record", flaky)
    monkeypatch.setattr(journal_module, "FINISH_RETRY_S", (0.0, 0.0, 0.0))
    journal = Journal(store, lambda: event.time)
    journal.start()
    try:
        await journal.finish(run)
    finally:
        await journal.close()
    assert not outages
    assert store.get_run(run.id).state is RunState.SUCCEEDED
