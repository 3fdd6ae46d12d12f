"""Benchmark: committed webhook ingest of `opsmedic run` — Alertmanager batches of 10 alerts.

A bounded load generator (raw keep-alive HTTP/1.1 over asyncio sockets, so that the client
costs little of the 2 cores) posts Alertmanager-format webhook batches of 10 alerts to
`/api/v1/webhooks/alertmanager` on loopback for a fixed time, from a few connections at once.
opsmedic answers 202 only after the 10 events (and any runs they plan) are committed to its
SQLite store; the script counts the rows at the end to prove it. Side by side, the same
batches go to a real Prometheus Alertmanager's own alert API (`/api/v2/alerts`, in memory,
not durable) as the peer: what the tool people already run accepts on the same machine.
Progress goes to stderr; the last line of stdout is one JSON object.

    .venv/bin/python bench/ingest.py [--seconds 10] [--connections 16] [--skip-peer]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proc import log, percentile, rounded

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
ALERTS_PER_BATCH = 10
WARMUP_S = 1.0
STARTUP_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} during start-up")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {HOST}:{port}")


# --- the batches --------------------------------------------------------------------------


def webhook_batch(n: int) -> bytes:
    """Alertmanager's webhook body (version 4) with 10 distinct firing alerts."""
    alerts = [{
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": f"svc-{n % 50}",
                   "instance": f"web-{n}-{i}", "severity": "page"},
        "annotations": {"summary": "5xx ratio 12%"},
        "startsAt": "2026-11-22T02:01:16Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.local/graph?g0.expr=x",
        "fingerprint": f"{n:010x}{i:06x}",
    } for i in range(ALERTS_PER_BATCH)]  # fmt: skip
    return json.dumps({
        "receiver": "opsmedic", "status": "firing", "alerts": alerts,
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate", "severity": "page"},
        "commonAnnotations": {"summary": "5xx ratio 12%"}, "externalURL": "http://bench:9093",
        "version": "4", "groupKey": '{}:{alertname="HighErrorRate"}', "truncatedAlerts": 0,
    }).encode()  # fmt: skip


def peer_batch(n: int) -> bytes:
    """The same 10 alerts in Alertmanager's own API v2 shape."""
    return json.dumps([{
        "labels": {"alertname": "HighErrorRate", "service": f"svc-{n % 50}",
                   "instance": f"web-{n}-{i}", "severity": "page"},
        "annotations": {"summary": "5xx ratio 12%"},
        "startsAt": "2026-11-22T02:01:16Z", "generatorURL": "http://prometheus.local/graph",
    } for i in range(ALERTS_PER_BATCH)]).encode()  # fmt: skip


# --- the load generator -------------------------------------------------------------------


@dataclass
class Load:
    """What one timed run saw: latencies (s) of answered requests, statuses, errors."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    measured_s: float = 0.0
    client_cpu_s: float = 0.0  # the generator's own CPU: it shares the machine with the server
    answered: int = 0  # warm-up included


def request_bytes(path: str, body: bytes, token: str | None) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {HOST}", "Content-Type: application/json",
            f"Content-Length: {len(body)}"]  # fmt: skip
    if token:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def drive(port: int, path: str, make: Callable[[int], bytes], token: str | None,
                seconds: float, connections: int, pool: int) -> Load:  # fmt: skip
    """`connections` clients post back to back for WARMUP_S + `seconds`; only the requests
    started after the warm-up are measured. The requests are rendered beforehand (`pool` of
    them, distinct alerts, reused in turn if the run outlasts them) so the generator spends
    its share of the 2 cores on sending, not on JSON."""
    requests = [request_bytes(path, make(n), token) for n in range(pool)]
    load = Load()
    cpu = time.process_time()
    counter = iter(range(10**9))
    start = time.perf_counter()
    warm, end = start + WARMUP_S, start + WARMUP_S + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while (sent := time.perf_counter()) < end:
                writer.write(requests[next(counter) % pool])
                try:
                    status = await read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    load.errors += 1
                    return
                load.answered += 1
                if sent >= warm:
                    load.latencies.append(time.perf_counter() - sent)
                    load.statuses[status] = load.statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    load.measured_s = seconds
    load.client_cpu_s = time.process_time() - cpu
    return load


def figures(load: Load, ok: int) -> dict[str, Any]:
    good = load.statuses.get(ok, 0)
    return {
        "requests_per_s": rounded(good / load.measured_s, 0),
        "alerts_per_s": rounded(good * ALERTS_PER_BATCH / load.measured_s, 0),
        "p50_ms": rounded(percentile(load.latencies, 50) * 1000, 2),
        "p99_ms": rounded(percentile(load.latencies, 99) * 1000, 2),
        "max_ms": rounded(max(load.latencies, default=0.0) * 1000, 1),
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
        "errors": load.errors,
        "generator_cpu_share": rounded(load.client_cpu_s / (load.measured_s + WARMUP_S), 2),
    }


# --- the two servers ----------------------------------------------------------------------


def start_opsmedic(tmp: Path) -> tuple[subprocess.Popen[bytes], int, str, Path]:
    port = free_port()
    (tmp / "rules").mkdir()
    # One realistic rule: remediate a service's error rate, once per service per hour.
    (tmp / "rules" / "rules.yaml").write_text(yaml.safe_dump([{
        "name": "restart-on-errors",
        "when": {"source": "alertmanager", "labels.alertname": "HighErrorRate"},
        "do": ["noop"], "throttle": {"once_within": "1h", "per": ["labels.service"]},
    }]))  # fmt: skip
    db = tmp / "opsmedic.db"
    config = tmp / "opsmedic.yaml"
    config.write_text(yaml.safe_dump({
        "store": f"sqlite:///{db}", "rules_dir": "rules", "log": {"level": "warning"},
        "api": {"host": HOST, "port": port},
    }))  # fmt: skip
    opsmedic = [sys.executable, "-m", "opsmedic", "--log-level", "warning"]
    create = [*opsmedic, "token", "create", "--name", "b", "--scope", "ingest", "-c", str(config)]
    made = subprocess.run(create, capture_output=True, text=True, check=True)
    token = made.stdout.strip()
    proc = subprocess.Popen(
        [*opsmedic, "run", "-c", str(config)], stderr=(tmp / "run.log").open("wb")
    )
    wait_port(port, proc, time.monotonic() + STARTUP_S)
    return proc, port, token, db


def start_alertmanager(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = tmp / "alertmanager.yml"
    config.write_text(yaml.safe_dump({
        "route": {"receiver": "null", "group_wait": "1h"}, "receivers": [{"name": "null"}],
    }))  # fmt: skip
    proc = subprocess.Popen(
        ["prometheus-alertmanager", f"--config.file={config}", f"--storage.path={tmp / 'am'}",
         f"--web.listen-address={HOST}:{port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=(tmp / "am.log").open("wb"),
    )  # fmt: skip
    wait_port(port, proc, time.monotonic() + STARTUP_S)
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median rate; all rates are listed beside it."""
    ranked = sorted(rounds, key=lambda r: r["requests_per_s"])
    return {
        **ranked[len(ranked) // 2],
        "rounds_requests_per_s": [r["requests_per_s"] for r in rounds],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating with the peer")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pool", type=int, default=40_000, help="distinct requests per round")
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "benchmark": "ingest", "seconds": args.seconds, "rounds": args.rounds,
        "connections": args.connections, "alerts_per_request": ALERTS_PER_BATCH,
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
    }  # fmt: skip
    peer = not args.skip_peer and shutil.which("prometheus-alertmanager") is not None
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="opsmedic-bench-ingest-") as tmp_dir:
        tmp = Path(tmp_dir)
        proc, port, token, db = start_opsmedic(tmp)
        am, am_port = start_alertmanager(tmp) if peer else (None, 0)
        server, accepted = psutil.Process(proc.pid), 0
        try:
            # Rounds alternate between the two servers, so a shared VM that speeds up or
            # slows down during the run weighs on both alike.
            for n in range(args.rounds):
                first = n * args.pool  # every round posts alerts never seen before

                def ours_batch(i: int, first: int = first) -> bytes:
                    return webhook_batch(first + i)

                log(f"round {n + 1}: opsmedic, {args.seconds:g} s, {args.connections} connections")
                cpu_before = sum(server.cpu_times()[:2])
                path = "/api/v1/webhooks/alertmanager"
                load = asyncio.run(drive(port, path, ours_batch, token, args.seconds,
                                         args.connections, args.pool))  # fmt: skip
                cpu = sum(server.cpu_times()[:2]) - cpu_before  # warm-up included, as in answered
                accepted += load.answered
                ours.append({**figures(load, 202), "server_cpu_ms_per_request":
                             rounded(cpu / max(load.answered, 1) * 1000, 3)})  # fmt: skip
                log(f"opsmedic: {ours[-1]}")
                if am is not None:
                    log(f"round {n + 1}: alertmanager, the same batches to /api/v2/alerts")
                    theirs.append(figures(asyncio.run(drive(
                        am_port, "/api/v2/alerts", peer_batch, None, args.seconds,
                        args.connections, args.pool)), 200))  # fmt: skip
                    log(f"alertmanager: {theirs[-1]}")
        finally:
            stop(proc)
            if am is not None:
                stop(am)
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    if stored < accepted * ALERTS_PER_BATCH:
        raise SystemExit(f"only {stored} events stored for {accepted} accepted batches")
    result["opsmedic"] = {**median_round(ours), "events_stored": stored}
    if theirs:
        result["alertmanager"] = median_round(theirs)
        rate = result["alertmanager"]["requests_per_s"]
        result["ratio_requests_vs_alertmanager"] = (
            rounded(result["opsmedic"]["requests_per_s"] / rate, 2) if rate else None
        )
    result["goal"] = {"requests_per_s": 2000, "p99_ms": 50}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
