"""End to end on two real BIND servers: the primary dies, DNS fails over; it returns, it fails back.

`opsmedic run` (in process) probes the primary; rules repoint `resolver.svc.test.` on the
secondary (rfc2136, TSIG) and reorder a resolv.conf. Waits are bounded; nothing asserts speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsmedic.dns.resolv_conf import nameservers
from opsmedic.model import Run, RunState
from opsmedic.runtime import Runtime, build, build_registry, run_forever
from services_dns import DnsPair

RECORD = "resolver.svc.test."
HOLD_DOWN = 3.0
WAIT_S = 60.0  # a bound on waiting for what must happen, not a measured figure


@dataclass
class World:
    rt: Runtime
    pair: DnsPair
    resolv: Path

    def runs(self, rule: str) -> list[Run]:
        assert self.rt.store is not None
        return sorted(self.rt.store.list_runs(rule=rule, limit=100), key=lambda r: r.created_at)

    def switches(self, rule: str) -> list[Run]:
        """Runs of `rule` that changed something (not skipped as already done)."""
        return [r for r in self.runs(rule) if r.steps and r.steps[0].state is RunState.SUCCEEDED]

    def record(self) -> list[str]:
        return self.pair.lookup(RECORD, "A", self.pair.secondary)

    def order(self) -> list[str]:
        return nameservers(self.resolv.read_text().splitlines())


def write_world(tmp: Path, pair: DnsPair) -> tuple[Path, Path]:
    p, s = pair.primary.address, pair.secondary.address
    resolv = tmp / "resolv.conf"
    resolv.write_text(f"search svc.test\nnameserver {p}\nnameserver {s}\noptions timeout:1\n")
    resolv.chmod(0o644)
    switch = {
        "rfc2136": {"server": s, "zone": "svc.test.", "name": RECORD, "primary": p,
                    "secondary": s, "ttl": 5, "tsig_key": pair.key_name},
        "resolv_conf": {"path": str(resolv), "primary": p, "secondary": s},
    }  # fmt: skip

    def steps(direction: str) -> list[dict[str, Any]]:
        return [{"dns_failover": {"direction": direction, k: v}} for k, v in switch.items()]

    rules = [
        {"name": "dns-failover", "when": {"source": "dns", "labels.transition": "down"},
         "do": steps("failover")},
        {"name": "dns-failback",
         "when": {"source": "dns", "status": "resolved", "labels.transition": "up"},
         "do": steps("failback")},
    ]  # fmt: skip
    (tmp / "rules").mkdir()
    (tmp / "rules" / "dns.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = tmp / "opsmedic.yaml"
    config.write_text(yaml.safe_dump({
        "store": f"sqlite:///{tmp / 'opsmedic.db'}",
        "rules_dir": "rules",
        "api": {"enabled": False},
        "tsig_keys": {pair.key_name: {"secret": {"file": str(pair.key_file)}}},
        # Retries long enough for a named to restart (test_a_failover_that_meets_…).
        "actions": {"retry": {"max_attempts": 6, "backoff": "0.5s"}},
        "probes": [{"name": "primary-dns", "type": "dns", "interval": "0.2s", "timeout": "2s",
                    "params": {"server": p, "name": "health.example.test",
                               "expect": ["192.0.2.53"], "timeout": "0.3s", "fall": 2,
                               "rise": 3, "hold_down": HOLD_DOWN}}],
    }, sort_keys=False))  # fmt: skip
    return config, resolv


@pytest.fixture
async def world(dns_pair: DnsPair, tmp_path: Path) -> AsyncIterator[World]:
    config, resolv = write_world(tmp_path, dns_pair)
    rt = build(config, registry=build_registry())
    stop = asyncio.Event()
    task = asyncio.create_task(run_forever(rt, stop))
    try:
        yield World(rt, dns_pair, resolv)
    finally:
        stop.set()
        await task


async def until(check: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.05)


async def test_failover_when_the_primary_dies_and_failback_after_rise_and_hold_down(
    world: World,
) -> None:
    primary, secondary = world.pair.primary.address, world.pair.secondary.address
    # Established up at start: the failback rule runs once and finds nothing to do.
    await until(
        lambda: [r for r in world.runs("dns-failback") if r.state.finished],
        "the state to be established",
    )
    (first,) = world.runs("dns-failback")
    assert [s.state for s in first.steps] == [RunState.SKIPPED, RunState.SKIPPED]
    assert world.record() == [primary]

    world.pair.primary.stop()
    await until(lambda: world.switches("dns-failover"), "the failover")
    await until(lambda: world.runs("dns-failover")[0].state.finished, "the failover to finish")
    (over,) = world.runs("dns-failover")
    assert over.state is RunState.SUCCEEDED, over.message
    assert world.record() == [secondary]
    assert world.order() == [secondary, primary]
    assert over.steps[0].details["from"] == primary and over.steps[0].details["to"] == secondary

    world.pair.primary.start()
    await until(lambda: world.switches("dns-failback"), "the failback")
    await until(lambda: world.runs("dns-failback")[-1].state.finished, "the failback to finish")
    back = world.switches("dns-failback")[-1]
    assert back.state is RunState.SUCCEEDED, back.message
    assert world.record() == [primary]
    assert world.order() == [primary, secondary]
    # Not before the hold-down, however quickly the primary answered again.
    assert back.created_at - over.created_at >= HOLD_DOWN

    # Each switch was announced: one incident-shaped pair of events per backend.
    assert world.rt.store is not None
    announced = [e for e in world.rt.store.list_events(limit=1000) if e.source == "opsmedic"]
    assert sorted((e.labels["backend"], str(e.status)) for e in announced) == [
        ("resolv_conf", "firing"), ("resolv_conf", "resolved"),
        ("rfc2136", "firing"), ("rfc2136", "resolved"),
    ]  # fmt: skip


@pytest.mark.parametrize("period", [0.2, 0.5], ids=["every-probe", "every-few-probes"])
async def test_a_flapping_primary_fails_over_at_most_once_per_hold_down(
    world: World, period: float
) -> None:
    await until(lambda: world.runs("dns-failback"), "the state to be established")
    started = time.time()
    end = time.monotonic() + HOLD_DOWN
    while time.monotonic() < end:  # silent, answering, silent, … for one hold-down window
        world.pair.primary.pause()
        await asyncio.sleep(period)
        world.pair.primary.resume()
        await asyncio.sleep(period)
    flapped = time.time()
    overs = [r for r in world.switches("dns-failover") if started <= r.created_at <= flapped]
    backs = [r for r in world.switches("dns-failback") if started <= r.created_at <= flapped]
    assert len(overs) <= 1
    assert backs == []
    if overs:  # once it stays up, it comes back: no switch is stuck
        await until(lambda: world.switches("dns-failback"), "the failback after the flapping")
        await until(lambda: world.record() == [world.pair.primary.address], "the record back")


async def test_a_failover_that_meets_a_passing_failure_is_retried_not_lost(world: World) -> None:
    """The rule runs once, on the transition: a refused update must be tried again."""
    await until(lambda: world.runs("dns-failback"), "the state to be established")
    await until(lambda: world.runs("dns-failback")[0].state.finished, "the first failback")
    world.pair.secondary.stop()  # the server that takes the update
    world.pair.primary.stop()
    await until(lambda: world.runs("dns-failover"), "the failover to start")
    # In a thread: the engine goes on (and is refused) while named starts.
    await asyncio.to_thread(world.pair.secondary.start)
    await until(lambda: world.runs("dns-failover")[0].state.finished, "the failover to finish")
    (over,) = world.runs("dns-failover")
    assert over.state is RunState.SUCCEEDED, over.message
    assert over.steps[0].attempts >= 2
    assert world.record() == [world.pair.secondary.address]
