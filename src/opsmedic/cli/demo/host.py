"""The demo's host scenes: a log directory filling the disk, and a runaway process."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsmedic.cli import out
from opsmedic.cli.demo.stage import Stage, stop_process, watching
from opsmedic.errors import OpsmedicError

if TYPE_CHECKING:
    from opsmedic.runtime import Runtime

ROTATED = 6  # app.log.1 … app.log.6
LOG_BYTES = 120_000_000  # written by the disk scene, in all
# The disk probe's free-space minimum is set this far above what is free once the logs are
# written: archiving them (about 85 % smaller) frees more than that and uncrosses it.
MARGIN = LOG_BYTES // 3
# A shell busy loop in a script of this name: the kernel names the process after the
# script (what `ps` and the probe's `names:` filter see). A script, not our Python, so
# that `nobody` can run it when the venv lives under a home it cannot enter.
HOG_NAME = "demo-hog"
HOG = "#!/bin/sh\nwhile :; do :; done\n"
# Holds app.log open for writing, as a live service does: archive_logs must leave it alone.
WRITER = "import sys, time; f = open(sys.argv[1], 'a'); f.write('started\\n'); f.flush(); " \
    "time.sleep(3600)"  # fmt: skip


def host_world(stage: Stage, rules: Path) -> list[dict[str, Any]]:
    """Write the scenes' rules into `rules`; return their probes for the config."""
    import yaml

    from opsmedic.archive.space import free_bytes

    logs, archive = stage.root / "logs", stage.root / "archive"
    logs.mkdir()
    (rules / "host.yaml").write_text(yaml.safe_dump([{
        "name": "archive-demo-logs",
        "description": "the disk holding the logs ran low: archive them (verified) and free it",
        "when": {"source": "disk", "kind": "demo-disk", "for": "1s"},
        "do": [{"archive_logs": {"dir": str(logs), "include": ["*.log*"], "to": str(archive)}}],
        "throttle": {"once_within": "1m"},
    }, {
        "name": "stop-demo-hog",
        "description": "a process above 20 % CPU for 2 s: stop it (unleashed for the demo)",
        "when": {"source": "process", "kind": "runaway", "for": "2s"},
        "do": [{"kill_process": {"pid": "{{ event.labels.pid }}", "grace": "2s", "enforce": True,
                                 "start_time": "{{ event.labels.start_time }}"}}],
        "throttle": {"once_within": "1m"},
    }], sort_keys=False))  # fmt: skip
    if free_bytes(stage.root) < 4 * LOG_BYTES:
        raise OpsmedicError(f"the demo needs {4 * LOG_BYTES / 1e6:.0f} MB free in {stage.root}")
    return [
        {"name": "demo-disk", "type": "disk", "interval": "0.5s", "jitter": 0,
         "params": {"paths": [str(logs)], "min_free_bytes": 1,  # set by the scene
                    "max_used_percent": 100, "max_inodes_used_percent": 100}},
        # 20 %, not 50: the hog burns a whole core, but on a busy 2-core machine (a CI run)
        # the scheduler may give it only a third of one, and the scene must still play.
        {"name": "runaway", "type": "process", "interval": "0.5s", "jitter": 0,
         "params": {"max_cpu_percent": 20, "window": "2s", "names": [HOG_NAME]}},
    ]  # fmt: skip


async def disk_scene(stage: Stage, rt: Runtime) -> None:
    """Logs fill the disk; the disk probe fires; archive_logs archives, verifies, deletes."""
    import asyncio

    from opsmedic.archive.space import free_bytes

    logs = stage.root / "logs"
    # Written before the probe looks, so the rule finds the logs complete, as on a real host.
    out.print(f"the app has written {LOG_BYTES / 1e6:.0f} MB of logs into {logs}")
    await asyncio.to_thread(_write_logs, stage, logs)
    # The real disk is far from full; the demo's threshold sits just above what is free now.
    (probe,) = [p for p in rt.config.probes if p.name == "demo-disk"]
    probe.params["min_free_bytes"] = free_bytes(logs) + MARGIN
    async with watching(rt, ["demo-disk"]) as watch:
        rule = "archive-demo-logs"
        await watch.until(rule)
    (run,) = watch.succeeded(rule)
    details = run.steps[0].details
    freed = details.get("bytes_freed", 0) / 1e6
    out.print(f"  archived {details.get('files_archived')} files into {details.get('archives')}, "
              f"verified, then deleted them; freed {freed:.0f} MB")  # fmt: skip
    for skip in details.get("files_skipped", []):
        out.print(f"  left in place: {Path(skip['path']).name} ({skip['reason']})")
    out.print(f"  still in {logs.name}/: {', '.join(sorted(p.name for p in logs.iterdir()))}")


def _write_logs(stage: Stage, logs: Path) -> None:
    """Rotated logs two hours old, the live log held open, a database and a stray symlink."""
    import subprocess

    line = "2026-11-22T10:{:02d}:{:02d}Z INFO GET /api/v1/orders/{:08x} 200 took={}ms\n"
    per_file = LOG_BYTES // ROTATED
    old = time.time() - 7200
    for n in range(1, ROTATED + 1):
        path = logs / f"app.log.{n}"
        with path.open("w") as f:
            i = 0
            while f.tell() < per_file:
                f.write("".join(line.format(j // 60 % 60, j % 60, j * 7919, j % 977)
                                for j in range(i, i + 10_000)))  # fmt: skip
                i += 10_000
        os.utime(path, (old, old))
    (logs / "orders.db").write_bytes(b"SQLite format 3\0" + bytes(4080))
    (logs / "audit.log.7").symlink_to("/etc/hostname")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(logs / "app.log")])
    stage.children.append(writer.pid)
    while not (logs / "app.log").exists():
        time.sleep(0.01)


async def process_scene(stage: Stage, rt: Runtime) -> None:
    """A process burns a core; the process probe sees it for 2 s; kill_process stops it."""
    import asyncio

    # Root's processes are protected whatever a rule says, so as root the hog runs as nobody.
    user = "nobody" if os.geteuid() == 0 else None
    script = stage.root / "bin" / HOG_NAME
    script.parent.mkdir()
    script.write_text(HOG)
    script.chmod(0o755)
    stage.root.chmod(0o711)  # mkdtemp's 0700 would keep nobody out of the script's directory
    async with watching(rt, ["runaway"]) as watch:
        hog = await asyncio.create_subprocess_exec(str(script), user=user)
        stage.children.append(hog.pid)
        watch.say(f"[bold]a process starts burning a core[/] (pid {hog.pid}, {HOG_NAME})")
        rule = "stop-demo-hog"
        await watch.until(rule)
        await hog.wait()
    (run,) = watch.succeeded(rule)
    victim = run.steps[0].details
    out.print(f"  stopped pid {victim.get('pid')} of user {victim.get('user')} "
              f"after {victim.get('runtime_s', 0):.1f}s at {victim.get('cpu_percent', 0):.0f} % CPU"
              f" with {victim.get('signal', 'SIGTERM')}")  # fmt: skip
    out.print(
        "  (kill rules are leashed unless they say enforce: true; root, system users "
        "and opsmedic itself are never touched)"
    )


def stop_children(stage: Stage) -> None:
    """Stop whatever the scenes left running (the log writer, a hog that was not killed)."""
    for pid in stage.children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    stage.children.clear()
    for proc in stage.processes:
        stop_process(proc)
    stage.processes.clear()
