"""What a review of the release guard found, each kept fixed: a cancelled deploy is not left
half-way, `rollback --to` refuses before it takes anything over, the running daemon recovers
a deployment whose process died, and a slow switch beats the heartbeat."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from opsmedic.errors import ReleaseRefused, UnknownRelease
from opsmedic.model import Deployment, DeploymentState
from opsmedic.releases.controller import this_owner
from opsmedic.releases.recovery import keep_recovering, recover

if __package__:
    from ..release_site import Site, releases_runtime, site, site_services
else:
    from release_site import Site, releases_runtime, site, site_services  # noqa: F401


async def test_a_deploy_cancelled_during_its_gates_ends_failed_and_blocks_nothing(
    site: Site,
) -> None:
    services = site_services(site)
    services["shortener"]["gates"] = [{"name": "slow", "command": {"argv": ["sleep", "30"]}}]
    async with releases_runtime(site, services) as rt:
        assert rt.releases is not None and rt.store is not None
        with pytest.raises(TimeoutError):  # a rule's step with `timeout: 1s`
            await asyncio.wait_for(rt.releases.deploy("shortener", "v1"), 1.0)
        [left] = rt.store.list_deployments("shortener")
        assert left.state is DeploymentState.FAILED
        assert "cancelled while its gates ran" in left.reason
        services["shortener"]["gates"] = []
    async with releases_runtime(site, services) as rt:
        assert rt.releases is not None
        again = await rt.releases.deploy("shortener", "v1")  # not "a deployment is running"
        assert again.state is DeploymentState.PROMOTED, again.reason


async def test_a_deploy_cancelled_while_verifying_is_rolled_back(site: Site) -> None:
    services = site_services(site)
    # Checks v2 passes (its / fails, its /version answers): only the cancel ends its bake.
    services["shortener"]["verify"] = [{"name": "version", "http": {"url": f"{site.url}/version"},
                                        "interval": "50ms", "min_samples": 3,
                                        "on_no_data": "fail"}]  # fmt: skip
    async with releases_runtime(site, services) as rt:
        assert rt.releases is not None and rt.store is not None
        config = rt.releases.services["shortener"]
        config.bake = 0.3
        assert (await rt.releases.deploy("shortener", "v1")).state is DeploymentState.PROMOTED
        config.bake = 30.0
        with pytest.raises(TimeoutError):  # a rule's step with `timeout: 2s`
            await asyncio.wait_for(rt.releases.deploy("shortener", "v2"), 2.0)
        latest = rt.store.list_deployments("shortener", limit=1)[0]
        assert latest.version == "v2" and latest.state is DeploymentState.ROLLED_BACK
        assert "the deploy was cancelled" in latest.reason and latest.rolled_back_to == "v1"
        assert site.version() == "v1"


async def test_rollback_to_refuses_a_bad_target_before_touching_anything(site: Site) -> None:
    async with releases_runtime(site, site_services(site)) as rt:
        assert rt.releases is not None and rt.store is not None
        events: list[str] = []
        announce = rt.releases.announce

        async def seen(found: list[object]) -> object:
            events.extend(getattr(e, "kind", "") for e in found)
            return await announce(found)  # type: ignore[arg-type]

        rt.releases.announce = seen
        promoted = await rt.releases.deploy("shortener", "v1")
        assert promoted.state is DeploymentState.PROMOTED
        with pytest.raises(ReleaseRefused, match="v1 is the version serving"):
            await rt.releases.rollback("shortener", to="v1")
        with pytest.raises(ReleaseRefused, match="'v2' never passed verification"):
            await rt.releases.rollback("shortener", to="v2")
        with pytest.raises(UnknownRelease, match="unknown version 'v9'"):
            await rt.releases.rollback("shortener", to="v9")
        assert "escalation" not in events  # a typo pages nobody
        [still] = rt.store.list_deployments("shortener")
        assert still.state is DeploymentState.PROMOTED and still.last_known_good


async def test_the_running_daemon_recovers_a_deployment_whose_process_died(site: Site) -> None:
    async with releases_runtime(site, site_services(site)) as rt:
        assert rt.releases is not None and rt.store is not None
        assert (await rt.releases.deploy("shortener", "v1")).state is DeploymentState.PROMOTED
        # A `opsmedic deploy` on this host that was killed while v2 verified.
        now = rt.clock.now()
        orphan = Deployment(service="shortener", env="production", version="v2",
                            previous_version="v1", strategy="switch", requested_by="cli x",
                            created_at=now, updated_at=now, owner=f"{this_owner().split(':')[0]}:999999999",
                            heartbeat_at=now)  # fmt: skip
        rt.store.start_deployment(orphan)
        stop, found = asyncio.Event(), list[Deployment]()
        sweeping = asyncio.create_task(keep_recovering(rt.releases, stop, found.append, every=0.1))
        for _ in range(100):
            if found:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await sweeping
        assert [d.id for d in found] == [orphan.id]
        assert found[0].state is DeploymentState.ROLLED_BACK and found[0].rolled_back_to == "v1"


async def test_a_slow_switch_beats_the_heartbeat(site: Site) -> None:
    services = site_services(site)
    services["shortener"]["switch"].insert(0, {"run_command": {"argv": ["sleep", "3"]}})
    async with releases_runtime(site, services) as rt:
        assert rt.releases is not None
        # The owner is on another host: recovery can go by its heartbeat alone.
        driver = dataclasses.replace(rt.releases, owner="elsewhere:1")
        other = dataclasses.replace(rt.releases, owner=this_owner())
        deploying = asyncio.create_task(driver.deploy("shortener", "v1"))
        for _ in range(100):
            await asyncio.sleep(0.2)
            if deploying.done():
                break
            assert await recover(other, stale_after=1.0) == []
        assert (await deploying).state is DeploymentState.PROMOTED


async def test_a_deploy_taken_over_by_a_rollback_reports_how_it_ended(site: Site) -> None:
    services = site_services(site)
    services["shortener"]["verify"] = [{"name": "version", "http": {"url": f"{site.url}/version"},
                                        "interval": "50ms", "min_samples": 3,
                                        "on_no_data": "fail"}]  # fmt: skip
    async with releases_runtime(site, services) as rt:
        assert rt.releases is not None
        config = rt.releases.services["shortener"]
        config.bake = 0.3
        assert (await rt.releases.deploy("shortener", "v1")).state is DeploymentState.PROMOTED
        config.bake = 30.0
        driver = dataclasses.replace(rt.releases, owner="elsewhere:1")
        deploying = asyncio.create_task(driver.deploy("shortener", "v2"))
        await asyncio.sleep(1.0)  # v2 verifying
        back = await rt.releases.rollback("shortener", reason="paged")
        assert back.state is DeploymentState.ROLLED_BACK
        ended = await asyncio.wait_for(deploying, 30)
        assert ended.state is DeploymentState.ROLLED_BACK and ended.rolled_back_to == "v1"
        assert site.version() == "v1"
