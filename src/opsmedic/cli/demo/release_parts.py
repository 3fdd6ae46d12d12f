"""What both release scenes share: starting the shortener, asking it, showing a deployment."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from opsmedic.cli import out
from opsmedic.cli.demo.shortener import MARKER
from opsmedic.cli.demo.stage import stop_process
from opsmedic.errors import OpsmedicError
from opsmedic.model import DeploymentState

if TYPE_CHECKING:
    from opsmedic.model import Deployment
    from opsmedic.runtime import Runtime

SERVICE = "shortener"
DIFF_LINES = 12  # of the diff shown: the seed's change is two lines


def expect(deployment: Deployment, state: DeploymentState) -> None:
    if deployment.state is not state:
        raise OpsmedicError(f"the demo's deployment of {deployment.version} ended "
                            f"{deployment.state}, not {state}: {deployment.reason}")  # fmt: skip


def start_shortener(
    processes: list[subprocess.Popen[bytes]], root: Path, base: str, version: str | None = None
) -> None:
    """Start the shortener on `base` (serving `current`, or only `version`), added to
    `processes` at once; return once it answers."""
    port = base.rsplit(":", 1)[1]
    pinned = [] if version is None else ["--version", version]
    proc = subprocess.Popen([sys.executable, "-m", MARKER, "serve", "--root", str(root),
                             "--port", port, *pinned], stdin=subprocess.DEVNULL)  # fmt: skip
    processes.append(proc)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            serving(base)  # any answer: v2 answers / with 500s, as it should
            return
        except OSError:
            time.sleep(0.05)
    stop_process(proc)
    raise OpsmedicError(f"the demo's shortener on {base} did not start")


def serving(base: str) -> tuple[str, int]:
    """The version the app (or the load balancer in front) answers with, and GET /'s status."""
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(base + "/version", timeout=5) as resp:  # noqa: S310 - loopback
        version = resp.read().decode()
    try:
        with urllib.request.urlopen(base + "/", timeout=5) as resp:  # noqa: S310 - loopback
            return version, int(resp.status)
    except urllib.error.HTTPError as exc:
        return version, exc.code


def last_error(log: Path) -> str:
    """The last traceback's last line (the exception), as the seed's on-call would grep it."""
    lines = [line for line in log.read_text().splitlines() if line and not line[0].isspace()]
    errors = [line for line in lines if "Error" in line]
    return errors[-1] if errors else "no error logged"


async def aftermath(rt: Runtime, deployment: Deployment, root: Path) -> None:
    """The app's error, the timeline, what changed, and `opsmedic deployments`."""
    assert rt.store is not None
    await rt.engine.drain()  # the deployment's events are stored for the timeline
    out.print(f"  the app's log while v2 served: {escape(last_error(root / 'shortener.log'))}")
    found = rt.store.list_events(source="opsmedic", kind="deployment", limit=50)
    mine = [e for e in reversed(found) if e.payload.get("deployment_id") == deployment.id]
    out.print(f"  timeline of {deployment.version} ({deployment.id}):")
    for event in mine:
        since = event.time - deployment.created_at
        reason = event.payload.get("reason") or ""
        out.print(f"    +{since:4.1f}s  {event.labels.get('state')}  {escape(str(reason))}")
    _what_changed(deployment)
    from opsmedic.cli.releases import print_deployments

    print_deployments(rt.store.list_deployments(SERVICE))


def _what_changed(deployment: Deployment) -> None:
    """The commits and the diff the rollback attached: what `git log -p` took 23 minutes for."""
    changed = deployment.checks.get("what_changed")
    if changed is None:
        out.print("  what changed: not shown, the scene has no git repository (no git here)")
        return
    if "error" in changed:
        out.print(f"  what changed: {escape(str(changed['error']))}")
        return
    out.print(f"  what changed from {changed['good']} to {changed['bad']} "
              f"(git log and diff of {escape(str(changed['repo']))}):")  # fmt: skip
    for commit in changed["commits"]:
        out.print(f"    {escape(commit)}")
    diff = [line for line in str(changed["diff"]).splitlines()
            if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]  # fmt: skip
    for line in diff[:DIFF_LINES]:
        out.print(f"    [{'green' if line[0] == '+' else 'red'}]{escape(line)}[/]")
