"""Benchmark (b) of bench/capacity.py: scale-out under load, from the latency breach to the new
instance serving requests through nginx.

A real `opsmedic run` watches a service through Debian's nginx on loopback with an `http` probe
(every `PROBE_INTERVAL_S`, `max_latency` 100 ms) and one rule: `scale: {service: app, by: +1}`
on a failing reading. The service is instance 1 of tests/scale_instance.py, started by the
bench; a bounded load (`CLIENTS` threads, each a request at most every `PAUSE_S`) goes through
nginx all along. Per trial: opsmedic is started and has probed once, then the breach: every
instance answers `/` `BREACH_DELAY_S` late (the delay file). `scale_out_s` is the time from the
breach to the first answer from instance 2 that the load receives: the probe's next reading,
the rule's run, instance 2's start and health check, and the nginx reload that routes it. The
breach falls at a random point of the probe's interval (seeded). Then opsmedic is stopped,
instance 2 killed and the upstream put back for the next trial.

`instance_start_s` is measured alone in the same run: the instance started by hand until its
`/health` answers, `trials` times. The goal (issue 19): p95 scale_out_s <= probe interval +
instance start + 1 s. The last line of stdout is JSON:

    .venv/bin/python bench/_scale_out.py [--trials 10]
    {"scale_out_s": {"p50", "p95", "max"}, "instance_start_s": p50, "probe_interval_s": ...,
     "goal_s": ..., "trials": N, "load": {...}}
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "tests")]

from _proc import log, percentile, rounded  # noqa: E402

from opsmedic.releases.nginx import NginxRouter  # noqa: E402
from services import HOST, _stop, serving  # noqa: E402
from services_nginx import Front, nginx_front  # noqa: E402
from services_scale import UPSTREAM, free_base, instance_argv, instance_at  # noqa: E402
from services_tls import _free_ports  # noqa: E402

PROBE_INTERVAL_S = 1.0
BREACH_DELAY_S = 0.15  # the latency injected: over the probe's max_latency of 100 ms
CLIENTS = 4  # load threads through nginx
PAUSE_S = 0.01  # between two requests of one load thread: at most 400 requests/s in all
MAX_REQUESTS = 20_000  # per trial, all threads together: the load is bounded
TRIAL_TIMEOUT_S = 60.0
OPSMEDIC = [sys.executable, "-m", "opsmedic"]


def _config(site: Path, front: Front, base: int, delay_file: Path) -> str:
    nginx = front.settings
    router = {"nginx": {
        "upstream": UPSTREAM, "include": str(front.upstream_file),
        "access_log": str(front.access_log), "prefix": str(nginx.prefix), "conf": str(nginx.conf),
        "pid_file": str(nginx.pid_file), "program": nginx.program,
        "error_log": str(front.error_log),
    }}  # fmt: skip
    config = {
        "store": f"sqlite:///{site}/opsmedic.db",
        "api": {"enabled": False},
        "probes": [{"name": "app-latency", "type": "http", "interval": f"{PROBE_INTERVAL_S}s",
                    "jitter": 0, "timeout": "2s",
                    "params": {"url": front.url + "/", "max_latency": "100ms"}}],
        "services": {"app": {"versions": str(site), "switch": [{"noop": {}}], "scale": {
            "router": router, "command": {"argv": instance_argv(delay_file)},
            "base_port": base, "min": 1, "max": 2, "cooldown": "0s",
            "health": {"path": "/health", "timeout": "20s", "interval": "20ms"},
        }}},
    }  # fmt: skip
    return json.dumps(config)  # JSON is YAML


RULE = [{"name": "scale-out-on-latency", "when": {"source": "http", "kind": "app-latency"},
         "do": [{"scale": {"service": "app", "by": 1}}]}]  # fmt: skip


class Load:
    """CLIENTS threads sending GET / through nginx; the first answer from `watched` is timed."""

    def __init__(self, url: str, watched: str) -> None:
        self.url, self.watched = url, watched.encode()
        self.first: float | None = None
        self.sent = self.failed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(CLIENTS)]

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                with self._lock:
                    if self.sent >= MAX_REQUESTS:
                        return
                    self.sent += 1
                try:
                    answer = client.get(self.url)
                except httpx.HTTPError:
                    answer = None
                now = time.time()
                with self._lock:
                    if answer is None or answer.status_code != 200:
                        self.failed += 1
                    elif answer.content == self.watched and self.first is None:
                        self.first = now
                self._stop.wait(PAUSE_S)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _instance_start(port: int, delay_file: Path, out: Path) -> float:
    """Seconds from starting the instance to its /health answering 200."""
    argv = instance_at(port, delay_file)
    began = time.monotonic()
    with out.open("ab") as log_file:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=subprocess.STDOUT)  # fmt: skip
    try:
        with httpx.Client(timeout=2) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"http://{HOST}:{port}/health").status_code == 200:
                        return time.monotonic() - began
                if time.monotonic() - began > TRIAL_TIMEOUT_S:
                    raise TimeoutError(f"instance on {port} never healthy")
                time.sleep(0.005)
    finally:
        _stop(proc)


def _probed(db: Path, deadline: float) -> None:
    """Wait until opsmedic has recorded a reading of its probe (it runs and watches)."""
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(db)) as conn:
            if conn.execute("SELECT count(*) FROM events WHERE source = 'http'").fetchone()[0]:
                return
        time.sleep(0.05)
    raise TimeoutError("opsmedic recorded no probe reading")


def _reset(site: Path, front: Front, base: int) -> None:
    """Instance 2 killed (by the pid the scaler recorded), the upstream back to instance 1."""
    record = site / "state" / "scale" / "app.json"
    if record.exists():
        for instance in json.loads(record.read_text())["instances"].values():
            if instance["pid"] is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(instance["pid"], signal.SIGKILL)
        record.unlink()
    import asyncio

    asyncio.run(NginxRouter(front.settings).set_weights(UPSTREAM, {f"{HOST}:{base + 1}": 1}))


def _trial(site: Path, front: Front, base: int, delay_file: Path, phase: random.Random) -> float:
    delay_file.write_text("0")
    (site / "opsmedic.db").unlink(missing_ok=True)
    with (site / "opsmedic.log").open("ab") as out:
        opsmedic = subprocess.Popen([*OPSMEDIC, "run", "-c", str(site / "opsmedic.yaml")],
                                    cwd=site, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
    try:
        _probed(site / "opsmedic.db", time.monotonic() + TRIAL_TIMEOUT_S)
        with Load(front.url + "/", f"instance {base + 2}") as load:
            # The load runs before the breach, which falls anywhere in the probe's interval.
            time.sleep(0.5 + phase.uniform(0, PROBE_INTERVAL_S))
            breach = time.time()
            delay_file.write_text(str(BREACH_DELAY_S))
            while load.first is None and time.time() - breach < TRIAL_TIMEOUT_S:
                time.sleep(0.01)
        if load.first is None:
            raise TimeoutError("instance 2 never answered through nginx")
        return load.first - breach
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(opsmedic.pid, signal.SIGTERM)
        try:
            opsmedic.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(opsmedic.pid, signal.SIGKILL)
            opsmedic.wait()
        _reset(site, front, base)


def measure_scale_out(trials: int) -> dict[str, Any]:
    """`trials` scale-outs under load and as many instance starts alone; the JSON's fields."""
    with tempfile.TemporaryDirectory(prefix="opsmedic-scale-") as tmp:
        root = Path(tmp)
        site, nginx_root = root / "site", root / "nginx"
        (site / "rules").mkdir(parents=True)
        nginx_root.mkdir()
        delay_file = root / "delay"
        delay_file.write_text("0")
        (port,) = _free_ports(1)
        base = free_base(2)
        starts = [_instance_start(base + 2, delay_file, root / "alone.log") for _ in range(trials)]
        log(f"instance start alone: p50 {percentile(starts, 50):.3f}s")
        locations = [f"location / {{ proxy_pass http://{UPSTREAM}; }}"]
        first = {f"{HOST}:{base + 1}": 1}
        with (
            serving(instance_at(base + 1, delay_file), base + 1, root / "instance-1.log"),
            nginx_front(nginx_root, port, first, locations, None, UPSTREAM) as front,
        ):
            (site / "opsmedic.yaml").write_text(_config(site, front, base, delay_file))
            (site / "rules" / "scale.yaml").write_text(json.dumps(RULE))
            times, phase = [], random.Random(19)
            for number in range(1, trials + 1):
                times.append(_trial(site, front, base, delay_file, phase))
                log(f"trial {number}: breach to instance 2 serving {times[-1]:.3f}s")
    start = percentile(starts, 50)
    return {
        "scale_out_s": {"p50": rounded(percentile(times, 50), 3),
                        "p95": rounded(percentile(times, 95), 3), "max": rounded(max(times), 3)},
        "instance_start_s": rounded(start, 3),
        "probe_interval_s": PROBE_INTERVAL_S,
        "goal_s": rounded(PROBE_INTERVAL_S + start + 1.0, 3),
        "trials": trials,
        "load": {"clients": CLIENTS, "pause_s": PAUSE_S, "breach_delay_s": BREACH_DELAY_S},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps(measure_scale_out(args.trials)))


if __name__ == "__main__":
    main()
