"""Strategy canary end to end: the controller drives a real nginx in front of two backends
(tests/services_nginx.py), judges the canary on nginx's access log, promotes or rolls back."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from opsmedic.errors import UnknownRelease
from opsmedic.model import Deployment, DeploymentState
from opsmedic.releases.controller import ReleaseController
from opsmedic.releases.judge import AbortSettings
from opsmedic.runtime import Runtime, build, build_registry

if __package__:
    from ..cli_process import opsmedic
    from ..services_nginx import STICKY_HEADER, UPSTREAM, CanaryRig
else:
    from cli_process import opsmedic
    from services_nginx import STICKY_HEADER, UPSTREAM, CanaryRig

MAX_REQUESTS = 5000  # the bound of every load a test sends
PAUSE_S = 0.005  # between two requests of the load: at most 200 requests/s, as in bench/


def _config(
    rig: CanaryRig, root: Path, *, v2: str, interval: str, min_samples: int, on_no_data: str
) -> str:
    nginx = rig.settings
    return f"""
store: sqlite:///{root}/opsmedic.db
api: {{enabled: false}}
services:
  shop:
    versions: {root}/releases
    strategy: canary
    bake: 0s
    verify_timeout: 3s
    switch:
      - run_command: {{argv: ["true"]}}
    canary:
      router:
        nginx:
          upstream: {UPSTREAM}
          include: {rig.upstream_file}
          access_log: {rig.access_log}
          prefix: {nginx.prefix}
          conf: {nginx.conf}
          pid_file: {nginx.pid_file}
          program: {nginx.program}
          error_log: {rig.error_log}
      backends: {{v1: "{rig.stable.address}", v2: "{v2}"}}
      steps: [33]
      analysis: {{interval: {interval}, min_samples: {min_samples}, on_no_data: {on_no_data}}}
      sticky: {{header: {STICKY_HEADER}}}
"""


@dataclass
class Shop:
    rig: CanaryRig
    rt: Runtime

    @property
    def controller(self) -> ReleaseController:
        assert self.rt.releases is not None
        return self.rt.releases

    async def deploy_under_load(self, version: str) -> tuple[Deployment, Counter[tuple[str, int]]]:
        """Deploy `version` while a client sends requests one after another; what it got."""
        stop, got = asyncio.Event(), Counter[tuple[str, int]]()

        async def load() -> None:
            async with httpx.AsyncClient(base_url=self.rig.url, timeout=10) as client:
                for _ in range(MAX_REQUESTS):
                    if stop.is_set():
                        return
                    try:
                        response = await client.get("/")
                        got[(response.text, response.status_code)] += 1
                    except (httpx.RemoteProtocolError, httpx.ReadError):
                        # A reload's old worker closed the idle keep-alive connection as
                        # the request went out; a browser would resend it.
                        got[("closed by a reload", 0)] += 1
                    await asyncio.sleep(PAUSE_S)

        client = asyncio.create_task(load())
        try:
            deployment = await asyncio.wait_for(self.controller.deploy("shop", version), 60)
        finally:
            stop.set()
            await client
        return deployment, got


def _site(rig: CanaryRig, root: Path, **config: str | int) -> Path:
    """The versions directory and opsmedic.yaml of the service `shop`; the config's path."""
    root = root / "site"
    for version in ("v1", "v2", "v3"):
        (root / "releases" / version).mkdir(parents=True)
    (root / "rules").mkdir()
    settings = {"v2": rig.canary.address, "interval": "30s", "min_samples": 20,
                "on_no_data": "fail"} | config  # fmt: skip
    (root / "opsmedic.yaml").write_text(_config(rig, root, **settings))
    return root / "opsmedic.yaml"


@asynccontextmanager
async def _shop(rig: CanaryRig, root: Path, **config: str | int) -> AsyncIterator[Shop]:
    """A runtime whose `shop` has v1 deployed (a first deployment: no canary) and serving."""
    rt = build(_site(rig, root, **config), registry=build_registry())
    await rt.engine.start()
    try:
        shop = Shop(rig, rt)
        first = await shop.controller.deploy("shop", "v1")
        assert first.state is DeploymentState.PROMOTED, first.reason
        assert await rig.router.weights(UPSTREAM) == {rig.stable.address: 1}
        yield shop
    finally:
        await rt.engine.close()


@pytest.fixture
async def shop(canary_rig: CanaryRig, tmp_path: Path) -> AsyncIterator[Shop]:
    async with _shop(canary_rig, tmp_path) as found:
        yield found


async def _bodies(rig: CanaryRig, count: int) -> Counter[tuple[str, int]]:
    async with httpx.AsyncClient(base_url=rig.url, timeout=10) as client:
        return Counter(
            (r.text, r.status_code) for r in [await client.get("/") for _ in range(count)]
        )


async def test_a_canary_answering_500_is_rolled_back_within_a_few_requests(shop: Shop) -> None:
    rig = shop.rig
    rig.canary.status = 500
    # The step lasts 30 s: only the early abort can end it within the test's minute.
    deployment, got = await shop.deploy_under_load("v2")
    assert deployment.state is DeploymentState.ROLLED_BACK, deployment.reason
    assert deployment.rolled_back_to == "v1"
    assert "aborted early" in deployment.reason and "clearly worse" in deployment.reason
    step = deployment.checks["canary"]["steps"][0]
    assert step["weights"] == {rig.stable.address: 67, rig.canary.address: 33}
    assert AbortSettings().min_requests <= step["canary"]["requests"] <= 60, step
    assert step["canary"]["errors"] == step["canary"]["requests"]
    assert got[("canary", 500)] <= 120, got  # what clients saw before the rollback landed
    assert await rig.router.weights(UPSTREAM) == {rig.stable.address: 1}
    assert await _bodies(rig, 20) == {("stable", 200): 20}
    assert shop.rt.store is not None
    assert shop.rt.store.get_deployment(deployment.id).checks == deployment.checks


async def test_a_canary_identical_to_the_stable_is_promoted(
    canary_rig: CanaryRig, tmp_path: Path
) -> None:
    rig = canary_rig
    rig.stable.delay = rig.canary.delay = 0.005
    async with _shop(rig, tmp_path, interval="2s", min_samples=30) as shop:
        deployment, got = await shop.deploy_under_load("v2")
        assert deployment.state is DeploymentState.PROMOTED, deployment.reason
        assert deployment.last_known_good
        judgement = deployment.checks["canary"]["steps"][0]["judgement"]
        assert judgement["verdict"] == "pass", judgement
        assert set(judgement["metrics"]) == {"error_ratio", "latency"}
        assert {status for _, status in got} <= {200, 0}
        assert await rig.router.weights(UPSTREAM) == {rig.canary.address: 1}
        assert await _bodies(rig, 10) == {("canary", 200): 10}


async def test_identical_canaries_are_promoted_at_least_19_times_in_20(
    canary_rig: CanaryRig, tmp_path: Path
) -> None:
    """The judge must earn its place: no false alarms on a release that changed nothing.
    Twenty canaries back and forth between two identical backends, each judged on its own
    real traffic through nginx."""
    rig = canary_rig
    rig.stable.delay = rig.canary.delay = 0.005
    async with _shop(rig, tmp_path, interval="1s", min_samples=20) as shop:
        outcomes, serving = [], "v1"
        for _ in range(20):
            deployment, _ = await shop.deploy_under_load("v2" if serving == "v1" else "v1")
            assert deployment.checks["canary"]["steps"], deployment.reason  # really judged
            outcomes.append((deployment.state, deployment.reason))
            promoted = deployment.state is DeploymentState.PROMOTED
            serving = deployment.version if promoted else deployment.rolled_back_to
        promoted = [state for state, _ in outcomes if state is DeploymentState.PROMOTED]
        assert len(promoted) >= 19, outcomes


async def test_a_canary_30_percent_slower_is_rolled_back_by_the_judge(
    canary_rig: CanaryRig, tmp_path: Path
) -> None:
    rig = canary_rig
    rig.stable.delay, rig.canary.delay = 0.02, 0.026
    async with _shop(rig, tmp_path, interval="3s", min_samples=20) as shop:
        deployment, got = await shop.deploy_under_load("v2")
        assert deployment.state is DeploymentState.ROLLED_BACK, deployment.reason
        assert "judged fail" in deployment.reason and "latency High" in deployment.reason
        judgement = deployment.checks["canary"]["steps"][0]["judgement"]
        assert judgement["metrics"]["latency"]["classification"] == "High"
        assert judgement["metrics"]["error_ratio"]["classification"] == "Pass"
        assert judgement["score"] == 50.0
        assert {status for _, status in got} <= {200, 0}  # slow, never failing
        assert await rig.router.weights(UPSTREAM) == {rig.stable.address: 1}
        assert await _bodies(rig, 10) == {("stable", 200): 10}


async def test_nginx_refusing_the_canary_keeps_the_stable_serving(
    canary_rig: CanaryRig, tmp_path: Path
) -> None:
    rig = canary_rig
    # A name that does not resolve passes the config's checks, and nginx -t refuses it.
    async with _shop(rig, tmp_path, v2="nosuch.invalid:8080") as shop:
        before = rig.upstream_file.read_text()
        deployment, got = await shop.deploy_under_load("v2")
        assert deployment.state is DeploymentState.ROLLED_BACK, deployment.reason
        assert "canary step 33 %: upstream app: nginx -t refused" in deployment.reason
        assert "host not found" in deployment.reason
        assert "weights" not in deployment.checks["canary"]["steps"][0]  # never live
        assert rig.upstream_file.read_text() == before
        assert set(got) <= {("stable", 200), ("closed by a reload", 0)}
        assert await _bodies(rig, 10) == {("stable", 200): 10}


async def test_a_version_without_a_backend_is_refused_before_anything_runs(shop: Shop) -> None:
    with pytest.raises(UnknownRelease, match=r"shop: canary.backends .*version 'v3'"):
        await shop.controller.deploy("shop", "v3")
    assert shop.rt.store is not None
    assert [d.version for d in shop.rt.store.list_deployments("shop", "production")] == ["v1"]


@pytest.mark.parametrize(
    ("policy", "state", "said"),
    [
        ("fail", DeploymentState.ROLLED_BACK, "no data for error_ratio, latency (0 canary and 0 "
         "stable samples, 20 needed on each side), on_no_data: fail"),
        ("hold", DeploymentState.ROLLED_BACK, "held past verify_timeout (on_no_data: hold)"),
        ("pass", DeploymentState.PROMOTED, ""),
    ],
)  # fmt: skip
async def test_a_step_without_traffic_follows_on_no_data(
    canary_rig: CanaryRig, tmp_path: Path, policy: str, state: DeploymentState, said: str
) -> None:
    async with _shop(canary_rig, tmp_path, interval="500ms", on_no_data=policy) as shop:
        deployment = await asyncio.wait_for(shop.controller.deploy("shop", "v2"), 60)
        assert deployment.state is state, deployment.reason
        assert said in deployment.reason
        step = deployment.checks["canary"]["steps"][0]
        assert step["judgement"]["verdict"] == "nodata"
        assert step["canary"]["requests"] == step["stable"]["requests"] == 0


async def test_an_unreadable_access_log_never_passes_for_no_data(
    canary_rig: CanaryRig, tmp_path: Path
) -> None:
    rig = canary_rig
    async with _shop(rig, tmp_path, interval="1s", on_no_data="pass") as shop:
        deployment = await shop.controller.start("shop", "v2")
        for _ in range(400):  # the first beat: the step's log reader is open
            if "canary" in deployment.checks:
                break
            await asyncio.sleep(0.01)
        with rig.access_log.open("a") as log:
            log.write("not\tthe opsmedic format\n")
        for _ in range(600):
            if deployment.state.finished:
                break
            await asyncio.sleep(0.05)
        assert deployment.state is DeploymentState.ROLLED_BACK, deployment.reason
        assert "1 unreadable log line(s): 2 tab-separated fields, 5 expected" in deployment.reason


async def test_a_missing_access_log_fails_the_step_even_with_on_no_data_pass(
    canary_rig: CanaryRig, tmp_path: Path
) -> None:
    """Kayenta's "Successful" with no measurement: a log that is not there is not "no data"."""
    rig = canary_rig
    path = _site(rig, tmp_path, interval="1s", on_no_data="pass")
    nowhere = tmp_path / "not-written-by-nginx.log"
    path.write_text(path.read_text().replace(str(rig.access_log), str(nowhere)))
    rt = build(path, registry=build_registry())
    await rt.engine.start()
    try:
        shop = Shop(rig, rt)
        assert (await shop.controller.deploy("shop", "v1")).state is DeploymentState.PROMOTED
        deployment, _ = await shop.deploy_under_load("v2")
        assert deployment.state is DeploymentState.ROLLED_BACK, deployment.reason
        assert f"access log {nowhere} does not exist" in deployment.reason
    finally:
        await rt.engine.close()


def test_bad_canary_settings_are_named_at_their_place(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "opsmedic.yaml").write_text("""\
services:
  shop:
    versions: releases
    strategy: canary
    switch: [{run_command: {argv: ["true"]}}]
    canary:
      router:
        nginx: {upstream: "a b", include: up.conf, access_log: a.log, prefix: ., conf: n.conf}
      backends: {v1: "127.0.0.1:8001", v2: "127.0.0.1", v3: "127.0.0.1:99999"}
      steps: [50, 20]
      analysis: {checks: [latency], critical: [error_ratio], on_no_data: hold}
      sticky: {header: X-User, cookie: user}
  cart:
    versions: releases
    strategy: canary
    switch: [{run_command: {argv: ["true"]}}]
""")
    found = opsmedic("check", cwd=tmp_path)
    assert found.returncode == 2
    err = found.stderr
    for expected in (
        "opsmedic.yaml:8:27: services.shop.canary.router.nginx.upstream: String should match",
        "opsmedic.yaml:8:16: services.shop.canary.router.nginx.pid_file: required field is missing",
        "opsmedic.yaml:9:17: services.shop.canary.backends: Value error, backend of 'v2': "
        "'127.0.0.1' is not host:port",
        "opsmedic.yaml:10:14: services.shop.canary.steps: Value error, steps [50, 20]: each step "
        "must give the canary more than the last",
        "opsmedic.yaml:11:17: services.shop.canary.analysis: Value error, critical "
        "['error_ratio'] not among checks ['latency']",
        "opsmedic.yaml:12:15: services.shop.canary.sticky: Value error, give exactly one of "
        "header or cookie",
        "opsmedic.yaml:14:5: services.cart: Value error, strategy canary and a canary: section "
        "go together",
    ):
        assert expected in err, (expected, err)


def test_check_shows_the_canary_analysis_and_its_data_policy(
    canary_rig: CanaryRig, tmp_path: Path
) -> None:
    config = _site(canary_rig, tmp_path, interval="2s", min_samples=30)
    found = opsmedic("check", cwd=config.parent)
    assert found.returncode == 0, found.stderr
    assert (
        "service shop: canary steps [33] %, each analysed 2s on error_ratio, latency (critical: "
        "error_ratio), min_samples 30, on_no_data: fail"
    ) in found.stdout
