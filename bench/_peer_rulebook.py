"""The peer: install ansible-rulebook in its own venv and run a rulebook over a JSONL file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from _proc import ProcResult, log, run_measured

# Pinned so that figures stay comparable between runs and with REFERENCE.md section 1.1.
PEER_PACKAGES = ["ansible-rulebook==1.3.2", "ansible-core==2.19.14"]
JDK_PACKAGE = "openjdk-17-jdk-headless"
SOURCE_NAME = "opsmedic_bench_jsonl"
END_KIND = "opsmedic_bench_end"
READY_KIND = "opsmedic_bench_ready"
LAT_MARK = "OPSMEDIC_BENCH_LAT"
END_RULE = "bench-end"
HIT_MARK = "OPSMEDIC_BENCH_HIT"

# A whole event source, loaded by ansible-rulebook from `-S DIR` as sources/<name>.py.
# It replays the first `limit` lines of a JSONL file, then one sentinel event that the
# control rule answers with `shutdown: {kind: now}`; with the default sequential strategy
# that action runs only after every earlier action, so the process exits as soon as the
# work is done. (A source that just returns also shuts ansible-rulebook down, but when an
# action is still queued at that moment it waits --shutdown-delay, 60 s by default.)
SOURCE_PLUGIN = '''\
"""ansible-rulebook event source: replay a JSONL file, then send one end-of-run sentinel.

With `rate` > 0 the events are paced on an absolute schedule and each carries its
scheduled arrival time as `bench_at` (epoch seconds), for latency measurement.
"""

import asyncio
import json
import sys
import time
from typing import Any


async def main(queue: asyncio.Queue[Any], args: dict[str, Any]) -> None:
    limit = int(args["limit"])
    rate = float(args.get("rate", 0))
    if rate:
        # The queue holds one event: the second put returns once the engine took the first.
        for _ in range(2):
            await queue.put({"source": "bench", "kind": "@READY_KIND@"})
        print(f"BENCH_ENGINE_READY {time.time()}", file=sys.stderr, flush=True)
    t0 = time.time() + 0.05
    sent = 0
    with open(args["path"], encoding="utf-8") as lines:
        for line in lines:
            if sent >= limit:
                break
            event = json.loads(line)
            if rate:
                at = t0 + sent / rate
                delay = at - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                event["bench_at"] = at
            await queue.put(event)
            sent += 1
            if sent == 2 and not rate:
                # The second put returns only once the ruleset has taken the first: the
                # engine (and its JVM) is up by now.
                print(f"BENCH_ENGINE_READY {time.time()}", file=sys.stderr, flush=True)
            if sent % 10000 == 0:
                # Progress, so that a run killed at the timeout still tells how far it got.
                print(f"BENCH_PROGRESS {time.time()} {sent}", file=sys.stderr, flush=True)
    await queue.put({"source": "bench", "kind": "@END_KIND@"})
    print(f"BENCH_SOURCE_DONE {time.time()} {sent}", file=sys.stderr, flush=True)
    # Stay alive: the control rule's `shutdown` ends the process once the actions are done.
    await asyncio.sleep(float(args.get("linger", 3600)))
'''.replace("@END_KIND@", END_KIND).replace("@READY_KIND@", READY_KIND)


@dataclass(slots=True)
class RulebookEnv:
    """Where the installed peer lives and the environment it needs (JAVA_HOME, PATH)."""

    venv: Path
    env: dict[str, str]
    install_s: float | None  # None: reused an existing venv
    version: str

    @property
    def binary(self) -> Path:
        return self.venv / "bin" / "ansible-rulebook"


@dataclass(slots=True)
class PeerRun:
    """One ansible-rulebook run over `events` workload events, and what it reported."""

    events: int
    proc: ProcResult
    rules_triggered: int | None
    events_processed: int | None
    hits_printed: int | None
    engine_ready_at: float | None
    latencies_ms: list[float]
    progress: tuple[float, int] | None  # (epoch seconds, events the engine had taken), last

    @property
    def partial_rate(self) -> float | None:
        """Events/s up to the last progress line, from process start (for killed runs)."""
        if self.progress is None:
            return None
        at, done = self.progress
        return done / (at - self.proc.started_at)

    @property
    def ok(self) -> bool:
        return self.proc.returncode == 0 and not self.proc.timed_out

    @property
    def steady_s(self) -> float | None:
        """Seconds from the engine taking its first event to process exit (no start-up)."""
        if self.engine_ready_at is None:
            return None
        return self.proc.started_at + self.proc.wall_s - self.engine_ready_at


def _java_home() -> Path:
    java = shutil.which("java")
    if java is None:
        log(f"java not found: apt-get install -y {JDK_PACKAGE}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", JDK_PACKAGE], check=True, env=env,
                       stdout=sys.stderr)  # fmt: skip
        java = shutil.which("java")
        if java is None:
            raise RuntimeError(f"{JDK_PACKAGE} installed but `java` is still not on PATH")
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    # /usr/bin/java -> /etc/alternatives/java -> /usr/lib/jvm/<jdk>/bin/java
    return Path(java).resolve().parent.parent


def ensure_rulebook(venv: Path) -> RulebookEnv:
    """Install the pinned ansible-rulebook into `venv` unless it is already there."""
    java_home = _java_home()
    env = {
        **os.environ,
        "JAVA_HOME": str(java_home),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
    }
    binary = venv / "bin" / "ansible-rulebook"
    install_s: float | None = None
    # ansible-core is needed even without collections: ansible-rulebook asks `ansible-galaxy`
    # where collections live before it falls back to its built-in event filters.
    if not (binary.exists() and (venv / "bin" / "ansible-galaxy").exists()):
        log(f"installing {' '.join(PEER_PACKAGES)} into {venv} (JAVA_HOME={java_home})")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True, env=env, stdout=sys.stderr)
        subprocess.run([*pip, *PEER_PACKAGES], check=True, env=env, stdout=sys.stderr)
        install_s = time.perf_counter() - t0
        log(f"installed in {install_s:.1f} s")
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import importlib.metadata as m; print(m.version('ansible-rulebook'))"],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    return RulebookEnv(venv=venv, env=env, install_s=install_s, version=out.stdout.strip())


def condition_of(spec: dict[str, Any]) -> str:
    """An ansible-rulebook condition string for one workload rule spec (see engine.py)."""
    parts = []
    for key in ("source", "kind", "resource", "host"):
        if key in spec:
            parts.append(f"event.{key} == {json.dumps(spec[key])}")
    for name, value in spec.get("labels", {}).items():
        parts.append(f"event.labels.{name} == {json.dumps(value)}")
    if "value_gt" in spec:
        parts.append(f"event.value > {spec['value_gt']}")
    return " and ".join(parts)


def write_rulebook(
    workdir: Path,
    events_path: Path,
    limit: int,
    rules: list[dict[str, Any]],
    hit_action: str,
    rate: float = 0.0,
) -> tuple[Path, Path, Path]:
    """Write sources/, the rulebook and an inventory; returns (rulebook, inventory, sources).

    `hit_action` is what the matching rule does: `none` (timed runs), `debug` printing a
    marker (correctness run) or `latency` (debug printing the event's scheduled arrival).
    """
    sources = workdir / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    (sources / f"{SOURCE_NAME}.py").write_text(SOURCE_PLUGIN)
    inventory = workdir / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    lines = [
        "---",
        "- name: opsmedic-bench",
        "  hosts: all",
        "  sources:",
        f"    - {SOURCE_NAME}:",
        f"        path: {json.dumps(str(events_path))}",
        f"        limit: {limit}",
        f"        rate: {rate}",
        "  rules:",
    ]
    hit = {
        "none": ["none: {}"],
        "debug": ["debug:", f"  msg: {HIT_MARK}"],
        "latency": ["debug:", f'  msg: "{LAT_MARK} {{{{ event.bench_at }}}}"'],
    }[hit_action]
    for spec in rules:
        action = hit if spec["match"] else ["none: {}"]
        lines += [
            f"    - name: {spec['name']}",
            f"      condition: {json.dumps(condition_of(spec))}",
            "      action:",
            *(f"        {a}" for a in action),
        ]
    lines += [
        f"    - name: {END_RULE}",
        f'      condition: event.kind == "{END_KIND}"',
        "      action:",
        "        shutdown:",
        "          kind: now",
        "          message: opsmedic bench done",
    ]
    rulebook = workdir / "rulebook.yml"
    rulebook.write_text("\n".join(lines) + "\n")
    return rulebook, inventory, sources


def _stat(text: str, name: str) -> int | None:
    """A counter from the Drools session stats that `-v` prints when the session ends."""
    found = re.findall(rf"\b{name}=(\d+)", text)
    return int(found[-1]) if found else None


_BANNER = re.compile(r"^\*\* (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) \[debug\]")


def _latencies_ms(out: str) -> list[float]:
    """Scheduled arrival -> debug action start, from each `[debug]` banner's local timestamp
    (taken by ansible-rulebook as the action prints) and the arrival time in its message."""
    result = []
    banner_at: float | None = None
    for line in out.splitlines():
        m = _BANNER.match(line)
        if m:
            banner_at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        elif line.startswith(LAT_MARK) and banner_at is not None:
            result.append((banner_at - float(line.split()[1])) * 1000)
            banner_at = None
    return result


def run_rulebook(
    peer: RulebookEnv,
    workdir: Path,
    events_path: Path,
    limit: int,
    rules: list[dict[str, Any]],
    *,
    hit_action: str,
    timeout_s: float,
    rate: float = 0.0,
) -> PeerRun:
    """Run ansible-rulebook over the first `limit` events (at `rate`/s if given, else flat out)."""
    workdir.mkdir(parents=True, exist_ok=True)
    rulebook, inventory, sources = write_rulebook(
        workdir, events_path, limit, rules, hit_action, rate
    )
    cmd = [str(peer.binary), "--rulebook", str(rulebook), "-i", str(inventory),
           "-S", str(sources), "-v"]  # fmt: skip
    proc = run_measured(
        cmd, stdout_path=workdir / "stdout.txt", stderr_path=workdir / "stderr.txt",
        timeout_s=timeout_s, env=peer.env, cwd=workdir,
    )  # fmt: skip
    out, err = proc.stdout(), proc.stderr()
    ready = re.search(r"BENCH_ENGINE_READY (\d+\.\d+)", err)
    progress = re.findall(r"BENCH_PROGRESS (\d+\.\d+) (\d+)", err)
    return PeerRun(
        events=limit,
        proc=proc,
        rules_triggered=_stat(out + err, "rulesTriggered"),
        events_processed=_stat(out + err, "eventsProcessed"),
        hits_printed=(
            sum(line.strip() == HIT_MARK for line in out.splitlines())
            if hit_action == "debug"
            else None
        ),
        engine_ready_at=float(ready.group(1)) if ready else None,
        latencies_ms=_latencies_ms(out) if hit_action == "latency" else [],
        progress=(float(progress[-1][0]), int(progress[-1][1])) if progress else None,
    )
