"""Strategy rolling end to end: the controller replaces four real instances behind a real nginx
(tests/services_rolling.py) batch by batch, verifies each batch, promotes or rolls back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from opsmedic.model import Deployment, DeploymentState
from opsmedic.releases.controller import ReleaseController
from opsmedic.runtime import Runtime, build, build_registry

if __package__:
    from ..cli_process import OPSMEDIC, opsmedic
    from ..services_rolling import UPSTREAM, RollingRig
else:
    from cli_process import OPSMEDIC, opsmedic
    from services_rolling import UPSTREAM, RollingRig

MAX_REQUESTS = 5000  # the bound of every load a test sends
PAUSE_S = 0.005  # between two requests of the load: at most 200 requests/s


def _config(rig: RollingRig, *, batch: int = 1, interval: str = "300ms", min_samples: int = 20,
            on_no_data: str = "pass", version_path: str = "/version") -> str:  # fmt: skip
    nginx = rig.settings
    # JSON is YAML: the router's settings as the rig knows them.
    router = json.dumps({"nginx": {
        "upstream": UPSTREAM, "include": str(rig.upstream_file), "prefix": str(nginx.prefix),
        "access_log": str(rig.access_log), "conf": str(nginx.conf),
        "pid_file": str(nginx.pid_file), "program": nginx.program, "error_log": str(rig.error_log),
    }})  # fmt: skip
    return f"""
store: sqlite:///{rig.root}/site/opsmedic.db
api: {{enabled: false}}
services:
  api:
    versions: {rig.releases}
    strategy: rolling
    bake: 300ms
    verify_timeout: 5s
    switch_timeout: 5s
    switch:
      - run_command:
          argv: ["{sys.executable}", -m, opsmedic.cli.demo.shortener, switch, --root,
                 "{rig.root}/instances/{{{{ instance }}}}", "{{{{ version }}}}"]
    verify:
      - name: home
        http: {{url: "{rig.url}/"}}
        interval: 50ms
        min_samples: 3
        on_no_data: fail
    rolling:
      router: {router}
      instances: [{", ".join(rig.instances)}]
      batch: {batch}
      version_path: {version_path or "null"}
      analysis:
        interval: {interval}
        checks: [error_ratio]
        min_samples: {min_samples}
        on_no_data: {on_no_data}
"""


def _site(rig: RollingRig, **settings: str | int) -> Path:
    site = rig.root / "site"
    (site / "rules").mkdir(parents=True, exist_ok=True)
    (site / "opsmedic.yaml").write_text(_config(rig, **settings))  # type: ignore[arg-type]
    return site / "opsmedic.yaml"


@asynccontextmanager
async def _api(rig: RollingRig, **settings: str | int) -> AsyncIterator[ReleaseController]:
    """A runtime whose service `api` has v1 deployed (a first deployment) on every instance."""
    rt: Runtime = build(_site(rig, **settings), registry=build_registry())
    await rt.engine.start()
    try:
        assert rt.releases is not None
        first, _ = await _deploy_under_load(rt.releases, rig, "v1")
        assert first.state is DeploymentState.PROMOTED, first.reason
        yield rt.releases
    finally:
        await rt.engine.close()


async def _deploy_under_load(
    controller: ReleaseController, rig: RollingRig, version: str
) -> tuple[Deployment, Counter[tuple[str, int]]]:
    """Deploy `version` while a client sends requests through nginx; the answers it got."""
    got, done = Counter[tuple[str, int]](), asyncio.Event()

    async def load(client: httpx.AsyncClient) -> None:
        for _ in range(MAX_REQUESTS):
            if done.is_set():
                return
            try:
                response = await client.get("/")
                got[(response.text.split("(")[-1].strip(")\n"), response.status_code)] += 1
            except (httpx.RemoteProtocolError, httpx.ReadError):
                got[("closed by a reload", 0)] += 1  # an old worker closed the idle keep-alive
            await asyncio.sleep(PAUSE_S)

    async with httpx.AsyncClient(base_url=rig.url, timeout=10) as client:
        sending = asyncio.create_task(load(client))
        try:
            return await asyncio.wait_for(controller.deploy("api", version), 90), got
        finally:
            done.set()
            await sending


def _switched(deployment: Deployment) -> list[tuple[str, str]]:
    return [(s["instance"], s["version"]) for s in deployment.checks["switches"]]


async def test_a_good_version_rolls_through_every_batch_and_is_promoted(
    rolling_rig: RollingRig,
) -> None:
    rig = rolling_rig
    async with _api(rig, interval="1s", on_no_data="fail") as controller:
        deployment, got = await _deploy_under_load(controller, rig, "v3")
    assert deployment.state is DeploymentState.PROMOTED, deployment.reason
    assert deployment.last_known_good
    batches = deployment.checks["rolling"]["batches"]
    assert [b["instances"] for b in batches] == [[i] for i in rig.instances]
    assert [b["verdict"] for b in batches] == ["passed"] * 4
    for batch in batches:  # each judged on its own real traffic, and checked directly
        (instance,) = batch["instances"]
        assert batch["traffic"][instance]["requests"] >= 20, batch
        assert batch["judgement"][instance]["verdict"] == "pass", batch
        assert batch["verify"][f"home@{instance}"]["verdict"] == "passed", batch
    assert _switched(deployment) == [(i, "v3") for i in rig.instances]
    assert rig.serving() == dict.fromkeys(rig.instances, "v3")
    # A drained instance gets no request: the clients never saw an error.
    assert {status for _, status in got} <= {200, 0}, got
    assert {version for version, _ in got} >= {"v1", "v3"}


async def test_a_bad_batch_is_rolled_back_before_the_next_batch_starts(
    rolling_rig: RollingRig,
) -> None:
    rig = rolling_rig
    first, *others = rig.instances
    async with _api(rig, interval="1s") as controller:
        deployment, got = await _deploy_under_load(controller, rig, "v2")
    assert deployment.state is DeploymentState.ROLLED_BACK, deployment.reason
    assert deployment.rolled_back_to == "v1"
    assert deployment.reason.startswith(f"rolling batch 1 of 4 ({first}): "), deployment.reason
    assert deployment.reason.endswith("; rolled back to v1")
    assert len(deployment.checks["rolling"]["batches"]) == 1
    assert _switched(deployment) == [(first, "v2"), (first, "v1")]
    # The instances not yet replaced never loaded the bad version; the first went back.
    assert rig.loaded(first) == ["v1", "v2", "v1"]
    assert all(rig.loaded(i) == ["v1"] for i in others)
    assert rig.serving() == dict.fromkeys(rig.instances, "v1")
    assert got[("v1", 200)] > 0
    assert sum(n for (_, status), n in got.items() if status == 500) <= 100, got
    async with httpx.AsyncClient(base_url=rig.url, timeout=10) as client:
        assert {(await client.get("/")).status_code for _ in range(20)} == {200}


@pytest.mark.parametrize("version_path", ["/version", ""])
async def test_a_batch_failing_its_checks_sent_straight_to_it_is_rolled_back(
    rolling_rig: RollingRig, version_path: str
) -> None:
    rig = rolling_rig
    first, *others = rig.instances
    # Without version_path the rollback goes by what this process switched: the first only.
    async with _api(rig, interval="1s", version_path=version_path) as controller:
        # No client traffic: the service's `home` check, sent to the instance, catches it.
        deployment = await asyncio.wait_for(controller.deploy("api", "v2"), 60)
    assert deployment.state is DeploymentState.ROLLED_BACK, deployment.reason
    assert deployment.reason.startswith(
        f"rolling batch 1 of 4 ({first}): verification failed: home@{first}: 3 of 3 samples bad "
        "(last: status 500)"
    ), deployment.reason
    checked = deployment.checks["rolling"]["batches"][0]["verify"][f"home@{first}"]
    assert checked["verdict"] == "failed"
    assert _switched(deployment) == [(first, "v2"), (first, "v1")]
    assert all(rig.loaded(i) == ["v1"] for i in others)
    assert rig.serving() == dict.fromkeys(rig.instances, "v1")


@pytest.mark.parametrize("batch", [1, 2])
async def test_a_switch_failing_on_the_second_instance_puts_the_first_back(
    rolling_rig: RollingRig, batch: int
) -> None:
    rig = rolling_rig
    first, second, *others = rig.instances
    async with _api(rig, batch=batch) as controller:
        # The second instance lacks v3: its switch step exits 2, `current` untouched.
        (rig.instance_root(second) / "versions" / "v3" / "app.py").unlink()
        deployment = await asyncio.wait_for(controller.deploy("api", "v3"), 60)
    assert deployment.state is DeploymentState.ROLLED_BACK, deployment.reason
    where = (
        f"rolling batch 2 of 4 ({second})" if batch == 1 else f"batch 1 of 2 ({first}, {second})"
    )
    assert where in deployment.reason, deployment.reason
    assert f"{second}: switch steps failed" in deployment.reason
    assert "exit 2" in deployment.reason
    assert _switched(deployment) == [(first, "v3"), (second, "v3"), (first, "v1")]
    assert rig.loaded(first) == ["v1", "v3", "v1"]
    assert all(rig.loaded(i) == ["v1"] for i in [second, *others])
    assert rig.serving() == dict.fromkeys(rig.instances, "v1")
    assert f"server {second} weight=1;" in rig.upstream_file.read_text()  # back in


async def test_nginx_refusing_the_config_leaves_every_instance_serving(
    rolling_rig: RollingRig,
) -> None:
    rig = rolling_rig
    async with _api(rig) as controller:
        before = rig.upstream_file.read_text()
        with rig.settings.conf.open("a") as conf:  # someone's typo in nginx.conf
            conf.write("no_such_directive on;\n")
        deployment = await asyncio.wait_for(controller.deploy("api", "v3"), 60)
    assert deployment.state is DeploymentState.ROLLED_BACK, deployment.reason
    assert deployment.reason.startswith(
        f"rolling batch 1 of 4 ({rig.instances[0]}): draining: upstream {UPSTREAM}: nginx -t "
        "refused"
    ), deployment.reason
    assert 'unknown directive "no_such_directive"' in deployment.reason
    assert "switches" not in deployment.checks or not _switched(deployment)
    assert rig.upstream_file.read_text() == before
    assert rig.serving() == dict.fromkeys(rig.instances, "v1")
    async with httpx.AsyncClient(base_url=rig.url, timeout=10) as client:
        assert {(await client.get("/")).status_code for _ in range(8)} == {200}


async def test_an_emergency_rollback_switches_every_instance_back_without_analysis(
    rolling_rig: RollingRig,
) -> None:
    rig = rolling_rig
    async with _api(rig) as controller:
        deployment = await asyncio.wait_for(controller.deploy("api", "v3"), 60)
        assert deployment.state is DeploymentState.PROMOTED, deployment.reason
    # Another process, which never saw the instances: it asks each one its version.
    found = opsmedic("rollback", "api", "--reason", "alert", cwd=rig.root / "site")
    assert found.returncode == 0, found.stderr
    assert "rolled_back" in found.stdout and "rolled back to v1" in found.stderr
    assert rig.serving() == dict.fromkeys(rig.instances, "v1")
    assert all(rig.loaded(i) == ["v1", "v3", "v1"] for i in rig.instances)
    assert f"switching {rig.instances[0]} to v1" in found.stderr
    again = opsmedic("rollback", "api", cwd=rig.root / "site")
    assert again.returncode == 0, again.stderr
    assert "already rolled back to v1" in again.stderr
    assert all(len(rig.loaded(i)) == 3 for i in rig.instances)


def test_a_deployment_killed_between_batches_is_rolled_back_at_the_next_start(
    rolling_rig: RollingRig,
) -> None:
    rig = rolling_rig
    first, *others = rig.instances
    site = _site(rig).parent
    assert opsmedic("deploy", "api", "v1", cwd=site).returncode == 0
    _site(rig, interval="60s")  # the first batch's analysis outlives the kill
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
    child = subprocess.Popen([*OPSMEDIC, "deploy", "api", "v3"], cwd=site, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while rig.loaded(first) != ["v1", "v3"] or f"server {first} weight=1;" not in (
            rig.upstream_file.read_text()
        ):
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert rig.serving()[first] == "v3"  # in traffic, with nobody left to judge it
    _site(rig)
    # The next opsmedic to start, which never saw the instances, asks each its version.
    after = opsmedic("deploy", "api", "v1", cwd=site)
    assert after.returncode == 0, after.stderr
    assert "recovered " in after.stderr and ": rolled_back" in after.stderr
    assert rig.loaded(first)[:3] == ["v1", "v3", "v1"]
    assert all("v3" not in rig.loaded(i) for i in others)
    assert rig.serving() == dict.fromkeys(rig.instances, "v1")


def test_bad_rolling_settings_are_named_at_their_place(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    nginx = (
        "{upstream: api, include: up.conf, access_log: a.log, prefix: ., conf: n.conf, "
        "pid_file: n.pid}"
    )
    (tmp_path / "opsmedic.yaml").write_text(f"""\
services:
  api:
    versions: releases
    strategy: rolling
    switch: [{{run_command: {{argv: [deploy, "{{{{ instance }}}}", "{{{{ version }}}}"]}}}}]
    rolling:
      router: {{nginx: {nginx}}}
      instances: ["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8001"]
      version_path: version
      analysis: {{max_error_ratio: 2, on_no_data: hold}}
  web:
    versions: releases
    strategy: rolling
    switch: [{{run_command: {{argv: ["true"]}}}}]
  cart:
    versions: releases
    version_url: http://127.0.0.1:8080/version
    strategy: rolling
    switch: [{{run_command: {{argv: ["true"]}}}}]
    rolling:
      router: {{nginx: {nginx}}}
      instances: ["127.0.0.1:8001", "127.0.0.1:8002"]
      analysis: {{on_no_data: fail}}
  edge:
    versions: releases
    strategy: rolling
    switch: [{{run_command: {{argv: ["true"]}}}}]
    rolling:
      router: {{nginx: {nginx}}}
      instances: ["127.0.0.1:8001", "localhost"]
      analysis: {{on_no_data: fail}}
  shop:
    versions: releases
    strategy: rolling
    switch: [{{run_command: {{argv: ["true"]}}}}]
    rolling:
      router: {{nginx: {nginx}}}
      instances: ["127.0.0.1:8001", "127.0.0.1:8002"]
      batch: 2
      analysis: {{on_no_data: fail}}
  plain:
    versions: releases
    switch: [{{run_command: {{argv: [deploy, "{{{{ instance }}}}"]}}}}]
""")
    found = opsmedic("check", cwd=tmp_path)
    assert found.returncode == 2
    err = found.stderr
    for expected in (
        "opsmedic.yaml:8:18: services.api.rolling.instances: Value error, instance "
        "'127.0.0.1:8001' is listed twice",
        "opsmedic.yaml:9:21: services.api.rolling.version_path: String should match",
        "opsmedic.yaml:10:35: services.api.rolling.analysis.max_error_ratio: Input should be "
        "less than or equal to 1",
        "opsmedic.yaml:12:5: services.web: Value error, strategy rolling and a rolling: "
        "section go together",
        "opsmedic.yaml:16:5: services.cart: Value error, strategy rolling checks each instance "
        "at rolling.version_path: current and version_url do not apply",
        "opsmedic.yaml:30:18: services.edge.rolling.instances: Value error, instance: "
        "'localhost' is not host:port",
        "opsmedic.yaml:39:14: services.shop.rolling.batch: Value error, batch 2: at most 1 of "
        "the 2 instances",
        "opsmedic.yaml:43:44: services.plain.switch[0].run_command.argv[1]: unknown template "
        "variable 'instance'",
    ):
        assert expected in err, (expected, err)
    assert "services.api.switch" not in err  # a rolling service's steps see `instance`


def test_check_shows_the_rolling_batches_and_their_data_policy(rolling_rig: RollingRig) -> None:
    config = _site(rolling_rig, batch=2, interval="2s", min_samples=30, on_no_data="hold")
    found = opsmedic("check", cwd=config.parent)
    assert found.returncode == 0, found.stderr
    assert (
        "service api: rolling 4 instances, 2 at a time, version_path /version, each batch "
        "analysed 2s on error_ratio (critical: error_ratio), min_samples 30, on_no_data: hold, "
        "max_error_ratio -"
    ) in found.stdout
