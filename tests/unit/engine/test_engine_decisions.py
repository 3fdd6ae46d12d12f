"""Why not? through the engine on a real store (SQLite and PostgreSQL): every rule an event
matched gets an outcome, and suppressed ones are stored compactly and coalesced on the timeline."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from opsmedic.clock import Clock, ManualClock, SystemClock
from opsmedic.config.schema import Config
from opsmedic.engine.decisions import Outcome, RuleOutcome
from opsmedic.engine.loop import Engine
from opsmedic.errors import StoreRefused
from opsmedic.model import Event
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from opsmedic.store.store import Store

RULES = """
- name: archive
  when: {source: disk, value: "> 85"}
  do: [noop]
  throttle: {once_within: 10m}
- name: slow
  when: {source: disk, kind: slow, for: 30s}
  do: [noop]
- name: capped
  when: {source: disk, kind: cap}
  do: [noop]
  limit: {max_runs: 1, within: 1h}
- name: other
  when: {source: dns}
  do: [noop]
"""
T0 = 1_800_000_000.0  # event times: the throttles and `for:` count on these


@pytest.fixture
async def make_engine(store: Store, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    engines: list[Engine] = []

    async def make(record: bool = True, clock: Clock | None = None) -> Engine:
        (tmp_path / "rules.yaml").write_text(RULES)
        registry = build_registry(load_entry_points=False)
        config = Config(record_suppressed=record)
        engine = Engine(settings={}, probe_once=None, registry=registry, config=config,
                        store=store, ruleset=load_rules(tmp_path / "rules.yaml", registry),
                        clock=clock or SystemClock())  # fmt: skip
        await engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.close()


def disk(at: float, value: float = 90.0, **kw: Any) -> Event:
    return Event(source="disk", resource="/var", host="h1", value=value, time=T0 + at, **kw)


def outcomes(decisions: list[RuleOutcome]) -> dict[str, Outcome]:
    return {d.rule: d.outcome for d in decisions}


async def test_each_matched_rule_gets_its_outcome_and_unmatched_rules_none(
    make_engine: Callable[..., Any],
) -> None:
    engine = await make_engine()
    (first,) = await engine.submit([disk(0, kind="slow")])
    await engine.drain()
    assert outcomes(first.decisions) == {"archive": Outcome.PLANNED, "slow": Outcome.WAITING_FOR}
    planned = next(d for d in first.decisions if d.rule == "archive")
    assert planned.detail == f"run {first.run_ids[0]}"
    (second,) = await engine.submit([disk(31, kind="slow")])
    await engine.drain()
    assert outcomes(second.decisions) == {"archive": Outcome.THROTTLED, "slow": Outcome.PLANNED}
    throttled = next(d for d in second.decisions if d.rule == "archive")
    assert "once_within 600s; last run at" in throttled.detail
    (limited,) = await engine.submit([disk(40, kind="cap")])
    await engine.drain()  # its run finished: the next is not in flight but over the limit
    (over,) = await engine.submit([disk(41, kind="cap")])
    await engine.drain()
    assert outcomes(limited.decisions)["capped"] is Outcome.PLANNED
    assert outcomes(over.decisions)["capped"] is Outcome.OVER_LIMIT
    assert (
        "limit: 1 runs within 3600s" in dict((d.rule, d.detail) for d in over.decisions)["capped"]
    )


async def test_a_flood_of_throttled_events_is_one_counted_row_and_one_timeline_line(
    make_engine: Callable[..., Any], store: Store
) -> None:
    """An ingest sender repeating one alert grows the events, never the decision rows. Seen
    times are when opsmedic recorded the decisions (its clock), the event's time apart."""
    clock = ManualClock(T0 + 5000)
    engine = await make_engine(clock=clock)
    first = (await engine.submit([disk(0)]))[0]
    await engine.drain()
    batches = []
    for chunk in range(3):  # several batches: the line is counted up in place across them
        clock.advance(60)
        batches.append(await engine.submit([disk(40 + chunk * 100 + i) for i in range(100)]))
    await engine.drain()
    rows = {(r.rule, r.outcome): r for r in store.suppressed.list()}
    assert set(rows) == {("archive", "throttled")}
    throttled = rows[("archive", "throttled")]
    assert throttled.count == 300
    assert (throttled.first_seen, throttled.last_seen) == (T0 + 5060, T0 + 5180)
    assert throttled.last_event_time == T0 + 339
    assert throttled.first_event_id == batches[0][0].event_id
    assert throttled.last_event_id == batches[-1][-1].event_id
    assert throttled.incident_id and throttled.target == "h1:/var"
    _, _, lines = store.get_incident(throttled.incident_id)
    suppressed = [line for line in lines if line.kind == "suppressed"]
    (line,) = suppressed
    assert line.message.startswith(
        "rule archive throttled \u00d7300 since 09:24:20, last 09:26:20: once_within 600s"
    )
    assert line.time == T0 + 5060
    assert first.run_ids


async def test_recording_off_stores_no_decision_but_the_reply_still_has_them(
    make_engine: Callable[..., Any], store: Store
) -> None:
    engine = await make_engine(record=False)
    await engine.submit([disk(0)])
    await engine.drain()
    (again,) = await engine.submit([disk(40)])
    await engine.drain()
    assert outcomes(again.decisions)["archive"] is Outcome.THROTTLED
    assert store.suppressed.list() == []


async def test_suppressed_rows_are_pruned_with_the_rest(
    make_engine: Callable[..., Any], store: Store
) -> None:
    """By when the decisions were recorded: an alert firing for long (its repeats keep their
    old start as event time) is still listed by `--since` and kept by a prune while it is
    suppressed."""
    clock = ManualClock(T0 + 100)
    engine = await make_engine(clock=clock)
    await engine.submit([disk(0, kind="slow")])
    await engine.drain()
    clock.advance(900)
    await engine.submit([disk(40, kind="slow")])  # received at T0 + 1000
    await engine.drain()
    assert len(store.suppressed.list()) == 2
    (recent,) = store.suppressed.list(since=T0 + 500)
    assert (recent.outcome, recent.last_event_time) == ("throttled", T0 + 40)
    assert store.prune(T0 + 500).suppressed == 1  # the `for:` wait recorded at T0 + 100
    assert [r.outcome for r in store.suppressed.list()] == ["throttled"]
    assert store.prune(T0 + 1001).suppressed == 1


async def test_a_failed_commit_counts_nothing_and_the_timeline_starts_a_new_line(
    make_engine: Callable[..., Any], store: Store
) -> None:
    """Counts in memory that the store never got are dropped, never written later."""
    engine = await make_engine()
    await engine.submit([disk(0)])
    await engine.drain()
    await engine.submit([disk(1), disk(2)])
    taken = disk(3)
    await engine.submit([taken])
    await engine.drain()
    with pytest.raises(StoreRefused):  # the id is taken: the store refuses the whole batch
        await engine.submit([disk(4), disk(5, id=taken.id)])
    await engine.submit([disk(6)])
    await engine.drain()
    (row,) = store.suppressed.list()
    assert row.count == 4 and row.last_event_id != taken.id  # +1, +2, +3, +6
    _, _, lines = store.get_incident(str(row.incident_id))
    counted = [x.message.split(" since ")[0] for x in lines if x.kind == "suppressed"]
    assert counted == ["rule archive throttled \u00d73", "rule archive throttled \u00d71"]
