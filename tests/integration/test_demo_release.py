"""The demo's release scene (scene 5) on its own, both ways: a canary through a real nginx,
and, on a machine with neither nginx nor git (a fresh Debian), the symlink switch."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from opsmedic.cli.demo.front import Front, find_nginx
from opsmedic.cli.demo.host import stop_children
from opsmedic.cli.demo.release import release_scene, release_world
from opsmedic.cli.demo.stage import Stage, free_port
from opsmedic.errors import OpsmedicError
from opsmedic.runtime import build, build_registry

SCENE_LIMIT_S = 60.0  # the demo's --timeout in its own test; the scene takes a few seconds


def _play(root: Path, nginx: str | None) -> list[tuple[str, str, str]]:
    """Play scene 5 in `root`; the deployments as (version, previous, state), newest first."""
    stage = Stage(root, free_port())
    (root / "rules").mkdir()
    config = root / "opsmedic.yaml"
    config.write_text(yaml.safe_dump({
        "store": f"sqlite:///{root / 'opsmedic.db'}", "rules_dir": str(root / "rules"),
        "services": release_world(stage, nginx),
    }))  # fmt: skip
    rt = build(config, registry=build_registry())

    async def main() -> None:
        await rt.engine.start()
        try:
            await asyncio.wait_for(release_scene(stage, rt), SCENE_LIMIT_S)
        finally:
            await rt.engine.close()

    began = time.monotonic()
    try:
        asyncio.run(main())
    finally:
        stop_children(stage)
    print(f"scene 5 took {time.monotonic() - began:.1f}s")  # measured, never asserted
    assert rt.store is not None
    return [(d.version, d.previous_version, d.state) for d in rt.store.list_deployments()]


def test_the_canary_scene_aborts_v2_through_nginx_and_shows_what_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nginx = find_nginx()
    assert nginx is not None, "nginx (Debian package nginx) is needed: scripts/test.sh has it"
    assert _play(tmp_path, nginx) == [("v2", "v1", "rolled_back"), ("v1", "", "promoted")]
    text = capsys.readouterr().out
    for seen in ("the seed's URL shortener as a canary",
                 "step 33 % (weights v1 67, v2 33): canary ",
                 "rolled_back: canary step 33 %: aborted early: canary ",
                 "nginx's upstream shortener now, read back with nginx -T: v1 100 %",
                 "errors after the rollback: 0", "nginx serves now: v1 (GET / → 200)",
                 "TypeError: the JSON object must be str, bytes or bytearray, not TextIOWrapper",
                 "read the link store with json.loads", "-        return json.load(f)",
                 "+        return json.loads(f)"):  # fmt: skip
        assert seen in text, seen
    # The early abort's counts: every canary request failed, no stable one did.
    aborted = re.search(r"early abort: canary (\d+)/(\d+) errors, stable 0/(\d+)", text)
    assert aborted is not None, text
    assert aborted[1] == aborted[2] and int(aborted[1]) >= 10 and int(aborted[3]) > 0
    # nginx's access log: v2's every request an error, v1's none, and both had traffic.
    logged = dict(re.findall(r"    (v[12]) \(127\.0\.0\.1:\d+\): (\d+ requests, \d+) errors", text))
    v1, v2 = ([int(n) for n in logged[v].split(" requests, ")] for v in ("v1", "v2"))
    assert v1[0] > 0 and v1[1] == 0, logged
    assert v2[0] > 0 and v2[0] == v2[1], logged
    timeline = text[text.index("timeline of v2") :]
    assert [s for s in ("started", "verifying", "rolled_back") if f"  {s}  " in timeline] == [
        "started", "verifying", "rolled_back"]  # fmt: skip
    # nginx stopped with the scene: its master removes the pid file on the way out.
    assert not (tmp_path / "nginx" / "nginx.pid").exists()


def test_without_nginx_or_git_the_scene_uses_the_symlink_switch_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no git; nginx is passed as not found
    world = tmp_path / "world"
    world.mkdir()
    assert _play(world, None) == [("v2", "v1", "rolled_back"), ("v1", "", "promoted")]
    text = capsys.readouterr().out
    for seen in ("nginx is not installed: the symlink switch instead of a canary",
                 "errors seen by shortener/home: status 500; status 500; status 500",
                 "serving now: v1 (GET / → 200)",
                 "TypeError: the JSON object must be str, bytes or bytearray, not TextIOWrapper",
                 "what changed: not shown, the scene has no git repository"):  # fmt: skip
        assert seen in text, seen
    assert not (world / "nginx").exists()


def test_an_nginx_that_cannot_start_is_named_with_its_error_and_stopped(tmp_path: Path) -> None:
    nginx = find_nginx()
    assert nginx is not None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        front = Front(tmp_path / "nginx", nginx, taken.getsockname()[1])
        front.write("127.0.0.1:1", "127.0.0.1:2")
        started: list[subprocess.Popen[bytes]] = []
        with pytest.raises(OpsmedicError, match=f"the demo's nginx on {front.url} did not "
                           "start: .*Address already in use"):  # fmt: skip
            front.start(started)
    assert [p.poll() is not None for p in started] == [True]
