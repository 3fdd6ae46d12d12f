"""The demo's release scene: the seed's outage replayed, v2 of the shortener rolled back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from opsmedic.cli import out
from opsmedic.cli.demo.canary import canary_scene, canary_service
from opsmedic.cli.demo.release_parts import SERVICE, aftermath, expect, serving, start_shortener
from opsmedic.cli.demo.shortener import MARKER, VERSIONS, install
from opsmedic.cli.demo.stage import Stage, Watch, free_port
from opsmedic.model import DeploymentState

if TYPE_CHECKING:
    from opsmedic.runtime import Runtime

# The history the scene's repository gets: v2 is the seed's one-line change.
COMMITS = {"v1": "the URL shortener", "v2": "read the link store with json.loads"}


def release_world(stage: Stage, nginx: str | None) -> dict[str, Any]:
    """Install the shortener's two versions (and their git history, when git is there);
    return its `services:` entry: a canary through `nginx`, or without it the symlink switch."""
    root = stage.root / SERVICE
    root.mkdir()
    install(root)
    service = canary_service(stage, root, nginx) if nginx else _switch_service(root)
    repo = _history(root)
    if repo is not None:
        service["git"] = str(repo)
    return {SERVICE: service}


def _switch_service(root: Path) -> dict[str, Any]:
    url = f"http://127.0.0.1:{free_port()}"
    switch = [sys.executable, "-m", MARKER, "switch", "--root", str(root), "{{ version }}"]
    return {
        "versions": str(root / "versions"), "current": str(root / "current"),
        "version_url": f"{url}/version", "strategy": "switch",
        "bake": "1s", "switch_timeout": "5s", "verify_timeout": "5s",
        "switch": [{"run_command": {"argv": switch}, "timeout": "10s"}],
        "verify": [{"name": "home", "http": {"url": f"{url}/", "max_latency": "200ms"},
                    "interval": "0.1s", "min_samples": 3, "on_no_data": "fail"}],
    }  # fmt: skip


def _history(root: Path) -> Path | None:
    """A git repository with a commit and a tag per version, so a rollback shows what
    changed; None without git (a fresh Debian has none) or when it fails."""
    git = shutil.which("git")
    if git is None:
        return None
    repo = root / "repo"
    repo.mkdir()
    # The user's own git settings (signing, hooks, templates) stay out of the demo.
    env = os.environ | {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    ident = ["-c", "user.name=opsmedic demo", "-c", "user.email=demo@localhost"]

    def run(*args: str) -> None:
        subprocess.run([git, "-C", str(repo), *args], env=env, check=True,
                       capture_output=True, timeout=30)  # fmt: skip

    try:
        run("init", "-q")
        for version in VERSIONS:
            (repo / "app.py").write_text((root / "versions" / version / "app.py").read_text())
            run("add", "app.py")
            run(*ident, "commit", "-qm", COMMITS[version])
            run("tag", version)
    except (OSError, subprocess.SubprocessError):
        return None
    return repo


async def release_scene(stage: Stage, rt: Runtime) -> None:
    """v1 is deployed and promoted; v2 (json.loads) answers 500 and is rolled back: as a
    canary through nginx when the world has one, else by the symlink switch."""
    if rt.config.services[SERVICE].canary is not None:
        await canary_scene(stage, rt)
    else:
        await _switch_scene(stage, rt)


async def _switch_scene(stage: Stage, rt: Runtime) -> None:
    import asyncio

    controller = rt.releases
    assert controller is not None
    service = rt.config.services[SERVICE]
    root = service.versions.parent
    assert service.version_url is not None
    base = service.version_url.removesuffix("/version")
    out.print(f"nginx is not installed: the symlink switch instead of a canary. The seed's URL "
              f"shortener on {base}, versions in {root / 'versions'}; the switch flips "
              "`current` and SIGHUPs the app")  # fmt: skip
    await asyncio.to_thread(start_shortener, stage.processes, root, base)
    watch = Watch()
    controller.progress = lambda line: watch.say(escape(line))
    try:
        good = await controller.deploy(SERVICE, "v1", requested_by="demo")
        expect(good, DeploymentState.PROMOTED)
        watch.say("[bold]v2 ships the seed's bug[/]: json.loads(f) where v1 had json.load(f)")
        bad = await controller.deploy(SERVICE, "v2", requested_by="demo")
        expect(bad, DeploymentState.ROLLED_BACK)
    finally:
        controller.progress = None
    for name, check in bad.checks.get("verify", {}).items():
        seen = [s for s in check.get("recent", []) if s.get("verdict") == "bad"]
        out.print(f"  errors seen by {name}: " + "; ".join(escape(str(s.get("message")))
                                                           for s in seen))  # fmt: skip
    version, status = await asyncio.to_thread(serving, base)
    out.print(f"  serving now: {version} (GET / → {status})")
    await aftermath(rt, bad, root)
