"""A `traffic` verify check on a real nginx: a switch deployment is verified on the requests
nginx routed (tests/services_nginx.py), read from its access log as it is written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from opsmedic.model import Deployment, DeploymentState
from opsmedic.runtime import Runtime, build, build_registry

if __package__:
    from ..services_nginx import CanaryRig
else:
    from services_nginx import CanaryRig

MAX_REQUESTS = 3000  # the bound of the load a test sends
PAUSE_S = 0.005


def _config(rig: CanaryRig, root: Path, on_no_data: str) -> str:
    return f"""
store: sqlite:///{root}/opsmedic.db
api: {{enabled: false}}
services:
  shop:
    versions: {root}/releases
    bake: 1s
    verify_timeout: 5s
    switch:
      - run_command: {{argv: ["true"]}}
    verify:
      - name: routed
        traffic:
          access_log: {rig.access_log}
          backends: ["{rig.stable.address}"]
          min_requests: 5
          max_p95: 2s
        interval: 0.25s
        min_samples: 2
        on_no_data: {on_no_data}
"""


@asynccontextmanager
async def _runtime(rig: CanaryRig, root: Path, on_no_data: str = "fail") -> AsyncIterator[Runtime]:
    for version in ("v1", "v2"):
        (root / "releases" / version).mkdir(parents=True)
    (root / "rules").mkdir()
    (root / "opsmedic.yaml").write_text(_config(rig, root, on_no_data))
    rt = build(root / "opsmedic.yaml", registry=build_registry())
    await rt.engine.start()
    try:
        yield rt
    finally:
        await rt.engine.close()


async def _deploy_under_load(rt: Runtime, rig: CanaryRig, version: str) -> Deployment:
    stop = asyncio.Event()

    async def load() -> None:
        async with httpx.AsyncClient(base_url=rig.url, timeout=10) as client:
            for _ in range(MAX_REQUESTS):
                if stop.is_set():
                    return
                await client.get("/")
                await asyncio.sleep(PAUSE_S)

    assert rt.releases is not None
    client = asyncio.create_task(load())
    try:
        return await asyncio.wait_for(rt.releases.deploy("shop", version), 30)
    finally:
        stop.set()
        await client


async def test_routed_traffic_passes_then_a_failing_backend_is_rolled_back(
    canary_rig: CanaryRig, tmp_path: Path
) -> None:
    rig = canary_rig
    async with _runtime(rig, tmp_path) as rt:
        first = await _deploy_under_load(rt, rig, "v1")
        assert first.state is DeploymentState.PROMOTED, first.reason
        routed = first.checks["verify"]["shop/routed"]
        assert routed["verdict"] == "passed"
        assert all("requests failed" in s["message"] for s in routed["recent"])

        rig.stable.status = 500  # v2 "breaks" the backend every request reaches
        second = await _deploy_under_load(rt, rig, "v2")
        assert second.state is DeploymentState.ROLLED_BACK, second.reason
        assert second.rolled_back_to == "v1"
        assert "shop/routed:" in second.reason and "requests failed" in second.reason
        assert "max_error_ratio 0" in second.reason


async def test_no_routed_traffic_is_no_data_and_on_no_data_decides(
    canary_rig: CanaryRig, tmp_path: Path
) -> None:
    async with _runtime(canary_rig, tmp_path, on_no_data="fail") as rt:
        assert rt.releases is not None
        quiet = await rt.releases.deploy("shop", "v1")  # nobody sends a request
        assert quiet.state is DeploymentState.FAILED  # no last known good to go back to
        assert "no data" in quiet.reason and "(on_no_data: fail)" in quiet.reason
        recent = quiet.checks["verify"]["shop/routed"]["recent"]
        assert recent and all("min_requests 5" in s["message"] for s in recent)
