"""The demo's release scene: the seed's outage replayed, v2 of the shortener rolled back."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from opsmedic.cli import out
from opsmedic.cli.demo.shortener import MARKER, install
from opsmedic.cli.demo.stage import Stage, Watch, free_port
from opsmedic.errors import OpsmedicError
from opsmedic.model import DeploymentState

if TYPE_CHECKING:
    from opsmedic.model import Deployment
    from opsmedic.runtime import Runtime

SERVICE = "shortener"


def release_world(stage: Stage) -> dict[str, Any]:
    """Install the shortener's two versions; return its `services:` entry for the config."""
    root = stage.root / SERVICE
    root.mkdir()
    install(root)
    url = f"http://127.0.0.1:{free_port()}"
    switch = [sys.executable, "-m", MARKER, "switch", "--root", str(root), "{{ version }}"]
    return {SERVICE: {
        "versions": str(root / "versions"), "current": str(root / "current"),
        "version_url": f"{url}/version", "strategy": "switch",
        "bake": "1s", "switch_timeout": "5s", "verify_timeout": "5s",
        "switch": [{"run_command": {"argv": switch}, "timeout": "10s"}],
        "verify": [{"name": "home", "http": {"url": f"{url}/", "max_latency": "200ms"},
                    "interval": "0.1s", "min_samples": 3, "on_no_data": "fail"}],
    }}  # fmt: skip


async def release_scene(stage: Stage, rt: Runtime) -> None:
    """v1 is deployed and promoted; v2 (json.loads) answers 500; verification rolls it back."""
    import asyncio

    controller, store = rt.releases, rt.store
    assert controller is not None
    assert store is not None
    service = rt.config.services[SERVICE]
    root = service.versions.parent
    assert service.version_url is not None
    base = service.version_url.removesuffix("/version")
    out.print(f"the seed's URL shortener on {base}, versions in {root / 'versions'}; this scene "
              "uses the symlink switch (flip `current`, SIGHUP the app), which needs no "
              "load balancer; `strategy: canary` does the same through nginx")  # fmt: skip
    stage.children.append(await asyncio.to_thread(_start, root, base))
    watch = Watch()
    controller.progress = lambda line: watch.say(escape(line))
    try:
        good = await controller.deploy(SERVICE, "v1", requested_by="demo")
        _expect(good, DeploymentState.PROMOTED)
        watch.say("[bold]v2 ships the seed's bug[/]: json.loads(f) where v1 had json.load(f)")
        bad = await controller.deploy(SERVICE, "v2", requested_by="demo")
        _expect(bad, DeploymentState.ROLLED_BACK)
    finally:
        controller.progress = None
    await rt.engine.drain()  # the deployment's events are stored for the timeline
    for name, check in bad.checks.get("verify", {}).items():
        seen = [s for s in check.get("recent", []) if s.get("verdict") == "bad"]
        out.print(f"  errors seen by {name}: " + "; ".join(escape(str(s.get("message")))
                                                           for s in seen))  # fmt: skip
    out.print(f"  the app's log while v2 served: {escape(_last_error(root / 'shortener.log'))}")
    version, status = await asyncio.to_thread(_serving, base)
    out.print(f"  serving now: {version} (GET / → {status})")
    _timeline(rt, bad)
    from opsmedic.cli.releases import print_deployments

    print_deployments(store.list_deployments(SERVICE))


def _expect(deployment: Deployment, state: DeploymentState) -> None:
    if deployment.state is not state:
        raise OpsmedicError(f"the demo's deployment of {deployment.version} ended "
                            f"{deployment.state}, not {state}: {deployment.reason}")  # fmt: skip


def _start(root: Path, base: str) -> int:
    """Start the shortener serving v1 and return its pid once it answers."""
    port = base.rsplit(":", 1)[1]
    proc = subprocess.Popen([sys.executable, "-m", MARKER, "serve", "--root", str(root),
                             "--port", port], stdin=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if _serving(base)[1] == 200:
                return proc.pid
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise OpsmedicError(f"the demo's shortener on {base} did not start")


def _serving(base: str) -> tuple[str, int]:
    """The version the app has loaded, and the status of GET /."""
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(base + "/version", timeout=5) as resp:  # noqa: S310 - loopback
        version = resp.read().decode()
    try:
        with urllib.request.urlopen(base + "/", timeout=5) as resp:  # noqa: S310 - loopback
            return version, int(resp.status)
    except urllib.error.HTTPError as exc:
        return version, exc.code


def _last_error(log: Path) -> str:
    """The last traceback's last line (the exception), as the seed's on-call would grep it."""
    lines = [line for line in log.read_text().splitlines() if line and not line[0].isspace()]
    errors = [line for line in lines if "Error" in line]
    return errors[-1] if errors else "no error logged"


def _timeline(rt: Runtime, deployment: Deployment) -> None:
    """The deployment's events (one per state), seconds after it started."""
    assert rt.store is not None
    found = rt.store.list_events(source="opsmedic", kind="deployment", limit=50)
    mine = [e for e in reversed(found) if e.payload.get("deployment_id") == deployment.id]
    out.print(f"  timeline of {deployment.version} ({deployment.id}):")
    for event in mine:
        since = event.time - deployment.created_at
        reason = event.payload.get("reason") or ""
        out.print(f"    +{since:4.1f}s  {event.labels.get('state')}  {escape(str(reason))}")
