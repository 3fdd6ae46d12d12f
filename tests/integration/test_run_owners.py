"""Runs have an owner: another process (a replay, a second `opsmedic run` on a busy port)
never touches a live service's runs; a killed service's runs are recovered at the next start."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import yaml

from opsmedic.model import Run, RunState
from opsmedic.store.store import Store

BOUND = 60.0  # seconds: a bound on waits for what must happen, never a measured time
OPSMEDIC = [sys.executable, "-m", "opsmedic"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}


def _config(tmp_path: Path, store_url: str, name: str = "opsmedic.yaml", **extra: Any) -> Path:
    """A service whose probe fires once an interval and whose rule runs until RELEASE exists."""
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    wait = f"while [ ! -e {tmp_path / 'RELEASE'} ]; do sleep 0.05; done"
    (rules / "slow.yaml").write_text(yaml.safe_dump([{
        "name": "slow", "when": {"source": "command", "kind": "tick", "status": "resolved"},
        "do": [{"run_command": {"argv": ["sh", "-c", wait]}}], "throttle": {"once_within": "1h"},
    }]))  # fmt: skip
    config = tmp_path / name
    config.write_text(yaml.safe_dump({
        "store": store_url, "rules_dir": "rules", "api": {"host": "127.0.0.1", "port": 0},
        "probes": [{"name": "tick", "type": "command", "interval": "0.2s",
                    "params": {"argv": ["true"]}}],
        **extra,
    }))  # fmt: skip
    return config


def _until(ready: Callable[[], Any], what: str) -> Any:
    """Poll (bounded) until `ready()` gives something true; returns it."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if found := ready():
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {BOUND:g}s: {what}")


def _the_run(store: Store, state: RunState) -> Run | None:
    runs = store.list_runs(rule="slow")
    return runs[0] if len(runs) == 1 and runs[0].state is state else None


def _replay(config: Path, lines: str) -> None:
    """`opsmedic replay` of `lines` in another process, on the config's store."""
    events = config.parent / "n.jsonl"
    events.write_text(lines)
    replayed = subprocess.run([*OPSMEDIC, "replay", str(events), "-c", str(config)],
                              env=_env(), capture_output=True, text=True, timeout=BOUND,
                              check=False)  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr


def _serve(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen([*OPSMEDIC, "--log-level", "info", "run", "-c", str(config)],
                                env=_env(), stderr=err)  # fmt: skip


def test_a_live_services_run_survives_a_replay_and_a_second_run_on_its_port(
    tmp_path: Path, store: Store, store_url: str
) -> None:
    """The reviewer's repro: with a run in flight, a replay of one unrelated event and a
    second `opsmedic run` whose port is taken leave it running; it ends `succeeded`, as the
    live service finishes it. The failed start ran no probe (its probe would write a file)."""
    config = _config(tmp_path, store_url)
    log = tmp_path / "live.log"
    live = _serve(config, log)
    try:
        running = _until(lambda: _the_run(store, RunState.RUNNING), "the live run started")
        port = _until(lambda: re.search(r"event=api\.listening .*url=http://[\d.]+:(\d+)",
                                        log.read_text()), "the API listened")[1]  # fmt: skip
        _replay(config, '{"source": "elsewhere", "kind": "unrelated"}\n')
        assert store.get_run(running.id).state is RunState.RUNNING
        marker = tmp_path / "probe-ran"
        # An SLO of the second run's burning its whole budget: started, its watch would page.
        now = int(time.time() // 60)
        store.slo_samples.add({("burning", m): [0, 100, 0] for m in range(now - 59, now + 1)})
        burning = {
            "name": "burning",
            "objective": 99,
            "sli": {"events": {"total": ["source=lb"], "bad": ["severity=critical"]}},
        }
        second = _config(tmp_path, store_url, "second.yaml",
                         api={"host": "127.0.0.1", "port": int(port)}, slos=[burning],
                         probes=[{"name": "mark", "type": "command", "interval": "0.2s",
                                  "params": {"argv": ["touch", str(marker)]}}])  # fmt: skip
        busy = subprocess.run([*OPSMEDIC, "run", "-c", str(second)], env=_env(),
                              capture_output=True, text=True, timeout=BOUND, check=False)  # fmt: skip
        assert busy.returncode == 1
        assert busy.stderr.splitlines() == [
            f"error the API cannot listen on 127.0.0.1:{port}: address already in use"
        ]
        assert not marker.exists()
        assert store.list_events(kind="slo_burn") == []
        assert store.get_run(running.id).state is RunState.RUNNING
        (tmp_path / "RELEASE").touch()
        done = _until(lambda: _the_run(store, RunState.SUCCEEDED), "the live run succeeded")
        assert done.id == running.id
        live.send_signal(signal.SIGTERM)
        assert live.wait(timeout=BOUND) == 0
    finally:
        live.kill()
    assert "run.interrupted" not in log.read_text()


def test_a_killed_services_run_is_interrupted_at_the_next_start_at_once(
    tmp_path: Path, store: Store, store_url: str
) -> None:
    """kill -9 mid-action: a replay leaves the run alone (it never recovers); the next
    `opsmedic run` on this host sees the owner's pid gone and marks it interrupted without
    waiting out the lease (an hour here)."""
    config = _config(tmp_path, store_url, actions={"lease": {"duration": "1h"}})
    live = _serve(config, tmp_path / "live.log")
    try:
        running = _until(lambda: _the_run(store, RunState.RUNNING), "the run started")
        orphans = psutil.Process(live.pid).children(recursive=True)
        live.kill()  # SIGKILL mid-action: no chance to clean up
        live.wait(timeout=BOUND)
    finally:
        live.kill()
    for orphan in orphans:  # the command the killed service left behind (its sleeps end)
        with contextlib.suppress(psutil.NoSuchProcess):
            orphan.kill()
    _replay(config, "")
    assert store.get_run(running.id).state is RunState.RUNNING
    log = tmp_path / "next.log"
    (tmp_path / "RELEASE").touch()  # a re-run, if any, ends at once
    restarted = _serve(config, log)
    try:
        _until(lambda: f"run_id={running.id}" in log.read_text(), "the run was interrupted")
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=BOUND) == 0
    finally:
        restarted.kill()
    assert "event=run.interrupted" in log.read_text()
    assert store.get_run(running.id).state is RunState.INTERRUPTED


def test_a_run_by_hand_from_the_cli_is_not_taken_by_a_service_starting(
    tmp_path: Path, store: Store, store_url: str
) -> None:
    """`opsmedic rules run` works on the store without an engine loop; its run still carries
    the CLI as owner with a renewed lease, so a service starting meanwhile leaves it alone
    (it was taken at once, as an ownerless row, and run a second time)."""
    config = _config(tmp_path, store_url, probes=[])
    by_hand = subprocess.Popen([*OPSMEDIC, "rules", "run", "slow", "--set", "host=h1", "-c",
                                str(config)], env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    log = tmp_path / "service.log"
    service = None
    try:
        running = _until(lambda: _the_run(store, RunState.RUNNING), "the run by hand started")
        service = _serve(config, log)
        _until(lambda: "api.listening" in log.read_text(), "the service listened")
        assert store.get_run(running.id).state is RunState.RUNNING
        (tmp_path / "RELEASE").touch()
        out, err = by_hand.communicate(timeout=BOUND)
        assert by_hand.returncode == 0, out + err
        assert store.get_run(running.id).state is RunState.SUCCEEDED
        assert len(store.list_runs(rule="slow")) == 1  # never run a second time
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=BOUND) == 0
    finally:
        by_hand.kill()
        if service is not None:
            service.kill()
    assert "run.interrupted" not in log.read_text()
