"""The release controller end to end: a real app flipped by real switch steps through the
engine's executor, a real store, and verification by real requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from opsmedic.errors import ReleaseRefused, UnknownRelease
from opsmedic.model import Deployment, DeploymentState
from opsmedic.releases.controller import ReleaseController
from opsmedic.runtime import Runtime, build, build_registry

if __package__:
    from ..release_site import Site, site, site_config
else:
    from release_site import Site, site, site_config  # noqa: F401 (site: a fixture)


async def _runtime(site: Site, **config: str) -> Runtime:
    (site.root / "opsmedic.yaml").write_text(site_config(site, **config))
    rt = build(site.root / "opsmedic.yaml", registry=build_registry())
    await rt.engine.start()
    return rt


@pytest.fixture
async def rt(site: Site) -> AsyncIterator[Runtime]:
    found = await _runtime(site)
    yield found
    await found.engine.close()


def _controller(rt: Runtime) -> ReleaseController:
    assert rt.releases is not None
    return rt.releases


def _events(rt: Runtime, kind: str) -> list[tuple[str, str, str]]:
    assert rt.store is not None
    found = rt.store.list_events(source="opsmedic", kind=kind, limit=100)
    return [(e.labels.get("version", ""), e.labels.get("state", ""), str(e.status))
            for e in reversed(found)]  # fmt: skip


async def test_bad_version_is_rolled_back_and_the_good_one_serves_again(
    rt: Runtime, site: Site
) -> None:
    controller = _controller(rt)
    first = await controller.deploy("shortener", "v1", requested_by="test")
    assert first.state is DeploymentState.PROMOTED, first.reason
    assert first.last_known_good
    second = await controller.deploy("shortener", "v2", requested_by="test")
    assert second.state is DeploymentState.ROLLED_BACK
    assert second.previous_version == "v1"
    assert second.rolled_back_to == "v1"
    assert "home" in second.reason and "status 500" in second.reason
    assert not second.last_known_good
    assert site.version() == "v1"
    assert site.status() == 200
    await rt.engine.drain()
    assert _events(rt, "deployment") == [
        ("v1", "started", "firing"), ("v1", "verifying", "firing"),
        ("v1", "promoted", "resolved"), ("v2", "started", "firing"),
        ("v2", "verifying", "firing"), ("v2", "rolled_back", "firing"),
    ]  # fmt: skip
    verdicts = second.checks["verify"]["shortener/home"]
    assert verdicts["verdict"] == "failed"
    assert verdicts["counts"]["bad"] >= 3
    # The store holds what the controller said.
    assert rt.store is not None
    stored = rt.store.get_deployment(second.id)
    assert stored.state is DeploymentState.ROLLED_BACK
    assert stored.checks == second.checks


async def test_rollback_is_idempotent_and_refuses_a_version_that_never_passed(
    rt: Runtime, site: Site
) -> None:
    controller = _controller(rt)
    await controller.deploy("shortener", "v1")
    await controller.deploy("shortener", "v3")  # fails its switch: rolled back to v1
    again = await controller.rollback("shortener", reason="again")
    assert again.state is DeploymentState.ROLLED_BACK
    assert again.rolled_back_to == "v1"
    assert (await controller.rollback("shortener")).id == again.id
    with pytest.raises(ReleaseRefused, match="'v2' never passed verification"):
        await controller.rollback("shortener", to="v2")
    assert site.version() == "v1"


async def test_first_deployment_without_a_last_known_good_fails_loudly(
    rt: Runtime, site: Site
) -> None:
    found = await _controller(rt).deploy("shortener", "v2")
    assert found.state is DeploymentState.FAILED
    assert "no last known good version" in found.reason
    await rt.engine.drain()
    assert rt.store is not None
    escalations = rt.store.list_events(source="opsmedic", kind="escalation")
    assert [e.labels["reason"] for e in escalations] == ["no_rollback"]
    assert escalations[0].severity == "critical"
    with pytest.raises(ReleaseRefused, match="no last known good"):
        await _controller(rt).rollback("shortener")


async def test_switch_failing_half_way_leaves_the_previous_version_serving(
    rt: Runtime, site: Site
) -> None:
    controller = _controller(rt)
    await controller.deploy("shortener", "v1")
    found = await controller.deploy("shortener", "v3")
    assert found.state is DeploymentState.ROLLED_BACK
    assert found.reason.startswith("switch to v3 failed: run_command")
    assert site.version() == "v1"
    assert site.status() == 200
    switches = found.checks["switches"]
    assert [(s["version"], s["state"]) for s in switches] == [
        ("v3", "failed"), ("v1", "succeeded"),
    ]  # fmt: skip


async def test_a_second_deployment_of_the_service_is_refused_while_one_runs(
    site: Site,
) -> None:
    rt = await _runtime(site, bake="30s")
    controller = _controller(rt)
    try:
        running = await controller.start("shortener", "v1")
        with pytest.raises(ReleaseRefused, match=f"a deployment is running \\(v1, {running.id}"):
            await controller.deploy("shortener", "v2")
    finally:
        await controller.close()
        await rt.engine.close()


async def test_unknown_service_environment_and_version_are_named(rt: Runtime) -> None:
    controller = _controller(rt)
    with pytest.raises(
        UnknownRelease, match="unknown service 'shortner' \\(did you mean shortener"
    ):
        await controller.deploy("shortner", "v1")
    with pytest.raises(UnknownRelease, match="unknown environment 'staging'"):
        await controller.deploy("shortener", "v1", "staging")
    with pytest.raises(UnknownRelease, match=r"unknown version 'v9' .*known: v1, v2, v3"):
        await controller.deploy("shortener", "v9")
    assert rt.store is not None
    assert rt.store.list_deployments() == []


async def test_every_measurement_errored_is_a_failure_never_a_promotion(site: Site) -> None:
    # Nothing listens on port 9 of loopback: every query errors.
    checks = """
      - name: errors
        prometheus: {url: "http://127.0.0.1:9", query: up, max: 0}
        interval: 50ms
        min_samples: 2
        on_no_data: pass"""
    rt = await _runtime(site, checks=checks)
    try:
        found = await _controller(rt).deploy("shortener", "v1")
    finally:
        await rt.engine.close()
    assert found.state is DeploymentState.FAILED
    assert "errored" in found.reason and "an error is never a pass" in found.reason
    assert not found.last_known_good


def _deployed(rt: Runtime, deployment: Deployment) -> Deployment:
    assert rt.store is not None
    return rt.store.get_deployment(deployment.id)


async def test_depends_on_watches_the_dependents_checks(site: Site) -> None:
    extra = f"""
  info:
    versions: releases
    depends_on: [shortener]
    switch: [{{noop: {{}}}}]
    verify:
      - name: page
        http: {{url: "{site.url}/"}}
        interval: 50ms
        min_samples: 2
        on_no_data: fail"""
    rt = await _runtime(site, extra=extra)
    try:
        assert [c.name for c in _controller(rt).checks_of("shortener", "production")] == [
            "shortener/home", "info/page",
        ]  # fmt: skip
        found = await _controller(rt).deploy("shortener", "v1")
        assert set(found.checks["verify"]) == {"shortener/home", "info/page"}
        assert _deployed(rt, found).state is DeploymentState.PROMOTED
    finally:
        await rt.engine.close()


async def test_an_emergency_rollback_during_the_switch_wins(rt: Runtime, site: Site) -> None:
    controller = _controller(rt)
    await controller.deploy("shortener", "v1")
    started = await controller.begin("shortener", "v2", None, requested_by="t", force=False)
    driving = asyncio.create_task(controller.drive(started))
    await asyncio.sleep(0)  # its switch to v2 is under way
    back = await controller.rollback("shortener", reason="pager")
    assert back.id == started.id and back.rolled_back_to == "v1"
    assert (await driving).state is DeploymentState.ROLLED_BACK
    assert rt.store is not None
    final = rt.store.get_deployment(started.id)
    assert (final.state, final.rolled_back_to) == (DeploymentState.ROLLED_BACK, "v1")
    assert site.version() == "v1"
