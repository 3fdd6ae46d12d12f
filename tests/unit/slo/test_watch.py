"""SloWatch (the SLOs' task in `opsmedic run`) over a real store: a burn event that could not
be stored is announced again, and one SLO that cannot be evaluated leaves the others going."""

from __future__ import annotations

from typing import Any

from opsmedic.config.slos import SloConfig
from opsmedic.errors import StoreError
from opsmedic.model import Event, Status
from opsmedic.slo.watch import SloWatch
from opsmedic.store import Store
from slo_helpers import Log, call
from store_fixtures import T0

M = int(T0 // 60)
# An hour of nothing but errors pages on both page tiers.
PAGED = [("1h", Status.FIRING), ("6h", Status.FIRING)]


class RefusingOnce:
    """The engine's submit over a store that refuses the first write."""

    def __init__(self) -> None:
        self.refused = 0
        self.stored: list[Event] = []

    async def __call__(self, events: list[Event]) -> None:
        if not self.refused:
            self.refused += 1
            raise StoreError("database is locked")
        self.stored += events


def slo(name: str, **more: Any) -> SloConfig:
    data = {"name": name, "objective": 99.9,
            "sli": {"events": {"total": ["source=lb"], "bad": ["severity=critical"]}}, **more}  # fmt: skip
    return SloConfig.model_validate(data)


def watch(store: Store, slos: list[SloConfig], emit: Any, log: Log, at: list[float]) -> SloWatch:
    return SloWatch(slos, [], store, now=lambda: at[0], call=call, emit=emit, log=log)


def pages(events: list[Event]) -> list[tuple[str, Status]]:
    return [(e.labels["window"], e.status) for e in events if e.severity == "page"]


async def test_a_burn_event_the_store_refused_is_announced_again(store: Store) -> None:
    store.slo_samples.add({("api", m): [0, 100, 0] for m in range(M - 59, M + 1)})
    emit, log, at = RefusingOnce(), Log(), [T0]
    slo_watch = watch(store, [slo("api")], emit, log, at)
    await slo_watch.evaluate()
    assert emit.refused == 1 and emit.stored == []
    assert [e for e, _ in log.lines if e != "slo.burn"] == ["slo.emit_failed"]
    at[0] = T0 + 30
    await slo_watch.evaluate()
    assert pages(emit.stored) == PAGED
    # Once stored, it is not announced a third time.
    at[0] = T0 + 60
    await slo_watch.evaluate()
    assert pages(emit.stored) == PAGED


async def test_a_resolve_the_store_refused_is_announced_again(store: Store) -> None:
    store.slo_samples.add({("api", m): [0, 100, 0] for m in range(M - 59, M + 1)})
    emit, log, at = RefusingOnce(), Log(), [T0]
    emit.refused = 1  # the page is stored; the store refuses the resolve
    slo_watch = watch(store, [slo("api")], emit, log, at)
    await slo_watch.evaluate()
    assert pages(emit.stored) == PAGED
    # Healthy again for a long while: every alert resolves.
    later = T0 + 4 * 86400
    store.slo_samples.add({("api", m): [100, 100, 0] for m in range(M + 1, int(later // 60) + 1)})
    emit.refused, at[0] = 0, later
    await slo_watch.evaluate()
    assert pages(emit.stored) == PAGED
    at[0] = later + 30
    await slo_watch.evaluate()
    assert pages(emit.stored) == [*PAGED, ("1h", Status.RESOLVED), ("6h", Status.RESOLVED)]


async def test_an_slo_that_cannot_be_evaluated_leaves_the_others_going(store: Store) -> None:
    # Past the config's checks (it refuses .nan): whatever one SLO's evaluation raises.
    broken = slo("broken").model_copy(update={"objective": float("nan")})
    store.slo_samples.add({(n, m): [0, 100, 0] for n in ("api", "broken")
                           for m in range(M - 59, M + 1)})  # fmt: skip
    emit, log, at = RefusingOnce(), Log(), [T0]
    emit.refused = 1
    slo_watch = watch(store, [broken, slo("api")], emit, log, at)
    await slo_watch.evaluate()
    failed = [f for e, f in log.lines if e == "slo.evaluation_failed"]
    assert [f["slo"] for f in failed] == ["broken"] and "ValueError" in failed[0]["error"]
    assert {e.labels["slo"] for e in emit.stored} == {"api"}
    assert slo_watch.evaluator.statuses["api"].state == "exhausted"
