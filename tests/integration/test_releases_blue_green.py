"""Strategy blue_green end to end: the controller starts versions on real slot processes behind
a real nginx (tests/services_bluegreen.py), previews the idle slot, moves all traffic in one
router change, and goes back to the warm slot."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest

from opsmedic.model import Deployment, DeploymentState
from opsmedic.releases.controller import ReleaseController
from opsmedic.runtime import Runtime, build, build_registry

if __package__:
    from ..cli_process import opsmedic
    from ..services_bluegreen import BlueGreenRig
    from ..services_nginx import UPSTREAM
else:
    from cli_process import opsmedic
    from services_bluegreen import BlueGreenRig
    from services_nginx import UPSTREAM

T = TypeVar("T")
MAX_REQUESTS = 5000  # the bound of every load a test sends
PAUSE_S = 0.01  # between two requests of the load: at most 100 requests/s
CLOSED = ("closed by a reload", 0)


def _config(rig: BlueGreenRig, *, warm: str = "10s", bake: str = "500ms") -> str:
    nginx, front = rig.front.settings, rig.front
    blue, green = rig.slots["blue"], rig.slots["green"]
    return f"""
store: sqlite:///{rig.root}/opsmedic.db
api: {{enabled: false}}
services:
  shop:
    versions: releases
    version_url: "{front.url}/version"
    strategy: blue_green
    bake: {bake}
    verify_timeout: 10s
    verify:
      - name: home
        http: {{url: "{front.url}/"}}
        interval: 100ms
        min_samples: 3
        on_no_data: fail
    blue_green:
      router:
        nginx:
          upstream: {UPSTREAM}
          include: {front.upstream_file}
          access_log: {front.access_log}
          prefix: {nginx.prefix}
          conf: {nginx.conf}
          pid_file: {nginx.pid_file}
          program: {nginx.program}
          error_log: {front.error_log}
      slots: {{blue: "{blue}", green: "{green}"}}
      start:
        - run_command:
            argv: [python3, slots.py, ., "{{{{ slot }}}}", "{{{{ backend }}}}", "{{{{ version }}}}"]
            cwd: .
            timeout: 20s
      warm_timeout: {warm}
"""


@dataclass
class Shop:
    rig: BlueGreenRig
    rt: Runtime

    @property
    def controller(self) -> ReleaseController:
        assert self.rt.releases is not None
        return self.rt.releases

    async def weights(self) -> dict[str, str]:
        """The live weights by slot name."""
        found = await self.rig.router.weights(UPSTREAM)
        return {name: found[address] for name, address in self.rig.slots.items()}

    async def answers(self, count: int) -> Counter[tuple[str, int]]:
        async with httpx.AsyncClient(base_url=self.rig.front.url, timeout=10) as client:
            return Counter(
                (r.text, r.status_code) for r in [await client.get("/") for _ in range(count)]
            )

    async def under_load(self, work: Awaitable[T]) -> tuple[T, Counter[tuple[str, int]]]:
        """`work` awaited while a client sends requests to nginx one after another; what the
        client got, by body and status."""
        stop, got = asyncio.Event(), Counter[tuple[str, int]]()

        async def client() -> None:
            async with httpx.AsyncClient(base_url=self.rig.front.url, timeout=10) as http:
                for _ in range(MAX_REQUESTS):
                    if stop.is_set():
                        return
                    try:
                        response = await http.get("/")
                        got[(response.text, response.status_code)] += 1
                    except (httpx.RemoteProtocolError, httpx.ReadError):
                        got[CLOSED] += 1  # an old worker closed the idle keep-alive connection
                    await asyncio.sleep(PAUSE_S)

        sending = asyncio.create_task(client())
        try:
            return await asyncio.wait_for(work, 60), got
        finally:
            stop.set()
            await sending


@asynccontextmanager
async def _shop(rig: BlueGreenRig, **config: str) -> AsyncIterator[Shop]:
    """A runtime whose `shop` has v1 deployed: started on green (blue, live in nginx's first
    file, runs nothing), previewed, given all traffic and promoted."""
    (rig.root / "opsmedic.yaml").write_text(_config(rig, **config))
    rt = build(rig.root / "opsmedic.yaml", registry=build_registry())
    await rt.engine.start()
    try:
        shop = Shop(rig, rt)
        first = await asyncio.wait_for(shop.controller.deploy("shop", "v1"), 60)
        assert first.state is DeploymentState.PROMOTED, first.reason
        assert await shop.weights() == {"blue": 0, "green": 1}
        yield shop
    finally:
        await rt.engine.close()


@pytest.fixture
async def shop(bluegreen_rig: BlueGreenRig) -> AsyncIterator[Shop]:
    async with _shop(bluegreen_rig) as found:
        yield found


def _record(deployment: Deployment) -> dict[str, Any]:
    found: dict[str, Any] = deployment.checks["blue_green"]
    return found


async def _slot_version(rig: BlueGreenRig, slot: str) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(f"http://{rig.slots[slot]}/version")).text


async def test_the_new_version_starts_beside_the_old_and_takes_all_traffic_at_once(
    shop: Shop,
) -> None:
    rig, warm_pid = shop.rig, shop.rig.pid("green")
    deployment, got = await shop.under_load(shop.controller.deploy("shop", "v2"))
    assert deployment.state is DeploymentState.PROMOTED, deployment.reason
    record = _record(deployment)
    assert record["slots"] == rig.slots
    assert (record["live"], record["idle"]) == ("blue", "green")
    assert [(s["slot"], s["version"], s["state"]) for s in record["starts"]] == [
        ("blue", "v2", "succeeded")
    ]
    assert record["preview"]["shop/home"]["verdict"] == "passed"
    assert [(m["from"], m["to"], m["version"]) for m in record["moves"]] == [
        (["green"], "blue", "v2")
    ]
    assert deployment.checks["verify"]["shop/home"]["verdict"] == "passed"  # on live traffic
    assert await shop.weights() == {"blue": 1, "green": 0}
    assert await shop.answers(10) == {("v2", 200): 10}
    # The old slot stays warm: the same process, still answering its version.
    assert rig.pid("green") == warm_pid
    assert await _slot_version(rig, "green") == "v1"
    assert set(got) <= {("v1", 200), ("v2", 200), CLOSED}, got
    assert got[("v1", 200)] and got[("v2", 200)], got


async def test_deploying_the_serving_version_again_moves_to_the_slot_it_previewed(
    shop: Shop,
) -> None:
    deployment = await asyncio.wait_for(shop.controller.deploy("shop", "v1"), 60)
    assert deployment.state is DeploymentState.PROMOTED, deployment.reason
    record = _record(deployment)
    assert [(s["slot"], s["version"]) for s in record["starts"]] == [("blue", "v1")]
    assert [(m["to"], m["version"]) for m in record["moves"]] == [("blue", "v1")]
    assert await shop.weights() == {"blue": 1, "green": 0}


async def test_a_version_failing_on_live_traffic_goes_back_to_the_warm_slot(shop: Shop) -> None:
    rig, warm_pid = shop.rig, shop.rig.pid("green")
    deployment, got = await shop.under_load(shop.controller.deploy("shop", "v7"))
    assert deployment.state is DeploymentState.ROLLED_BACK, deployment.reason
    assert deployment.rolled_back_to == "v1"
    assert "verification failed: shop/home" in deployment.reason, deployment.reason
    record = _record(deployment)
    assert record["preview"]["shop/home"]["verdict"] == "passed"
    # One start (v7's); going back was one router change to the slot v1 never left.
    assert [(s["slot"], s["version"]) for s in record["starts"]] == [("blue", "v7")]
    assert [(m["to"], m["version"]) for m in record["moves"]] == [("blue", "v7"), ("green", "v1")]
    assert (record["live"], record["idle"]) == ("green", "blue")
    assert rig.pid("green") == warm_pid
    assert await shop.weights() == {"blue": 0, "green": 1}
    assert await shop.answers(10) == {("v1", 200): 10}
    assert got[("v7 failed", 500)], got  # what live traffic saw before the way back


async def test_the_emergency_rollback_is_one_router_change_to_the_warm_slot(shop: Shop) -> None:
    rig = shop.rig
    promoted = await asyncio.wait_for(shop.controller.deploy("shop", "v2"), 60)
    assert promoted.state is DeploymentState.PROMOTED, promoted.reason
    warm_pid = rig.pid("green")
    found = opsmedic("rollback", "shop", "--reason", "alert fired", "--json", cwd=rig.root)
    assert found.returncode == 0, found.stderr
    assert shop.rt.store is not None
    back = shop.rt.store.get_deployment(promoted.id)
    assert back.state is DeploymentState.ROLLED_BACK and back.rolled_back_to == "v1"
    record = _record(back)
    assert [m["to"] for m in record["moves"]] == ["blue", "green"]
    assert record["moves"][-1]["router_s"] > 0
    assert len(record["starts"]) == 1  # v2's: v1 was warm
    assert rig.pid("green") == warm_pid
    assert await shop.weights() == {"blue": 0, "green": 1}
    assert await shop.answers(10) == {("v1", 200): 10}


async def test_a_rollback_whose_old_slot_died_starts_it_first(shop: Shop) -> None:
    rig = shop.rig
    promoted = await asyncio.wait_for(shop.controller.deploy("shop", "v2"), 60)
    assert promoted.state is DeploymentState.PROMOTED, promoted.reason
    dead = rig.pid("green")
    os.kill(dead, signal.SIGTERM)
    back = await asyncio.wait_for(shop.controller.rollback("shop", reason="alert"), 60)
    assert back.state is DeploymentState.ROLLED_BACK, back.reason
    record = _record(back)
    assert [(s["slot"], s["version"]) for s in record["starts"]] == [
        ("blue", "v2"),
        ("green", "v1"),
    ]
    assert record["versions"]["green"] == "v1"
    assert rig.pid("green") != dead
    assert await shop.weights() == {"blue": 0, "green": 1}
    assert await shop.answers(5) == {("v1", 200): 5}


@pytest.mark.parametrize(
    ("version", "said"),
    [
        ("v5", "blue/green: start of v5 on blue ({blue}) failed: "),
        ("v4", "blue/green: http://{blue}/version does not report 'v4' within warm_timeout 1s "
         "(last: status 503, body 'starting'); no traffic moved"),
        ("v3", "blue/green preview on blue ({blue}): verification failed: shop/home: 3 of 3 "
         "samples bad (last: status 500); no traffic moved; rolled back to v1"),
    ],
)  # fmt: skip
async def test_a_version_that_fails_before_any_traffic_moved_leaves_the_old_slot_serving(
    bluegreen_rig: BlueGreenRig, version: str, said: str
) -> None:
    rig = bluegreen_rig
    async with _shop(rig, warm="1s") as shop:
        before = rig.front.upstream_file.read_text()
        deployment, got = await shop.under_load(shop.controller.deploy("shop", version))
        assert deployment.state is DeploymentState.ROLLED_BACK, deployment.reason
        assert said.format(blue=rig.slots["blue"]) in deployment.reason
        record = _record(deployment)
        assert record["moves"] == []  # neither the way there nor the way back moved anything
        assert rig.front.upstream_file.read_text() == before
        assert set(got) == {("v1", 200)}, got
        assert await shop.weights() == {"blue": 0, "green": 1}


async def test_an_emergency_rollback_during_the_warm_up_stops_it_and_moves_nothing(
    bluegreen_rig: BlueGreenRig,
) -> None:
    rig = bluegreen_rig
    async with _shop(rig, warm="60s") as shop:
        driving = asyncio.create_task(shop.controller.deploy("shop", "v4"))  # never warm
        for _ in range(1000):  # until v4's start ran: its warm-up has begun
            if (rig.root / "blue.pid").exists() or driving.done():
                break
            await asyncio.sleep(0.02)
        back = await asyncio.wait_for(shop.controller.rollback("shop", reason="pager"), 60)
        assert back.state is DeploymentState.ROLLED_BACK and back.rolled_back_to == "v1"
        assert back.reason == "pager; rolled back to v1", back.reason
        # The warm-up sees at its next heartbeat that the deployment is no longer its own,
        # long before its 60 s are out.
        driven = await asyncio.wait_for(driving, 30)
        assert driven.state is DeploymentState.ROLLED_BACK and driven.id == back.id
        assert _record(back)["moves"] == []
        assert await shop.weights() == {"blue": 0, "green": 1}
        assert await shop.answers(5) == {("v1", 200): 5}


async def test_nginx_refusing_the_change_leaves_the_old_file_and_slot_serving(
    shop: Shop,
) -> None:
    rig = shop.rig
    before = rig.front.upstream_file.read_text()
    # v6 passes its preview; as the switch asks its version, a stray file breaks nginx's
    # configuration, and nginx -t refuses the router's change.
    deployment, got = await shop.under_load(shop.controller.deploy("shop", "v6"))
    assert "switch to v6 failed: upstream app: nginx -t refused" in deployment.reason
    assert "unknown directive" in deployment.reason and "stray.conf" in deployment.reason
    # With nginx's configuration broken, which slot is live cannot be read back: the way
    # back cannot be confirmed, and says so loudly (an escalation).
    assert deployment.state is DeploymentState.FAILED, deployment.reason
    assert "rollback to v1 failed: blue/green: cannot read which slot is live" in deployment.reason
    assert _record(deployment)["moves"] == []
    assert rig.front.upstream_file.read_text() == before
    assert set(got) == {("v1", 200)}, got  # the running nginx never reloaded
    assert shop.rt.store is not None
    escalations = shop.rt.store.list_events(source="opsmedic", kind="escalation", limit=10)
    assert [e.labels.get("reason") for e in escalations] == ["no_rollback"]
    # Once nginx's configuration is mended, the emergency rollback confirms v1, moving nothing.
    (rig.front.upstream_file.parent / "stray.conf").unlink()
    back = await asyncio.wait_for(shop.controller.rollback("shop"), 60)
    assert back.state is DeploymentState.ROLLED_BACK and back.rolled_back_to == "v1", back.reason
    assert _record(back)["moves"] == []
    assert await shop.answers(5) == {("v1", 200): 5}
