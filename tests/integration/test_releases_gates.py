"""Promotion gates end to end: staging before production, a command gate, --force recorded,
the refusal as the controller, the API (409) and the CLI (exit 1) give it, and a gate that
runs longer than recovery's staleness limit while the heartbeat keeps the deployment owned."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from opsmedic.errors import ReleaseRefused
from opsmedic.model import DeploymentState
from opsmedic.releases.controller import this_owner
from opsmedic.releases.recovery import recover
from opsmedic.runtime import Runtime

if __package__:
    from ..api_service import running_api
    from ..cli_process import opsmedic
    from ..release_site import Site, releases_runtime, site, site_services, write_services
else:
    from api_service import running_api
    from cli_process import opsmedic
    from release_site import (  # noqa: F401 (site: a fixture)
        Site,
        releases_runtime,
        site,
        site_services,
        write_services,
    )


def _services(site: Site) -> dict[str, Any]:
    """The shortener with staging, and production requiring staging and a "test suite" that
    passes once the file `tests-pass` exists (its cwd: the config file's directory)."""
    services = site_services(site)
    services["shortener"]["environments"] = {
        "staging": {},
        "production": {"requires": ["staging"], "gates": [{"name": "tests", "command": {
            "argv": ["sh", "-c", "test -f tests-pass || { echo 2 failed; exit 1; }"],
            "cwd": ".", "timeout": "10s"}}]},
    }  # fmt: skip
    return services


@pytest.fixture
async def rt(site: Site) -> AsyncIterator[Runtime]:
    async with releases_runtime(site, _services(site)) as found:
        yield found


async def test_production_waits_for_staging_and_its_gates_and_force_is_recorded(
    rt: Runtime, site: Site
) -> None:
    controller, store = rt.releases, rt.store
    assert controller is not None and store is not None
    with pytest.raises(ReleaseRefused, match="gate requires:staging: v1 has not passed "
                       "verification in staging; gate tests: sh failed"):  # fmt: skip
        await controller.deploy("shortener", "v1", "production")
    refused = store.list_deployments("shortener", "production")[0]
    assert refused.state is DeploymentState.FAILED
    assert refused.reason.startswith("refused: gate requires:staging")
    gates = refused.checks["gates"]
    assert [(r["name"], r["passed"]) for r in gates["results"]] == [
        ("requires:staging", False), ("tests", False)]  # fmt: skip
    assert gates["results"][1]["output"] == "[stdout]\n2 failed\n"
    assert "switches" not in refused.checks  # refused before anything was switched

    staged = await controller.deploy("shortener", "v1", "staging")
    assert staged.state is DeploymentState.PROMOTED, staged.reason
    assert staged.checks["gates"] == {"forced": False, "results": []}
    with pytest.raises(ReleaseRefused, match="gate tests: sh failed"):
        await controller.deploy("shortener", "v1", "production")
    (site.root / "tests-pass").write_text("")
    live = await controller.deploy("shortener", "v1", "production")
    assert live.state is DeploymentState.PROMOTED, live.reason
    assert [r["passed"] for r in store.get_deployment(live.id).checks["gates"]["results"]] == [
        True, True]  # fmt: skip

    # v2 never passed staging: refused, and v1 keeps serving.
    with pytest.raises(ReleaseRefused, match="v2 has not passed verification in staging"):
        await controller.deploy("shortener", "v2", "production")
    assert site.status() == 200
    forced = await controller.deploy("shortener", "v2", "production", force=True)
    assert forced.forced and forced.checks["gates"] == {"forced": True, "results": []}
    assert forced.state is DeploymentState.ROLLED_BACK  # the gates were right
    await rt.engine.drain()
    states = [(e.labels["version"], e.labels["state"])
              for e in reversed(store.list_events(source="opsmedic", kind="deployment",
                                                  limit=100))
              if e.labels["env"] == "production"]  # fmt: skip
    assert states[:2] == [("v1", "started"), ("v1", "failed")]


async def test_the_api_answers_409_and_the_cli_exits_1_with_the_reason(site: Site) -> None:
    body = {"service": "shortener", "version": "v1", "env": "production"}
    async with running_api(site.root, services=_services(site)) as api:
        async with api.client(api.tokens["operate"]) as client:
            reply = await client.post("/api/v1/deployments", json=body)
        assert reply.status_code == 409, reply.text
        assert "v1 has not passed verification in staging" in reply.json()["detail"]
    write_services(site, _services(site))
    found = opsmedic("deploy", "shortener", "v1", "--env", "production", cwd=site.root)
    assert found.returncode == 1
    assert "refused: gate requires:staging: v1 has not passed verification in staging" in (
        found.stderr
    )
    checked = opsmedic("check", cwd=site.root)
    assert checked.returncode == 0, checked.stderr
    assert "service shortener (staging): switch, bake 1s" in checked.stdout
    assert "on_no_data: fail; gates: requires staging, tests (command)\n" in checked.stdout


async def test_a_gate_longer_than_the_staleness_limit_is_not_taken_for_an_orphan(
    site: Site,
) -> None:
    stale_after, gate_s = 1.0, 3.0  # recovery's 30 s, shortened; a gate three times longer
    services = site_services(site)
    services["shortener"]["gates"] = [
        {"name": "suite", "command": {"argv": ["sleep", str(gate_s)], "timeout": "10s"}}
    ]
    async with releases_runtime(site, services) as found:
        assert found.releases is not None and found.store is not None
        # The owner is on another host, so recovery can only go by its heartbeat.
        driver = dataclasses.replace(found.releases, owner="elsewhere:1")
        other = dataclasses.replace(found.releases, owner=this_owner())
        deploying = asyncio.create_task(driver.deploy("shortener", "v1"))
        checked = 0
        for _ in range(200):  # bounded: the gate takes gate_s, then verification and bake
            await asyncio.sleep(0.2)
            if deploying.done():
                break
            assert await recover(other, stale_after=stale_after) == []
            checked += 1
        deployment = await deploying
    assert deployment.state is DeploymentState.PROMOTED, deployment.reason
    assert deployment.checks["gates"]["results"][0]["passed"]
    assert checked >= gate_s / 0.2 / 2  # recovery looked all through the gate
