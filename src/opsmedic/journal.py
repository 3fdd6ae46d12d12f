"""Group commit: the engine's store writes are batched into one transaction, in arrival order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from opsmedic.logs import get_logger
from opsmedic.model import Event, Run
from opsmedic.store.incident_rows import IncidentRows
from opsmedic.store.store import Store

CHECKPOINT_EVERY_S = 1.0


@dataclass(slots=True)
class _Batch:
    events: list[Event] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    finished: list[Run] = field(default_factory=list)
    incidents: IncidentRows = field(default_factory=IncidentRows)
    waiters: list[asyncio.Future[set[str]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.events or self.runs or self.claims or self.finished or self.incidents)


class Journal:
    """Collects writes while the previous batch commits, then commits them together.

    One transaction per batch (events, runs, claims, finished runs, incident rows): under load
    hundreds of events share a commit, which is what makes a durable engine fast on SQLite;
    when idle a write commits at once.
    Without a store (dry-run replay) every write succeeds immediately and touches nothing.
    """

    def __init__(self, store: Store | None, clock_now: Callable[[], float]) -> None:
        self._store = store
        self._now = clock_now
        self._batch = _Batch()
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsmedic-db")
        # Checkpoints get a thread of their own: they fsync, and writes must not wait on that.
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsmedic-ckpt")
        self._writes = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run another store call on the DB thread (reads for the CLI, start-up recovery)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._flush_loop(), name="opsmedic-journal")]
        if self._store is not None:
            self._tasks.append(asyncio.create_task(self._checkpoint_loop(), name="opsmedic-ckpt"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._batch:
            await self._flush(self._batch)
        self._executor.shutdown(wait=True)
        self._checkpointer.shutdown(wait=True)

    async def _checkpoint_loop(self) -> None:
        assert self._store is not None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            if self._writes:
                self._writes = 0
                try:
                    await loop.run_in_executor(self._checkpointer, self._store.checkpoint)
                except Exception as exc:  # the next one may succeed; writes go on regardless
                    log = get_logger(component="journal")
                    log.warning("store.checkpoint_failed", error=str(exc))

    def _enqueue(self) -> asyncio.Future[set[str]]:
        fut: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self._batch.waiters.append(fut)
        self._wake.set()
        return fut

    async def record(
        self,
        events: Sequence[Event],
        runs: Sequence[Run],
        claim: Sequence[str] = (),
        incidents: IncidentRows | None = None,
    ) -> set[str]:
        """Events, their runs and the incident changes they made, durable when this returns;
        the runs named in `claim` are claimed (planned → running, a conditional update) in
        the same commit. Returns the ids actually claimed: a run someone else claimed first
        is not among them."""
        if self._store is None:
            return set(claim)
        self._batch.events.extend(events)
        self._batch.runs.extend(runs)
        self._batch.claims.extend(claim)
        if incidents:
            self._batch.incidents.extend(incidents)
        return await self._enqueue() & set(claim)

    async def finish(self, run: Run, incidents: IncidentRows | None = None) -> None:
        if self._store is None:
            return
        self._batch.finished.append(run)
        if incidents:
            self._batch.incidents.extend(incidents)
        await self._enqueue()

    def note(self, incidents: IncidentRows) -> None:
        """Incident rows that need not be waited for (a run started): the next commit."""
        if self._store is not None and incidents:
            self._batch.incidents.extend(incidents)
            self._wake.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._batch = self._batch, _Batch()
            await self._flush(batch)

    async def _flush(self, batch: _Batch) -> None:
        assert self._store is not None
        try:
            if self._store.local:
                # SQLite on this thread: a commit is CPU work of a few ms (WAL appends, no
                # fsync; checkpoints, which fsync, have their own thread). On the DB thread
                # the two threads fought for the GIL at every row and ingest was ~1.3x slower
                # (bench/ingest.py); PostgreSQL waits on the network, so it keeps the thread.
                claimed = self._write(batch)
            else:
                claimed = await self.call(self._write, batch)
        except BaseException as exc:
            for fut in batch.waiters:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for fut in batch.waiters:
            if not fut.done():
                fut.set_result(claimed)

    def _write(self, batch: _Batch) -> set[str]:
        assert self._store is not None
        self._writes += 1
        # One transaction per batch; inside it a run is recorded, then claimed, then finished.
        return set(
            self._store.record(
                batch.events, batch.runs, batch.claims, self._now(), batch.finished, batch.incidents
            )
        )
