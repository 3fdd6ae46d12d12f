"""Propagation of a flag change through Redis to reader processes, beside its floor.

Imported by bench/flags.py (`measure`); runs alone too, on a redis-server of its own:

    .venv/bin/python bench/_flags_propagation.py [--readers 4] [--flips 100]

Each reader process (this file, `reader URL`) holds a `FlagClient` over a `RedisFlagCache`
and, beside it, a raw redis-py subscription to a second channel; it prints `<kind> <n>
<monotonic time>` the moment it sees change n: `flag` from the client's on_change (called
once the client serves the new value: n is what `client.integer` returns there), `floor`
when the raw subscription receives message n. The writer
alternates the two, with a random pause between: a bare PUBLISH of n (the floor: what no
flag system on Redis pub/sub can beat), then a flip through `RedisFlagStore.put` (the Lua
script that checks, versions, stores and publishes). A sample is the time from just before
the writer sends to the moment the last reader sees it: CLOCK_MONOTONIC is one clock for
every process of a machine. Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from opsmedic.flags.client import FlagClient
from opsmedic.flags.redis_cache import RedisFlagCache
from opsmedic.flags.redis_store import RedisFlagStore

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from _proc import log, percentile, reap, rounded  # noqa: E402

FLOOR_CHANNEL = "bench:floor"
KEY = "bench_flag"
WAIT_S = 10.0  # one change not seen by every reader within this fails the run
Seen = tuple[int, str, int, float]  # reader, kind, n, monotonic time


def flag_doc(n: int) -> dict[str, Any]:
    """Flip n: a number flag that serves n, so a reader tells which flip it evaluated."""
    return {"key": KEY, "type": "number", "variants": {"n": n}, "default": "n"}


def reader(url: str) -> None:
    """A reader process: reports every change it sees on stdout until told to stop (-1)."""
    lock = threading.Lock()

    def say(kind: str, n: int) -> None:
        at = time.monotonic()
        with lock:
            print(f"{kind} {n} {at!r}", flush=True)

    cache = RedisFlagCache(url)
    client = FlagClient(cache)
    client.on_change(lambda key, version: say("flag", client.integer(KEY, -1)))
    with cache:
        if not cache.wait_ready(WAIT_S):
            raise SystemExit(f"reader: flags not loaded from {url} within {WAIT_S} s")
        pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(FLOOR_CHANNEL)
        pubsub.get_message(timeout=WAIT_S)  # the subscription's confirmation
        say("ready", 0)
        while True:
            message = pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            n = int(message["data"])
            if n < 0:
                return
            say("floor", n)


def _follow(index: int, proc: subprocess.Popen[str], seen: queue.Queue[Seen]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        kind, n, at = line.split()
        seen.put((index, kind, int(n), float(at)))


def _last_seen(seen: queue.Queue[Seen], readers: int, kind: str, n: int) -> float:
    """When the last of the readers saw change n of this kind."""
    times: dict[int, float] = {}
    deadline = time.monotonic() + WAIT_S
    while len(times) < readers:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(
                f"{kind} {n}: seen by {len(times)} of {readers} readers in {WAIT_S} s"
            )
        index, got_kind, got_n, at = seen.get(timeout=left)
        if (got_kind, got_n) != (kind, n):
            raise RuntimeError(
                f"reader {index} saw {got_kind} {got_n} while waiting for {kind} {n}"
            )
        times[index] = at
    return max(times.values())


async def _flips(
    url: str, seen: queue.Queue[Seen], readers: int, flips: int
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"flag": [], "floor": []}
    rng = random.Random(15)
    async with RedisFlagStore(url) as store:
        raw = aioredis.Redis.from_url(url)
        try:
            for n in range(1, flips + 1):
                start = time.monotonic()
                await raw.publish(FLOOR_CHANNEL, str(n))
                samples["floor"].append(_last_seen(seen, readers, "floor", n) - start)
                await asyncio.sleep(rng.uniform(0.005, 0.015))
                start = time.monotonic()
                await store.put(KEY, flag_doc(n))
                samples["flag"].append(_last_seen(seen, readers, "flag", n) - start)
                await asyncio.sleep(rng.uniform(0.005, 0.015))
        finally:
            await raw.publish(FLOOR_CHANNEL, "-1")
            await raw.aclose()
    return samples


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"p50": round(percentile(ms, 50), 2), "p99": round(percentile(ms, 99), 2),
            "max": round(max(ms), 2)}  # fmt: skip


def measure(url: str, *, readers: int = 4, flips: int = 100) -> dict[str, Any]:
    """Start `readers` reader processes on the Redis at `url`, flip a flag `flips` times,
    and return the propagation and floor figures (milliseconds) with the goals' verdicts."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "reader", url], stdout=subprocess.PIPE, text=True
        )
        for _ in range(readers)
    ]
    seen: queue.Queue[Seen] = queue.Queue()
    for index, proc in enumerate(procs):
        threading.Thread(target=_follow, args=(index, proc, seen), daemon=True).start()
    try:
        _last_seen(seen, readers, "ready", 0)
        log(f"{readers} readers ready; {flips} flips")
        samples = asyncio.run(_flips(url, seen, readers, flips))
    finally:
        reap(procs, WAIT_S)
    flag, floor = _summary(samples["flag"]), _summary(samples["floor"])
    return {
        "readers": readers,
        "flips": flips,
        "propagation_ms": flag,
        "publish_floor_ms": floor,
        "p99_over_floor": rounded(flag["p99"] / floor["p99"], 2) if floor["p99"] else None,
        "goals": {
            "p99_le_50ms": flag["p99"] <= 50,
            "p99_le_2x_floor": flag["p99"] <= 2 * floor["p99"],
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--flips", type=int, default=100)
    args = parser.parse_args()
    from _redis import throwaway_redis

    with throwaway_redis("opsmedic-bench-flags-") as (url, _):
        result = measure(url, readers=args.readers, flips=args.flips)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["reader"]:
        reader(sys.argv[2])
    else:
        sys.exit(main())
