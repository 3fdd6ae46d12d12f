"""The demo itself: real remediations on this machine, in a temporary directory, then exit."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from rich.markup import escape
from rich.rule import Rule as Heading

from opsmedic.cli import out
from opsmedic.cli.demo.dns import dns_scene, dns_world
from opsmedic.cli.demo.front import find_nginx
from opsmedic.cli.demo.host import disk_scene, host_world, process_scene, stop_children
from opsmedic.cli.demo.killswitch import killswitch_scene, killswitch_world
from opsmedic.cli.demo.release import release_scene, release_world
from opsmedic.cli.demo.stage import Stage, free_port, watching
from opsmedic.cli.history import print_runs
from opsmedic.errors import OpsmedicError

if TYPE_CHECKING:
    from opsmedic.runtime import Runtime

# The runtime, the probes, asyncio, urllib and YAML are imported by the functions that use
# them; this module itself only when the demo plays (cli/demo/__init__.py).


Scene: TypeAlias = "Callable[[Stage, Runtime], Awaitable[None]]"


def play(keep: bool, timeout: float, only: list[int] | None = None) -> None:
    """Play the demo: real services fail, probes notice, rules remediate, history shows it;
    `only`: the numbers of the scenes to play (1 is the first), every one when empty."""
    import asyncio

    from opsmedic.runtime import build, build_registry

    root = Path(tempfile.mkdtemp(prefix="opsmedic-demo-"))
    stage = Stage(root, free_port())
    stage.state.mkdir()
    config = _write_world(stage)
    out.print(Heading("opsmedic demo"))
    out.print(f"working in {root} (SQLite store, rules in {root / 'rules'})")
    rt = build(config, registry=build_registry())
    try:
        chosen = [SCENES[n - 1] for n in only] if only else SCENES
        asyncio.run(_play(stage, rt, timeout, chosen))
    finally:
        _stop_webapp(stage)
        stop_children(stage)
    out.print(Heading("history (opsmedic runs)"))
    assert rt.store is not None
    runs = rt.store.list_runs(limit=20)
    print_runs(runs, "runs recorded in the store", narrow=True)
    for run in runs:
        for step in run.steps:
            text = step.output.strip() or step.message
            out.print(f"run …{run.id[-8:]} step {step.action}: {escape(text)}")
    if keep:
        out.print(f"kept {root}; inspect a run with: opsmedic runs show ID -c {config}")
    else:
        shutil.rmtree(root, ignore_errors=True)


async def _play(stage: Stage, rt: Runtime, scene_s: float, scenes: list[tuple[str, Scene]]) -> None:
    """The scenes in turn on one running engine, each bounded by `scene_s` seconds."""
    import asyncio

    await rt.engine.start()
    try:
        for title, scene in scenes:
            out.print(Heading(title))
            try:
                await asyncio.wait_for(scene(stage, rt), scene_s)
            except TimeoutError:
                raise OpsmedicError(f"demo {title!r} did not finish within {scene_s:g}s") from None
    finally:
        await rt.engine.close()


def _write_world(stage: Stage) -> Path:
    import yaml

    rules = stage.root / "rules"
    rules.mkdir()
    webapp = [sys.executable, "-m", "opsmedic.cli.demo.webapp", "restart",
              "--state-dir", str(stage.state), "--port", str(stage.port)]  # fmt: skip
    (rules / "webapp.yaml").write_text(yaml.safe_dump([{
        "name": "restart-wedged-webapp",
        "description": "the web app failed its health check for 1 s: restart it",
        "when": {"source": "http", "kind": "webapp", "for": "1s"},
        "do": [{"run_command": {"argv": webapp}, "timeout": "20s"}],
        "throttle": {"once_within": "30s"},
        "limit": {"max_runs": 3, "within": "10m"},
    }], sort_keys=False))  # fmt: skip
    probes: list[dict[str, Any]] = [
        {"name": "webapp", "type": "http", "interval": "0.3s", "timeout": "1s", "jitter": 0,
         "params": {"url": f"http://127.0.0.1:{stage.port}/health"}},
    ]  # fmt: skip
    probes += host_world(stage, rules)
    probes += dns_world(stage, rules)
    shop_probes, flags = killswitch_world(stage, rules)
    probes += shop_probes
    config = stage.root / "opsmedic.yaml"
    config.write_text(yaml.safe_dump({
        "store": f"sqlite:///{stage.root / 'opsmedic.db'}",
        "rules_dir": str(rules),
        "probes": probes,
        "services": release_world(stage, find_nginx()),
        "flags": flags,
    }, sort_keys=False))  # fmt: skip
    return config


async def webapp_scene(stage: Stage, rt: Runtime) -> None:
    """A web app wedges; the http probe notices; after 1 s the rule restarts it; it recovers."""
    import asyncio

    out.print(f"starting a small web app on 127.0.0.1:{stage.port}")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opsmedic.cli.demo.webapp", "restart",
        "--state-dir", str(stage.state), "--port", str(stage.port),
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    if await proc.wait() != 0:
        raise OpsmedicError("the demo web app did not start")
    async with watching(rt, ["webapp"]) as watch:
        await asyncio.sleep(1.0)  # a few healthy readings first, so the change is visible
        watch.say("[bold]the web app wedges[/] (GET /break)")
        await asyncio.to_thread(_get, f"http://127.0.0.1:{stage.port}/break")
        rule = "restart-wedged-webapp"
        await watch.until(rule)
    restarts = len(watch.succeeded(rule))
    out.print(f"  remediated: {restarts} restart(s); the web app answers 200 again")


def _get(url: str) -> None:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback demo URL
        resp.read()


def _stop_webapp(stage: Stage) -> None:
    from opsmedic.cli.demo.webapp import running

    proc = running(stage.state)
    if proc is not None:
        proc.terminate()


SCENES: list[tuple[str, Scene]] = [
    ("scene 1: a web app wedges and is restarted", webapp_scene),
    ("scene 2: a log directory fills the disk and is archived", disk_scene),
    ("scene 3: a runaway process is stopped", process_scene),
    ("scene 4: the primary DNS server dies; DNS fails over and back", dns_scene),
    ("scene 5: the seed's incident: v2 of the URL shortener is rolled back", release_scene),
    (
        "scene 6: a new checkout fails; a rule turns its flag off, the shop changes at once",
        killswitch_scene,
    ),
]
