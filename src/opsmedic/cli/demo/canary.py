"""The release scene as a canary: v1 and v2 behind a real nginx, v2 given 33 % and taken back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rich.markup import escape

from opsmedic.cli import out
from opsmedic.cli.demo.front import UPSTREAM, Front
from opsmedic.cli.demo.release_parts import SERVICE, aftermath, expect, serving, start_shortener
from opsmedic.cli.demo.stage import Stage, Watch, free_port, stop_process
from opsmedic.cli.demo.users import Users
from opsmedic.model import DeploymentState

if TYPE_CHECKING:
    from opsmedic.config.canary import CanaryConfig
    from opsmedic.model import Deployment
    from opsmedic.releases.access_log import Traffic
    from opsmedic.runtime import Runtime

USERS_RATE = 100.0  # requests/s through nginx while v2 is deployed
SETTLE_S = 0.5  # the users' traffic before v2 and after its rollback, to compare


def canary_service(stage: Stage, root: Path, nginx: str) -> dict[str, Any]:
    """The shortener as a canary service: a backend per version, and an nginx of the demo's
    own in front (configured now, started by the scene)."""
    front = Front(stage.root / "nginx", nginx, free_port())
    backends = {version: f"127.0.0.1:{free_port()}" for version in ("v1", "v2")}
    front.write(backends["v1"], backends["v2"])
    return {
        "versions": str(root / "versions"), "version_url": f"{front.url}/version",
        "strategy": "canary", "bake": "1s", "switch_timeout": "5s", "verify_timeout": "10s",
        # The router moves the traffic; nothing else has to change on a switch.
        "switch": [{"noop": {"message": "nginx routes the traffic"}}],
        "verify": [{"name": "home", "http": {"url": f"{front.url}/", "max_latency": "200ms"},
                    "interval": "0.1s", "min_samples": 3, "on_no_data": "fail"}],
        "canary": {"router": front.router(), "backends": backends, "steps": [33],
                   "analysis": {"interval": "5s", "min_samples": 20, "on_no_data": "fail"}},
    }  # fmt: skip


async def canary_scene(stage: Stage, rt: Runtime) -> None:
    """v1 promoted through nginx; users keep requesting; v2 gets 33 %, answers 500, the
    early abort stops it and nginx sends everything to v1 again."""
    import asyncio

    from opsmedic.releases.access_log import Traffic

    controller, service = rt.releases, rt.config.services[SERVICE]
    assert controller is not None
    assert service.canary is not None
    canary, root = service.canary, service.versions.parent
    nginx = canary.router.nginx
    front = Front(nginx.prefix, nginx.program, urlsplit(str(service.version_url)).port or 80)
    out.print(f"the seed's URL shortener as a canary: v1 on {canary.backends['v1']}, v2 on "
              f"{canary.backends['v2']}, Debian's nginx in front on {front.url} (its files in "
              f"{nginx.prefix}); opsmedic's router writes the upstream's weights")  # fmt: skip
    for version, address in canary.backends.items():
        await asyncio.to_thread(start_shortener, stage.processes, root, f"http://{address}",
                                version)  # fmt: skip
    proxy = await asyncio.to_thread(front.start, stage.processes)
    watch, users = Watch(), Users(front.url, USERS_RATE)
    traffic = Traffic(nginx.access_log)  # what nginx routes from now on, read at the end
    controller.progress = lambda line: watch.say(escape(line))
    try:
        expect(await controller.deploy(SERVICE, "v1", requested_by="demo"),
               DeploymentState.PROMOTED)  # fmt: skip
        began = time.time()
        users.start()
        watch.say(f"users send GET / through nginx, {USERS_RATE:g} a second")
        await asyncio.sleep(SETTLE_S)
        watch.say("[bold]v2 ships the seed's bug[/]: json.loads(f) where v1 had json.load(f)")
        bad = await controller.deploy(SERVICE, "v2", requested_by="demo")
        await asyncio.sleep(SETTLE_S)
        await asyncio.to_thread(users.stop)
        controller.progress = None
        expect(bad, DeploymentState.ROLLED_BACK)
        _step(bad, canary)
        weights = await controller.canaries.router(SERVICE, canary).weights(UPSTREAM)
        _router(weights, canary)
        traffic.poll()
        _access_log(traffic, began, canary)
        _users(users, began, bad)
        version, status = await asyncio.to_thread(serving, front.url)
        out.print(f"  nginx serves now: {version} (GET / → {status})")
        await aftermath(rt, bad, root)
    finally:
        controller.progress = None
        await asyncio.to_thread(users.stop)
        await asyncio.to_thread(stop_process, proxy)  # now: the demo goes on without it
        traffic.follower.close()


def _name(canary: CanaryConfig, address: str) -> str:
    return next((v for v, a in canary.backends.items() if a == address), address)


def _step(deployment: Deployment, canary: CanaryConfig) -> None:
    """The canary step as the deployment recorded it: weights, each side's counts, the abort."""
    for step in deployment.checks.get("canary", {}).get("steps", []):
        weights = ", ".join(f"{_name(canary, a)} {w}" for a, w in step.get("weights", {}).items())
        sides = "; ".join(
            f"{side} {step[side]['requests']} requests, {step[side]['errors']} errors"
            for side in ("canary", "stable") if side in step
        )  # fmt: skip
        out.print(f"  step {step['canary_percent']} % (weights {weights}): {sides}")
        out.print(f"    early abort: {escape(str(step.get('early_abort')))}")


def _router(weights: dict[str, int], canary: CanaryConfig) -> None:
    total = sum(weights.values()) or 1
    live = ", ".join(f"{_name(canary, a)} {100 * w / total:.0f} %" for a, w in weights.items())
    out.print(f"  nginx's upstream {UPSTREAM} now, read back with nginx -T: {live}")


def _access_log(traffic: Traffic, began: float, canary: CanaryConfig) -> None:
    """Per backend, what nginx's access log says it routed since the users began."""
    out.print("  nginx's access log since the users began, per backend:")
    for address, stats in sorted(traffic.window(began).items()):
        span = f", {max(stats.times) - min(stats.times):.1f} s from first to last" if (
            stats.times) else ""  # fmt: skip
        out.print(f"    {_name(canary, address)} ({address}): {stats.requests} requests, "
                  f"{stats.errors} errors{span}")  # fmt: skip


def _users(users: Users, began: float, deployment: Deployment) -> None:
    """What the users got: how many 500s, and none once v2 was rolled back."""
    seen = users.since(began)
    failed = [s for s in seen if s is None or s >= 500]
    after = [s for s in users.since(deployment.finished_at or 0.0) if s is None or s >= 500]
    out.print(f"  the users got {len(seen)} answers, {len(failed)} of them errors (v2's share "
              f"until the abort); errors after the rollback: {len(after)}")  # fmt: skip
