"""Benchmark: `opsmedic run` idle — start-up to the first probe, RSS and CPU — against Monit;
and how fast the command answers `--version` and `--help` (goal: 0.3 s each).

Both watch the same five things every 5 s: three `command` probes running `true` and two
`http` probes against a local stdlib HTTP server that this script starts. opsmedic has a
SQLite store and a few rules (none fires while all is healthy); Monit runs in the foreground
with its own control, pid, state and id files. Progress goes to stderr; the last line of stdout
is one JSON object with the figures and the ratio.

`--version` and `--help` are timed as whole processes (interpreter start to exit), the
median of `--cli-runs` runs each, before the idle run.

    .venv/bin/python bench/idle.py [--seconds 60] [--warmup 5] [--skip-peer] [--keep]
                                   [--cli-runs 11] [--cli-only]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proc import log, rounded

REPO = Path(__file__).resolve().parent.parent
N_COMMAND = 3
N_HTTP = 2
MIB = 2**20
STOP_GRACE_S = 10.0  # SIGTERM, then SIGKILL after this long
CLI_GOAL_S = 0.3  # `opsmedic --version` and `--help`, each (issue 11)


# --- the watched service ---------------------------------------------------------------------


class Hits:
    """Requests the HTTP server answered, by client (User-Agent prefix), with their times."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str, list[float]] = {}

    def add(self, agent: str) -> None:
        client = agent.split("/", 1)[0].lower() or "unknown"
        with self._lock:
            self._times.setdefault(client, []).append(time.time())

    def times(self, client: str) -> list[float]:
        with self._lock:
            return list(self._times.get(client, []))


def _handler(hits: Hits) -> type[BaseHTTPRequestHandler]:
    class Health(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            hits.add(self.headers.get("User-Agent", ""))
            body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Health


@contextlib.contextmanager
def health_server(hits: Hits) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hits))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="health", daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


# --- process handling ------------------------------------------------------------------------


@dataclass(slots=True)
class Idle:
    """What one idle process did over the measured window."""

    rss_mib: float = 0.0  # at the end of the window
    rss_peak_mib: float = 0.0  # highest 1 s sample during the window
    cpu_s_per_min: float = 0.0  # user+system, own and reaped children's
    window_s: float = 0.0
    rss_samples: list[float] = field(default_factory=list)


def _cpu(ps: psutil.Process) -> float:
    t = ps.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def start(cmd: list[str], work: Path, tag: str) -> subprocess.Popen[bytes]:
    with (
        (work / f"{tag}.stdout.txt").open("wb") as out,
        (work / f"{tag}.stderr.txt").open("wb") as err,
    ):
        return subprocess.Popen(
            cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=work,
            start_new_session=True,
        )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM the process group, SIGKILL it if it lingers; the exit code (None if killed)."""
    if proc.poll() is not None:
        return proc.returncode
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_GRACE_S)
        return None


def measure_idle(proc: subprocess.Popen[bytes], warmup: float, seconds: float, tag: str) -> Idle:
    """RSS and CPU of `proc` over `seconds` after `warmup` seconds; RSS sampled every second.

    The warm-up leaves out what start-up finishes after the first check (late imports, the
    rules watcher starting), so the CPU figure is the steady state's.
    """
    ps = psutil.Process(proc.pid)
    deadline = time.perf_counter() + warmup
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{tag} exited during the warm-up (code {proc.returncode})")
        time.sleep(0.1)
    idle = Idle()
    t0, cpu0 = time.perf_counter(), _cpu(ps)
    next_note = t0 + 15
    while (now := time.perf_counter()) - t0 < seconds:
        if proc.poll() is not None:
            raise RuntimeError(f"{tag} exited during the idle window (code {proc.returncode})")
        idle.rss_samples.append(ps.memory_info().rss / MIB)
        if now >= next_note:
            log(f"{tag}: {now - t0:.0f}/{seconds:g} s idle, RSS {idle.rss_samples[-1]:.1f} MiB")
            next_note += 15
        time.sleep(min(1.0, max(0.0, seconds - (now - t0))))
    idle.window_s = time.perf_counter() - t0
    idle.cpu_s_per_min = (_cpu(ps) - cpu0) / idle.window_s * 60
    idle.rss_mib = ps.memory_info().rss / MIB
    idle.rss_peak_mib = max([*idle.rss_samples, idle.rss_mib])
    return idle


# --- opsmedic --------------------------------------------------------------------------------


def opsmedic_world(work: Path, port: int, interval: float) -> Path:
    """opsmedic.yaml (SQLite store in `work`, five probes) and a rules directory."""
    rules = work / "rules"
    rules.mkdir()
    url = f"http://127.0.0.1:{port}"
    (rules / "idle.yaml").write_text(f"""\
# Healthy readings match none of these: the service stays idle.
- name: restart-web
  when: {{source: http, status: firing, for: 15s}}
  do:
    - run_command: {{argv: ["true"]}}
  throttle: {{once_within: 10m, per: [resource]}}
  limit: {{max_runs: 3, within: 1h}}
  on_failure:
    - http_request: {{method: POST, url: "{url}/hook", json: {{rule: restart-web}}}}
- name: command-failing
  when: {{source: command, status: firing}}
  do: [noop]
  throttle: {{once_within: 5m, per: [kind]}}
- name: slow-web
  when: {{source: http, kind: web1, value: "> 2000"}}  # latency, ms
  do:
    - http_request: {{method: POST, url: "{url}/hook", json: {{rule: slow-web}}}}
  throttle: {{once_within: 10m}}
""")
    probes = [
        {"name": f"cmd{i}", "type": "command", "interval": f"{interval:g}s", "jitter": 0,
         "params": {"argv": ["true"]}}
        for i in range(1, N_COMMAND + 1)
    ] + [
        {"name": f"web{i}", "type": "http", "interval": f"{interval:g}s", "jitter": 0,
         "timeout": "2s", "params": {"url": f"{url}/health/{i}"}}
        for i in range(1, N_HTTP + 1)
    ]  # fmt: skip
    config = work / "opsmedic.yaml"
    store = f"sqlite:///{work / 'opsmedic.db'}"
    config.write_text(json.dumps({"store": store, "rules_dir": "rules", "probes": probes}))
    return config


def _first_event(db: Path) -> tuple[float, int, int] | None:
    """(time of the earliest stored event, events stored, runs stored), or None while there
    is no event."""
    if not db.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return None
    try:
        first, n = con.execute("SELECT min(time), count(*) FROM events").fetchone()
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error:  # not migrated yet
        return None
    finally:
        con.close()
    return None if first is None else (float(first), int(n), int(runs))


def run_opsmedic(args: argparse.Namespace, work: Path, port: int, hits: Hits) -> dict[str, Any]:
    config = opsmedic_world(work, port, args.interval)
    cmd = [opsmedic_exe(), "--log-level", "info", "run", "-c", str(config)]
    db = work / "opsmedic.db"
    log(f"opsmedic: {' '.join(cmd)}")
    started_at = time.time()
    t0 = time.perf_counter()
    proc = start(cmd, work, "opsmedic")
    try:
        found = None
        while found is None:
            if proc.poll() is not None:
                tail = (work / "opsmedic.stderr.txt").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"opsmedic exited (code {proc.returncode}) before a probe:\n"
                                   f"{tail}")  # fmt: skip
            if time.perf_counter() - t0 > args.start_timeout:
                raise RuntimeError(f"opsmedic stored no probe event within {args.start_timeout}s")
            found = _first_event(db)
            if found is None:
                time.sleep(0.01)
        committed_s = time.perf_counter() - t0
        first_probe_s = found[0] - started_at
        log(
            f"opsmedic: first probe event at {first_probe_s:.3f} s (read from the store at "
            f"{committed_s:.3f} s); {args.warmup:g} s warm-up, then {args.seconds:g} s idle"
        )
        idle = measure_idle(proc, args.warmup, args.seconds, "opsmedic")
        stored = _first_event(db)
    finally:
        code = stop(proc)
    web = [t for t in hits.times("python-httpx") if t >= started_at]
    return {
        "opsmedic_idle_rss_mib": rounded(idle.rss_mib),
        "opsmedic_idle_rss_peak_mib": rounded(idle.rss_peak_mib),
        "opsmedic_start_to_first_probe_s": rounded(first_probe_s, 3),
        "opsmedic_start_to_first_event_stored_s": rounded(committed_s, 3),
        "opsmedic_cpu_s_per_min": rounded(idle.cpu_s_per_min, 3),
        "opsmedic_events_stored": stored[1] if stored else 0,
        "opsmedic_runs": stored[2] if stored else 0,
        "opsmedic_http_checks": len(web),
        "opsmedic_exit_code": code,
    }


def opsmedic_exe() -> str:
    exe = REPO / ".venv" / "bin" / "opsmedic"
    return str(exe) if exe.exists() else "opsmedic"


def run_cli_start(args: argparse.Namespace) -> dict[str, Any]:
    """Median wall time of `opsmedic --version` and `opsmedic --help`, each a whole process,
    and its CPU time (user + system), which a busy machine stretches less than wall time."""
    res: dict[str, Any] = {"cli_runs": args.cli_runs, "cli_goal_s": CLI_GOAL_S}
    for name, flag in (("version", "--version"), ("help", "--help")):
        wall, cpu = [], []
        for _ in range(args.cli_runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([opsmedic_exe(), flag], stdout=subprocess.DEVNULL, check=True,
                           timeout=60, env={**os.environ, "COLUMNS": "100"})  # fmt: skip
            wall.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        res[f"{name}_s"] = rounded(statistics.median(wall), 3)
        res[f"{name}_max_s"] = rounded(max(wall), 3)
        res[f"{name}_cpu_s"] = rounded(statistics.median(cpu), 3)
        log(f"opsmedic {flag}: median {res[f'{name}_s']:.3f} s (CPU {res[f'{name}_cpu_s']:.3f} s),"
            f" max {max(wall):.3f} s ({args.cli_runs} runs)")  # fmt: skip
    return res


# --- Monit -----------------------------------------------------------------------------------


def ensure_monit() -> str:
    """The monit binary; installed from the Debian package when missing."""
    found = shutil.which("monit") or ("/usr/bin/monit" if Path("/usr/bin/monit").exists() else None)
    if found:
        return found
    log("peer: monit not found; apt-get install -y monit")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "monit"]
    if subprocess.run(install, env=env, timeout=600, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, timeout=600, check=False)
        subprocess.run(install, env=env, timeout=600, check=True)
    found = shutil.which("monit") or "/usr/bin/monit"
    if not Path(found).exists():
        raise RuntimeError("monit is still missing after apt-get install")
    return found


def monit_version(monit: str) -> str:
    out = subprocess.run([monit, "-V"], capture_output=True, text=True, timeout=10, check=False)
    words = out.stdout.split()
    return words[words.index("version") + 1] if "version" in words else "?"


def monit_world(work: Path, port: int, interval: float) -> Path:
    """A control file equivalent to opsmedic's: same five checks, same cycle, files in `work`."""
    lines = [
        f"set daemon {max(1, round(interval))}",
        f"set logfile {work / 'monit.log'}",
        f"set pidfile {work / 'monit.pid'}",
        f"set idfile {work / 'monit.id'}",
        f"set statefile {work / 'monit.state'}",
        "",
    ]
    for i in range(1, N_COMMAND + 1):
        lines += [f'check program cmd{i} with path "/bin/true" with timeout 10 seconds',
                  "    if status != 0 then alert", ""]  # fmt: skip
    for i in range(1, N_HTTP + 1):
        lines += [f"check host web{i} with address 127.0.0.1",
                  f'    if failed port {port} protocol http request "/health/{i}"'
                  " with timeout 2 seconds then alert", ""]  # fmt: skip
    control = work / "monitrc"
    control.write_text("\n".join(lines))
    control.chmod(0o600)  # monit refuses a control file others can read
    return control


def run_monit(args: argparse.Namespace, work: Path, port: int, hits: Hits) -> dict[str, Any]:
    monit = ensure_monit()
    version = monit_version(monit)
    control = monit_world(work, port, args.interval)
    check = subprocess.run([monit, "-t", "-c", str(control)], capture_output=True, text=True,
                           timeout=30, check=False)  # fmt: skip
    if check.returncode != 0:
        raise RuntimeError(f"monit -t refused the control file: {check.stdout}{check.stderr}")
    cmd = [monit, "-I", "-c", str(control)]
    log(f"peer: {' '.join(cmd)} (Monit {version})")
    started_at = time.time()
    t0 = time.perf_counter()
    proc = start(cmd, work, "monit")
    try:
        # Monit's first cycle runs at once; its first HTTP check marks it as running.
        while not (first := [t for t in hits.times("monit") if t >= started_at]):
            if proc.poll() is not None:
                tail = (work / "monit.stderr.txt").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"monit exited (code {proc.returncode}):\n{tail}")
            if time.perf_counter() - t0 > args.start_timeout:
                raise RuntimeError(f"monit made no HTTP check within {args.start_timeout}s")
            time.sleep(0.01)
        first_check_s = first[0] - started_at
        log(f"peer: first HTTP check at {first_check_s:.3f} s; {args.warmup:g} s warm-up, "
            f"then {args.seconds:g} s idle")  # fmt: skip
        idle = measure_idle(proc, args.warmup, args.seconds, "peer")
    finally:
        code = stop(proc)
    web = [t for t in hits.times("monit") if t >= started_at]
    return {
        "peer": "monit",
        "peer_version": version,
        "peer_idle_rss_mib": rounded(idle.rss_mib),
        "peer_idle_rss_peak_mib": rounded(idle.rss_peak_mib),
        "peer_start_to_first_http_check_s": rounded(first_check_s, 3),
        "peer_cpu_s_per_min": rounded(idle.cpu_s_per_min, 3),
        "peer_http_checks": len(web),
        "peer_exit_code": code,
    }


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="idle window after the first probe (default 60)")  # fmt: skip
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="seconds from the first check to the window (default 5)")  # fmt: skip
    parser.add_argument("--interval", type=float, default=5.0,
                        help="every probe's interval, both tools (default 5)")  # fmt: skip
    parser.add_argument("--start-timeout", type=float, default=60.0,
                        help="seconds to wait for the first probe (default 60)")  # fmt: skip
    parser.add_argument("--skip-peer", action="store_true", help="measure opsmedic only")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--cli-runs", type=int, default=11,
                        help="runs of --version, --help; median counts (default 11)")  # fmt: skip
    parser.add_argument("--cli-only", action="store_true",
                        help="time --version and --help only, no idle run")  # fmt: skip
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="opsmedic-idle-"))
    res: dict[str, Any] = {
        "bench": "idle", "seconds": args.seconds, "warmup_s": args.warmup,
        "interval_s": args.interval,
        "probes": N_COMMAND + N_HTTP, "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }  # fmt: skip
    ok = True
    hits = Hits()
    try:
        res.update(run_cli_start(args))
        res["cli_start_ok"] = max(res["version_s"], res["help_s"]) <= CLI_GOAL_S
        if not args.cli_only:
            with health_server(hits) as port:
                log(f"work directory {work}; health server on 127.0.0.1:{port}")
                (work / "opsmedic").mkdir()
                res.update(run_opsmedic(args, work / "opsmedic", port, hits))
                if not args.skip_peer:
                    (work / "monit").mkdir()
                    res.update(run_monit(args, work / "monit", port, hits))
    except (RuntimeError, OSError, subprocess.SubprocessError, psutil.Error) as exc:
        log(f"FAILED {exc}")
        res["error"] = str(exc)
        ok = False
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if res.get("opsmedic_idle_rss_mib") and res.get("peer_idle_rss_mib"):
        res["rss_ratio"] = rounded(res["opsmedic_idle_rss_mib"] / res["peer_idle_rss_mib"], 1)
    if res.get("opsmedic_cpu_s_per_min") is not None and res.get("peer_cpu_s_per_min"):
        res["cpu_ratio"] = rounded(res["opsmedic_cpu_s_per_min"] / res["peer_cpu_s_per_min"], 1)
    expected_checks = int((args.warmup + args.seconds) / args.interval) * N_HTTP
    for key in ("opsmedic_http_checks", "peer_http_checks"):
        # Every HTTP probe must really have run on its schedule (±2 cycles of slack).
        if key in res and res[key] < expected_checks - 2 * N_HTTP:
            log(f"MISMATCH {key} = {res[key]}, expected about {expected_checks}")
            ok = False
    if res.get("opsmedic_runs"):
        # Healthy readings must match no rule, else this measures remediation, not idling.
        log(f"MISMATCH opsmedic ran {res['opsmedic_runs']} remediations while idle")
        ok = False
    res["checks_ok"] = ok
    print(json.dumps(res))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
