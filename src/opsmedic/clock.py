"""Clocks passed in (tests move time instead of sleeping), the jittered delay between checks,
and a task repeated on an interval."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol


class Clock(Protocol):
    """Wall time (epoch seconds) for records, monotonic time for durations and windows."""

    def now(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that only moves when told to; for tests and for replaying recorded events."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds


def next_delay(interval: float, jitter: float, rng: random.Random) -> float:
    """Seconds from one check's or poll's start to the next: interval plus U[0, jitter * interval].

    Jitter spreads probes and pollers that share an interval so they do not hit targets in
    lockstep.
    """
    return interval + rng.uniform(0.0, jitter * interval)


async def repeat(
    seconds: float, stop: asyncio.Event, tick: Callable[[], Awaitable[object]],
    failed: Callable[[Exception], None],
) -> None:  # fmt: skip
    """Await `tick` every `seconds` until `stop` is set. A tick that raises (the store is
    briefly away) is reported to `failed` and the next one tried: the loop outlives it."""
    while True:
        try:
            await asyncio.wait_for(stop.wait(), seconds)
            return
        except TimeoutError:
            pass
        try:
            await tick()
        except Exception as exc:
            failed(exc)
