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
    bounded at as many waiting runs as there are slots: past that, `admit` waits. The
    planner asks `full` first (Pools.refusal) so that only a remediation's admission ever
    waits, and with it the planning of further events (backpressure on the sources); an
    investigation past its backlog is refused instead, so a flood of investigations never
    delays a remediation.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.running = 0  # runs holding a slot
        self.waiting = 0  # runs admitted, waiting for a slot
        self.booked = 0  # runs planned in the batch being planned, admitted at its commit
        self._slots = asyncio.Semaphore(size)
        self._places = asyncio.Semaphore(2 * size)  # the slots and as many waiting places

    def full(self) -> bool:
        """Whether one more run planned now would have to wait for its admission."""
        return self.running + self.waiting + self.booked >= 2 * self.size

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

    def new_batch(self) -> None:
        """Before a batch is planned: the last batch's runs are admitted (or dropped) by now."""
        for pool in self._pools.values():
            pool.booked = 0

    def refusal(self, queue: str) -> str:
        """Why a run of `queue` is not planned now ("" when it is): an investigation pool
        past its backlog refuses, where a remediation waits for its admission (and holds up
        planning: acting matters more than looking)."""
        pool = self._pools[queue]
        if queue != Queue.INVESTIGATION or not pool.full():
            return ""
        return f"{queue} queue full: {pool.running} running, {pool.waiting} waiting"

    def book(self, queue: str) -> None:
        """A run of `queue` was planned in this batch: it takes a place at the commit."""
        self._pools[queue].booked += 1

    def __getitem__(self, queue: str) -> Pool:
        return self._pools[queue]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pools)

    def __len__(self) -> int:
        return len(self._pools)
