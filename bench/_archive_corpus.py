"""A seeded corpus of varied log files (nginx access, JSON app, syslog with stack traces)."""

from __future__ import annotations

import json
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

MIB = 2**20
# Relative sizes of the files: a few big ones and a long tail, like a real /var/log/app.
WEIGHTS = (
    200, 150, 120, 100, 80, 70, 60, 50, 40, 35, 30, 25, 20, 18, 16, 14, 12, 10, 8, 6, 4, 3, 2, 1,
)  # fmt: skip
KINDS = ("access", "app", "syslog")
PATHS = (
    "/",
    "/api/v1/orders",
    "/api/v1/users",
    "/static/app.js",
    "/health",
    "/login",
    "/api/v1/search",
    "/cart",
    "/checkout",
    "/img/logo.png",
)
AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0",
    "curl/8.5.0",
    "Go-http-client/1.1",
    "Prometheus/2.53.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5) Safari/604.1",
)
MESSAGES = (
    "request handled",
    "cache miss",
    "order created",
    "payment authorized",
    "user logged in",
    "slow query",
    "retrying upstream",
    "connection reset by peer",
)
LEVELS = ("info", "info", "info", "debug", "warning", "error")


def _clock(t: int) -> str:
    return f"{t // 3600 % 24:02d}:{t // 60 % 60:02d}:{t % 60:02d}"


def _access(rng: random.Random, t: int) -> str:
    ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
    status = rng.choice((200, 200, 200, 200, 201, 204, 301, 304, 404, 500, 502))
    return (
        f"{ip} - - [22/Nov/2026:{_clock(t)} +0000] "
        f'"{rng.choice(("GET", "GET", "POST", "PUT"))} {rng.choice(PATHS)}'
        f'?id={rng.getrandbits(48):012x} HTTP/1.1" {status} {rng.randrange(50, 90000)} '
        f'"-" "{rng.choice(AGENTS)}" {rng.random():.3f}\n'
    )


def _app(rng: random.Random, t: int) -> str:
    return (
        json.dumps(
            {
                "ts": f"2026-11-22T{_clock(t)}.{rng.randrange(1000):03d}Z",
                "level": rng.choice(LEVELS),
                "msg": rng.choice(MESSAGES),
                "request_id": f"{rng.getrandbits(128):032x}",
                "user_id": rng.randrange(1, 500000),
                "latency_ms": round(rng.expovariate(1 / 40), 2),
                "shard": rng.randrange(16),
            }
        )
        + "\n"
    )


def _syslog(rng: random.Random, t: int) -> str:
    line = (
        f"Nov 22 {_clock(t)} web-{rng.randrange(40)} "
        f"app[{rng.randrange(1000, 65000)}]: {rng.choice(MESSAGES)} "
        f"txn={rng.getrandbits(64):016x} took={rng.randrange(1, 5000)}ms\n"
    )
    if rng.random() < 0.01:  # now and then a stack trace, as real error logs have
        frames = "".join(
            f"    at com.shop.{rng.choice(('orders', 'cart', 'pay'))}.Handler"
            f".call(Handler.java:{rng.randrange(20, 900)})\n"
            for _ in range(12)
        )
        line += f"java.lang.IllegalStateException: state {rng.getrandbits(32):08x}\n{frames}"
    return line


LINE = {"access": _access, "app": _app, "syslog": _syslog}


def _write(path: Path, kind: str, size: int, seed: int) -> int:
    rng = random.Random(seed)  # seeded test data
    make = LINE[kind]
    written, t = 0, 0
    with path.open("w") as f:
        while written < size:
            chunk = "".join(make(rng, t + i // 50) for i in range(2000))
            t += 40
            written += f.write(chunk)
    return path.stat().st_size


def generate(directory: Path, total_mib: int, seed: int = 7, workers: int = 2) -> int:
    """Write the corpus into `directory` (24 files, about `total_mib` MiB); total bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    scale = total_mib * MIB / sum(WEIGHTS)
    jobs = [
        (directory / f"{KINDS[i % 3]}-{i:02d}.log", KINDS[i % 3], int(w * scale), seed + i)
        for i, w in enumerate(WEIGHTS)
    ]
    with ProcessPoolExecutor(workers) as pool:
        return sum(pool.map(_write, *zip(*jobs, strict=True)))
