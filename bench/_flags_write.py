"""What a flag change costs through the FlagService: the store alone, and the store with Redis.

Each flip is `FlagService.set_enabled` (a locked read, the new version and its history row,
for Redis a put from inside the transaction, the commit, the announced event handed to a
callable that drops it), on SQLite in a temporary directory and a real redis-server on loopback
without persistence. Run: `.venv/bin/python bench/_flags_write.py [--flips 200]`; the last
line is JSON: `{"store_ms": {"p50", "p99"}, "store_redis_ms": {"p50", "p99"}}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from opsmedic.clock import SystemClock
from opsmedic.flagops.mirror import RedisMirror
from opsmedic.flagops.service import FlagService
from opsmedic.flags.changes import Author
from opsmedic.flags.model import Flag
from opsmedic.model import Event
from opsmedic.store.store import Store

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from _proc import log, percentile, rounded  # noqa: E402

BY = Author("cli", "bench")


async def _dropped(events: list[Event]) -> None:
    """The announce path's stand-in: the engine's inbox is not what is measured here."""


async def flips(service: FlagService, n: int) -> list[float]:
    """Milliseconds per flip of one flag, `n` times."""
    await service.set(Flag.model_validate({"key": "bench", "default": "on"}), BY)
    took = []
    for i in range(n):
        t0 = time.perf_counter()
        await service.set_enabled("bench", i % 2 == 1, BY)
        took.append((time.perf_counter() - t0) * 1000)
    return took


def summary(took: list[float]) -> dict[str, float | None]:
    return {"p50": rounded(percentile(took, 50), 2), "p99": rounded(percentile(took, 99), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=200)
    args = parser.parse_args()
    from _redis import throwaway_redis

    with throwaway_redis("opsmedic-bench-flagwrite-") as (url, work):
        result = {}
        for name, redis in (("store_ms", None), ("store_redis_ms", url)):
            store = Store(f"sqlite:///{work / (name + '.db')}")
            store.migrate()
            mirror = RedisMirror(redis) if redis else None
            service = FlagService(store, SystemClock(), redis=mirror, announce=_dropped)

            async def run(service: FlagService = service) -> list[float]:
                try:
                    return await flips(service, args.flips)
                finally:
                    await service.aclose()

            result[name] = summary(asyncio.run(run()))
            store.close()
            log(f"{name}: {result[name]}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
