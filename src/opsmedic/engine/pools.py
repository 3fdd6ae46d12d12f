"""Execution pools, one per queue: investigations and remediations never wait for each other."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping

from opsmedic.config.schema import Concurrency
from opsmedic.model import Queue


class Pool:
    """One queue's execution slots, and the runs claimed for it that wait for one.

    A claimed run is admitted first (`admit`, on the planning loop), then waits for a slot
    in its own task (`acquire`), so a full pool holds up its own runs only. Admission is
    bounded at as many waiting runs as there are slots: past that, `admit` waits, and with
    it the planning of further events (backpressure on the sources, as before queues had
    pools), rather than claimed runs piling up in memory without end.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.running = 0  # runs holding a slot
        self.waiting = 0  # runs admitted, waiting for a slot
        self._slots = asyncio.Semaphore(size)
        self._places = asyncio.Semaphore(2 * size)  # the slots and as many waiting places

    async def admit(self) -> None:
        await self._places.acquire()
        self.waiting += 1

    async def acquire(self) -> None:
        """For an admitted run: wait for a slot, held from its start to its end (on_failure
        included) and given back with `release`."""
        try:
            await self._slots.acquire()
        except BaseException:  # cancelled while waiting (shutdown): its place is given back
            self.waiting -= 1
            self._places.release()
            raise
        self.waiting -= 1
        self.running += 1

    def release(self) -> None:
        self.running -= 1
        self._slots.release()
        self._places.release()


class Pools(Mapping[str, Pool]):
    """The pool of each queue, by queue name: `actions.concurrency.total` slots for
    remediation, `actions.concurrency.investigation` for investigation."""

    def __init__(self, concurrency: Concurrency) -> None:
        self._pools = {
            Queue.REMEDIATION.value: Pool(concurrency.total),
            Queue.INVESTIGATION.value: Pool(concurrency.investigation),
        }

    def __getitem__(self, queue: str) -> Pool:
        return self._pools[queue]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pools)

    def __len__(self) -> int:
        return len(self._pools)
