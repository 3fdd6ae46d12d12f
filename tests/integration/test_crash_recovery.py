"""SIGKILL `opsmedic run` again and again, start-up included: recovery survives its own crash."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import yaml

from opsmedic.model import Run, RunState
from opsmedic.store.store import Store
from opsmedic.tokens import Scope, digest, mint

KILLS = 18
# Each batch: a command that writes its run id (not idempotent), a slow recheck (idempotent,
# so an interrupted one is re-run) and a storm on one target (limited: 2 runs, then a pause).
BATCH = ("work", "check", "storm")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(tmp: Path, port: int) -> Path:
    (tmp / "rules").mkdir()
    append = f'echo "$OPSMEDIC_RUN_ID" >> {tmp / "ran.txt"}; sleep 0.3'
    (tmp / "rules" / "crash.yaml").write_text(yaml.safe_dump([
        {"name": "append", "when": {"source": "crash", "kind": "work"},
         "do": [{"run_command": {"argv": ["sh", "-c", append]}}]},
        {"name": "verify", "when": {"source": "crash", "kind": "check"},
         "do": [{"recheck": {"probe": "slow"}}]},
        {"name": "limited", "when": {"source": "crash", "kind": "storm"}, "do": ["noop"],
         "limit": {"max_runs": 2, "within": "1h"}},
        {"name": "page", "when": {"source": "opsmedic", "kind": "escalation"}, "do": ["noop"]},
    ]))  # fmt: skip
    config = tmp / "opsmedic.yaml"
    config.write_text(yaml.safe_dump({
        "store": f"sqlite:///{tmp / 'o.db'}", "rules_dir": "rules",
        "api": {"port": port},
        "probes": [{"name": "slow", "type": "command", "interval": "24h",
                    "params": {"argv": ["sleep", "0.4"]}}],
    }))  # fmt: skip
    return config


def _send_until(client: httpx.Client, deadline: float, n: int, acked: list[str]) -> int:
    """Post batches until `deadline`; the ids of events the service acknowledged go to
    `acked`. A refused connection (still starting) is retried; a cut one is not acked."""
    while time.monotonic() < deadline:
        body = [
            {"source": "crash", "kind": kind, "resource": "storm" if kind == "storm" else f"r{n}"}
            for kind in BATCH
        ]
        n += 1
        try:
            reply = client.post("/api/v1/events", json=body)
        except httpx.TransportError:
            time.sleep(0.02)
            continue
        assert reply.status_code == 202, reply.text
        acked.extend(event["id"] for event in reply.json()["events"])
    return n


def _until_serving(client: httpx.Client, n: int, acked: list[str]) -> int:
    """Send until one batch is acknowledged (bounded): the service has started."""
    before, deadline = len(acked), time.monotonic() + 60
    while len(acked) == before and time.monotonic() < deadline:
        n = _send_until(client, time.monotonic() + 0.1, n, acked)
    assert len(acked) > before, "the service did not start"
    return n


def _wait_until_settled(store: Store) -> None:
    """Bounded poll of the store for the real signal: no run left planned or running."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if not any(store.list_runs(state=s, limit=1) for s in (RunState.RUNNING, RunState.PLANNED)):
            return
        time.sleep(0.1)
    raise AssertionError("runs still unfinished after the last start")


def test_killed_at_random_points_it_loses_nothing_repeats_nothing_and_reruns_once(
    tmp_path: Path,
) -> None:
    """SIGKILL at random instants, 18 times (during start-up and recovery too), then a clean
    start: every acknowledged event is stored, no run's command ran twice, no non-idempotent
    run was re-run, every interrupted idempotent run was re-run exactly once, and the limit
    pause escalated once in all."""
    port = _free_port()
    config = _config(tmp_path, port)
    store = Store(f"sqlite:///{tmp_path / 'o.db'}")
    store.migrate()
    record, secret = mint("sender", [Scope.INGEST], 0.0)
    store.add_token(record, digest(secret))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
    argv = [sys.executable, "-m", "opsmedic", "run", "-c", str(config)]
    rng = random.Random(12)
    acked: list[str] = []
    n = 0
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    ) as client:
        for i in range(KILLS):
            with subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL) as proc:
                try:
                    if i % 2:  # at any instant from the spawn: start-up, recovery, serving
                        n = _send_until(client, time.monotonic() + rng.uniform(0, 2.5), n, acked)
                    else:  # while serving, whatever the machine's speed: runs are in flight
                        n = _until_serving(client, n, acked)
                        n = _send_until(client, time.monotonic() + rng.uniform(0, 1), n, acked)
                finally:
                    proc.kill()
                    proc.wait(timeout=30)
        with subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL) as proc:
            try:
                n = _until_serving(client, n, acked)  # the last start, recovery included
                _wait_until_settled(store)
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0
            finally:
                proc.kill()

    for event_id in acked:  # raises NotFoundError for a lost one
        store.get_event(event_id)
    runs = store.list_runs(limit=100_000)
    by_id = {run.id: run for run in runs}

    ran = Counter((tmp_path / "ran.txt").read_text().split())
    assert ran and max(ran.values()) == 1, "a run's command ran twice"
    assert {by_id[run_id].rule for run_id in ran} == {"append"}

    reruns: dict[str, list[Run]] = {}
    for run in runs:
        if run.rerun_of:
            reruns.setdefault(run.rerun_of, []).append(run)
    interrupted = [run for run in runs if run.state is RunState.INTERRUPTED]
    assert any(run.rule == "verify" for run in interrupted), "no kill caught a recheck running"
    for run in interrupted:
        expected = 0 if run.rule == "append" else 1  # run_command is not idempotent, the rest is
        assert len(reruns.get(run.id, [])) == expected, (run, reruns.get(run.id))
    assert all(by_id[old].state is RunState.INTERRUPTED for old in reruns)

    skipped = [r for r in runs if r.rule == "limited" and r.state is RunState.SKIPPED]
    escalations = store.list_events(source="opsmedic", limit=100)
    assert len(skipped) == len(escalations) == 1, (skipped, escalations)
    assert escalations[0].payload["run_id"] == skipped[0].id
