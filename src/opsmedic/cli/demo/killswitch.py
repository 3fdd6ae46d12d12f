"""The demo's kill-switch scene: a rule turns flag new_checkout off; the shop changes at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsmedic.cli import out
from opsmedic.cli.demo.shop import FLAG, NEW, OLD
from opsmedic.cli.demo.stage import Stage, Watch, free_port, stop_process, watching
from opsmedic.errors import OpsmedicError

if TYPE_CHECKING:
    from opsmedic.runtime import Runtime

KILL = "kill-new-checkout"
PROBE = "shop-checkout"


def killswitch_world(stage: Stage, rules: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Write the scene's rule; return its probe and its flag for the config."""
    import yaml

    (rules / "flags.yaml").write_text(yaml.safe_dump([{
        "name": KILL,
        "description": "the checkout answers errors: switch the new checkout off",
        "when": {"source": "http", "kind": PROBE, "status": "firing"},
        "do": [{"set_flag": {"flag": FLAG, "enabled": False}}],
    }], sort_keys=False))  # fmt: skip
    url = f"http://127.0.0.1:{free_port()}/checkout"
    probe = {"name": PROBE, "type": "http", "interval": "0.3s", "timeout": "1s", "jitter": 0,
             "params": {"url": url}}  # fmt: skip
    flag = {FLAG: {"description": "the one-page checkout", "default": "on"}}
    return [probe], flag


@dataclass(slots=True)
class _Served:
    """What the shop's /checkout served, read every 20 ms, and when it last changed."""

    body: bytes = b""
    changes: list[tuple[float, bytes]] = field(default_factory=list)  # (monotonic, body)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


async def killswitch_scene(stage: Stage, rt: Runtime) -> None:
    """The new checkout fails; the probe fires; the rule turns the flag off; the shop serves
    the old checkout without a restart; mended, a person turns the flag back on."""
    from opsmedic.api.listen import bind
    from opsmedic.api.server import ApiServer
    from opsmedic.metrics import Metrics
    from opsmedic.runtime import api_app
    from opsmedic.tokens import Scope, digest, mint

    assert rt.store is not None  # the demo's store is SQLite: the flag service is there
    (probe,) = [p for p in rt.config.probes if p.name == PROBE]
    base = str(probe.params["url"]).removesuffix("/checkout")
    record, secret = mint("demo-shop", [Scope.READ], rt.clock.now())
    rt.store.add_token(record, digest(secret))
    app = api_app(rt, Metrics())
    api = ApiServer(app, bind("127.0.0.1", 0), on_stop=app.close_streams)
    await api.start()
    shop: subprocess.Popen[bytes] | None = None
    try:
        host, port = api.address
        shown = base.removeprefix("http://")
        out.print(f"opsmedic's API on {host}:{port} (the flags' change stream); a shop on "
                  f"{shown} reads flag {FLAG} through FlagClient")  # fmt: skip
        shop = await asyncio.to_thread(_spawn, stage, base, f"http://{host}:{port}", secret)
        served = _Served()
        await _started(base, shop)
        async with watching(rt, [PROBE]) as watch:
            reader = asyncio.create_task(_read(base, served, watch))
            try:
                await _story(base, rt, watch, served)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
    finally:
        if shop is not None:  # before the API, whose stop the shop would report as stale
            await asyncio.to_thread(stop_process, shop)
        await api.stop()
    await _history(rt)


def _spawn(stage: Stage, base: str, api: str, token: str) -> subprocess.Popen[bytes]:
    """Start the shop and hand it to the stage in this thread: a scene cancelled while it
    waits for the thread still has the shop stopped when the demo ends."""
    port = base.rsplit(":", 1)[1]
    argv = [sys.executable, "-m", "opsmedic.cli.demo.shop", "--port", port, "--api", api]
    # The token through the environment: a command line is visible to every user (ps).
    shop = subprocess.Popen(argv, env=os.environ | {"OPSMEDIC_TOKEN": token})
    stage.processes.append(shop)
    return shop


async def _story(base: str, rt: Runtime, watch: Watch, served: _Served) -> None:
    from opsmedic.flags.changes import Author

    assert rt.flags is not None
    await _until(served, NEW)
    await asyncio.sleep(1.0)  # a few healthy readings first
    watch.say("[bold]the new checkout's payment service fails[/] (GET /break)")
    await _get(base + "/break")
    await watch.until(KILL)
    watch.say("the probe reads ok again: the incident resolves")
    await _until(served, OLD)
    killed = (await rt.flags.get(FLAG)).updated_at
    off_at = next(t for t, body in reversed(served.changes) if body.startswith(OLD))
    watch.say(f"the shop served the old checkout {_since(killed, off_at, rt):.2f} s after the "
              "flag changed, without a restart")  # fmt: skip
    watch.say("[bold]the payment service is mended[/] (GET /fix); a person turns the flag on")
    await _get(base + "/fix")
    await rt.flags.set_enabled(FLAG, True, Author("cli", "demo"))
    await _until(served, NEW)


async def _get(url: str) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=5.0) as http:
        (await http.get(url)).raise_for_status()


def _since(at: float, seen_monotonic: float, rt: Runtime) -> float:
    """Seconds from a store time `at` (the clock's) to a monotonic reading on this host."""
    return (rt.clock.now() - at) - (time.monotonic() - seen_monotonic)


async def _until(served: _Served, prefix: bytes) -> None:
    while not served.body.startswith(prefix):
        served.changed.clear()
        await served.changed.wait()


async def _read(base: str, served: _Served, watch: Watch) -> None:
    """Ask for /checkout every 20 ms as a shopper would; print each change of what it serves."""
    import httpx

    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            resp = await http.get(base + "/checkout")
            body = resp.content.strip()
            if body != served.body:
                served.body = body
                served.changes.append((time.monotonic(), body))
                served.changed.set()
                watch.say(f"the shop serves: {resp.status_code} {body.decode()}")
            await asyncio.sleep(0.02)


async def _started(base: str, shop: subprocess.Popen[bytes]) -> None:
    """Wait until the shop answers (it binds once its flags are loaded)."""
    import httpx

    async with httpx.AsyncClient(timeout=1.0) as http:
        for _ in range(400):
            if shop.poll() is not None:
                raise OpsmedicError(f"the demo shop exited ({shop.returncode})")
            try:
                await http.get(base + "/checkout")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise OpsmedicError("the demo shop did not start")


async def _history(rt: Runtime) -> None:
    from rich.markup import escape

    assert rt.flags is not None
    out.print(f"  flag {FLAG}'s history, oldest first (`opsmedic flags history {FLAG}`):")
    for change in reversed(await rt.flags.history(FLAG)):
        state = "on" if change.after.enabled else "off"
        run = f" run …{change.by.run_id[-8:]}" if change.by.run_id else ""
        out.print(f"    v{change.version} {state} by {escape(str(change.by))}{run}")
