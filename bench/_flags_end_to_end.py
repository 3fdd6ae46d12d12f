"""bench/flags.py (c): an alert turns a flag off through a rule; how soon the app serves the
feature-off path.

A real `opsmedic run` (SQLite, its API on loopback, an `http` probe every `interval_s` on the
demo shop's /checkout, rule `kill-new-checkout` with `set_flag: {flag: new_checkout, enabled:
false}`) and the demo shop (`opsmedic.cli.demo.shop`) reading the flag through `FlagClient`
over opsmedic's change stream, or over Redis with `flag_store: redis`. Each trial breaks the
new checkout's payment service and polls /checkout every 5 ms until it serves the old
checkout: the time from the break to then. The probe is the alert because it is the source
whose delay the user sets (an Alertmanager webhook adds Prometheus' scrape and `for:`, which
opsmedic does not control); the goal is one probe interval (the wait for the next reading)
plus 1 s. Between trials the payment service is mended and the flag turned back on (API).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from _proc import log, percentile  # bench/ is on sys.path (bench/flags.py puts it there)

OPSMEDIC = str(Path(sys.executable).with_name("opsmedic"))
KEY = "new_checkout"
_phase = random.Random(15)  # seeded: two runs break at the same phases


def _free_port() -> int:
    from services import free_port  # tests/ is on sys.path too

    return int(free_port())


def _until(check: Any, what: str, timeout_s: float = 30.0, every_s: float = 0.005) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every_s)


def _world(work: Path, interval_s: float, redis_url: str | None) -> tuple[Path, int, int]:
    rules = work / "rules"
    rules.mkdir()
    (rules / "flags.yaml").write_text(yaml.safe_dump([{
        "name": "kill-new-checkout",
        "when": {"source": "http", "kind": "shop", "status": "firing"},
        "do": [{"set_flag": {"flag": KEY, "enabled": False}}],
    }]))  # fmt: skip
    api_port, shop_port = _free_port(), _free_port()
    config: dict[str, Any] = {
        "store": f"sqlite:///{work / 'opsmedic.db'}",
        "rules_dir": str(rules),
        "api": {"port": api_port},
        "probes": [{"name": "shop", "type": "http", "interval": f"{interval_s}s",
                    "timeout": "1s", "jitter": 0,
                    "params": {"url": f"http://127.0.0.1:{shop_port}/checkout"}}],
        "flags": {KEY: {"default": "on"}},
    }  # fmt: skip
    if redis_url is not None:
        config["flag_store"] = {"redis": {"url": redis_url}}
    path = work / "opsmedic.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, api_port, shop_port


def _token(config: Path) -> str:
    done = subprocess.run([OPSMEDIC, "token", "create", "--name", "bench", "--scope",
                           "read,operate", "-c", str(config)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.split()[0]  # the secret alone on stdout; the note goes to stderr


def measure(*, trials: int, interval_s: float, redis_url: str | None = None) -> dict[str, Any]:
    """Seconds from the break to the old checkout, `trials` times; p50, p95, the goal."""
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="opsmedic-bench-e2e-") as tmp:
        config, api_port, shop_port = _world(Path(tmp), interval_s, redis_url)
        token = _token(config)
        api, shop = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{shop_port}"
        try:
            procs.append(subprocess.Popen([OPSMEDIC, "run", "-c", str(config)],
                                          stderr=subprocess.DEVNULL))  # fmt: skip
            _until(lambda: httpx.get(api + "/readyz").status_code == 200, "opsmedic", 60, 0.1)
            source = ["--redis", redis_url] if redis_url else ["--api", api]
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "opsmedic.cli.demo.shop", "--port", str(shop_port),
                 *source], env=os.environ | {"OPSMEDIC_TOKEN": token}))  # fmt: skip
            _until(lambda: httpx.get(shop + "/checkout").status_code < 600, "the shop", 30, 0.05)
            times = [_trial(api, shop, token, interval_s) for _ in range(trials)]
        finally:
            for proc in procs[::-1]:
                proc.terminate()
                proc.wait(timeout=30)
    p50, p95 = percentile(times, 50), percentile(times, 95)
    goal = interval_s + 1.0
    return {"source": "redis" if redis_url else "api stream", "probe_interval_s": interval_s,
            "trials": trials, "p50": round(p50, 3), "p95": round(p95, 3),
            "max": round(max(times), 3), "goal_s": goal, "p95_le_goal": p95 <= goal}  # fmt: skip


def _trial(api: str, shop: str, token: str, interval_s: float) -> float:
    auth = {"Authorization": f"Bearer {token}"}
    httpx.post(f"{api}/api/v1/flags/{KEY}/enabled", json={"enabled": True}, headers=auth,
               timeout=5).raise_for_status()  # fmt: skip
    _until(lambda: httpx.get(shop + "/checkout").text.startswith("new checkout: paid"), "new")
    # Two readings: the probe reads ok again and the last incident resolves; then a random
    # part of an interval, so the break falls anywhere in the probe's cycle (a fixed pause
    # would lock onto one phase of it and measure that phase only).
    time.sleep(2 * interval_s + 0.2 + _phase.uniform(0, interval_s))
    t0 = time.monotonic()
    httpx.get(shop + "/break", timeout=5).raise_for_status()
    _until(lambda: httpx.get(shop + "/checkout").text.startswith("old checkout"), "old")
    took = time.monotonic() - t0
    httpx.get(shop + "/fix", timeout=5).raise_for_status()
    log(f"(c) {took:.3f} s")
    return took
