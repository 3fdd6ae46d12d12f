"""The jittered delay between one check's or poll's start and the next; a repeated task."""

from __future__ import annotations

import asyncio
import random

from opsmedic.clock import next_delay, repeat


def test_next_delay_stays_within_jitter_bounds() -> None:
    rng = random.Random(1234)
    delays = [next_delay(30.0, 0.2, rng) for _ in range(2000)]
    assert all(30.0 <= d <= 36.0 for d in delays)
    # The jitter is actually used, across most of its range.
    assert min(delays) < 30.5
    assert max(delays) > 35.5


def test_next_delay_without_jitter_is_the_interval() -> None:
    rng = random.Random(1)
    assert {next_delay(10.0, 0.0, rng) for _ in range(10)} == {10.0}


def test_next_delay_is_reproducible_with_a_seeded_rng() -> None:
    first = [next_delay(5.0, 1.0, random.Random(7)) for _ in range(3)]
    second = [next_delay(5.0, 1.0, random.Random(7)) for _ in range(3)]
    assert first == second
    assert all(5.0 <= d <= 10.0 for d in first)


async def test_repeat_outlives_a_failing_tick_and_stops_when_told() -> None:
    stop, ticks, failures = asyncio.Event(), list[int](), list[Exception]()

    async def tick() -> None:
        ticks.append(len(ticks))
        if len(ticks) == 1:
            raise OSError("the store is away")
        if len(ticks) == 3:
            stop.set()

    await asyncio.wait_for(repeat(0.001, stop, tick, failures.append), 30)
    assert ticks == [0, 1, 2] and [str(f) for f in failures] == ["the store is away"]
