"""Group commit: the engine's store writes are batched into one transaction, in arrival order;
a batch that fails is retried part by part, so that one caller's bad data fails that caller."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from opsmedic.errors import IncidentMoved, StoreError, StoreRefused
from opsmedic.logs import get_logger
from opsmedic.model import Event, Run, StepRecord
from opsmedic.store.codec import EncodedEvent
from opsmedic.store.decision_rows import DecisionRows
from opsmedic.store.incident_rows import IncidentRows
from opsmedic.store.store import Store

CHECKPOINT_EVERY_S = 1.0
# Waits between attempts to record a run's end while the store is unavailable: about seven
# seconds in all, enough for a PostgreSQL fail-over or restart, short enough not to hold an
# execution slot for long.
FINISH_RETRY_S = (1.0, 2.0, 4.0)


@dataclass(slots=True)
class _Batch:
    """The writes of one call (a part), or of every part of a commit merged in order."""

    events: list[Event | EncodedEvent] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    finished: list[Run] = field(default_factory=list)
    incidents: IncidentRows = field(default_factory=IncidentRows)
    decisions: DecisionRows = field(default_factory=DecisionRows)
    waiter: asyncio.Future[set[str]] | None = None

    def add(self, part: _Batch) -> None:
        self.events += part.events
        self.runs += part.runs
        self.claims += part.claims
        self.finished += part.finished
        self.incidents.extend(part.incidents)
        self.decisions.extend(part.decisions)

    def settle(self, claimed: set[str] | BaseException) -> None:
        if self.waiter is None or self.waiter.done():
            return
        if isinstance(claimed, BaseException):
            err = claimed if isinstance(claimed, Exception) else RuntimeError(str(claimed))
            self.waiter.set_exception(err)
        else:
            self.waiter.set_result(claimed)


def isolable(exc: Exception) -> bool:
    """Whether one part of a failed commit may be at fault: anything but an unreachable store
    (which fails every part alike; retrying each alone would wait out a timeout per part)."""
    return isinstance(exc, StoreRefused) or not isinstance(exc, StoreError)


def _bare(run: Run) -> Run:
    """The run's end without what its actions wrote: state, times, each step's action and state."""
    steps = [StepRecord(action=s.action, params={}, state=s.state, message="not recorded",
                        attempts=s.attempts, started_at=s.started_at, duration_ms=s.duration_ms,
                        on_failure=s.on_failure) for s in run.steps]  # fmt: skip
    message = f"{run.state}; its details could not be stored (see the log)"
    return dataclasses.replace(run, steps=steps, message=message)


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
        self._parts: list[_Batch] = []
        self._log = get_logger(component="journal")
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
        if self._parts:
            await self._flush(self._parts)
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
                    self._log.warning("store.checkpoint_failed", error=str(exc))

    def _enqueue(self, part: _Batch) -> asyncio.Future[set[str]]:
        part.waiter = asyncio.get_running_loop().create_future()
        self._parts.append(part)
        self._wake.set()
        return part.waiter

    async def record(
        self,
        events: Sequence[Event | EncodedEvent],
        runs: Sequence[Run],
        claim: Sequence[str] = (),
        incidents: IncidentRows | None = None,
        decisions: DecisionRows | None = None,
    ) -> set[str]:
        """Events, their runs and the incident changes they made, durable when this returns;
        the runs named in `claim` are claimed (planned → running, a conditional update) in
        the same commit. Returns the ids actually claimed: a run someone else claimed first
        is not among them. Raises what the commit raised; StoreRefused when this call's own
        data failed it (committed alone, after the shared commit failed)."""
        if self._store is None:
            return set(claim)
        part = _Batch(list(events), list(runs), list(claim), incidents=incidents or IncidentRows(),
                      decisions=decisions or DecisionRows())  # fmt: skip
        return await self._enqueue(part) & set(claim)

    async def finish(self, run: Run, incidents: IncidentRows | None = None) -> None:
        """The run's final state and the incident rows its end changed, durable on return."""
        # Retried while the store is unavailable: a short outage must not leave the run
        # `running` until the next start. If it stays so this raises, and the next start
        # marks the run interrupted, as after a crash.
        if self._store is None:
            return
        for delay in (*FINISH_RETRY_S, None):
            try:
                await self._record_finish(run, incidents or IncidentRows())
                return
            except Exception as exc:
                if isolable(exc) or delay is None:
                    raise
                self._log.warning("journal.finish_retried", run_id=run.id, error=str(exc))
                await asyncio.sleep(delay)

    async def _record_finish(self, run: Run, incidents: IncidentRows) -> None:
        """Record the run's end; when the store refuses its data, again with less of it."""
        # A refusal here is this run's own data: a commit it shared with others was retried
        # part by part (_flush). Its result is kept: without its incident rows, then bare.
        tries = [_Batch(finished=[run], incidents=incidents)]
        if incidents:
            tries.append(_Batch(finished=[run]))  # the run's result before the incident's
        tries.append(_Batch(finished=[_bare(run)]))
        for batch in tries:
            try:
                await self._enqueue(batch)
                return
            except Exception as exc:
                # IncidentMoved: the rows are not wrong but stale; the engine makes them again.
                if not isolable(exc) or isinstance(exc, IncidentMoved) or batch is tries[-1]:
                    raise
                self._log.error("journal.finish_refused", run_id=run.id,
                                error=f"{type(exc).__name__}: {exc}")  # fmt: skip

    def note(self, incidents: IncidentRows) -> None:
        """Incident rows that need not be waited for (a run started): the next commit."""
        if self._store is not None and incidents:
            self._parts.append(_Batch(incidents=incidents))
            self._wake.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            parts, self._parts = self._parts, []
            await self._flush(parts)

    async def _flush(self, parts: list[_Batch]) -> None:
        """Commit the parts together; if that fails for a reason one part may have caused,
        commit each alone, in order, so that only the parts at fault fail."""
        merged = parts[0] if len(parts) == 1 else _Batch()
        if len(parts) > 1:
            for part in parts:
                merged.add(part)
        try:
            try:
                result: set[str] | Exception = await self._commit(merged)
            except Exception as exc:
                result = exc
            if isinstance(result, Exception) and len(parts) > 1 and isolable(result):
                self._log.warning("journal.batch_retried_by_part", parts=len(parts),
                                  error=f"{type(result).__name__}: {result}")  # fmt: skip
                for part in parts:
                    try:
                        part.settle(await self._commit(part))
                    except Exception as exc:
                        self._failed_alone(part, exc)
                return
            for part in parts:
                part.settle(result)
        except BaseException as exc:  # cancelled mid-commit (close): nobody may wait forever
            for part in parts:
                part.settle(exc)
            raise

    def _failed_alone(self, part: _Batch, exc: Exception) -> None:
        if part.waiter is None:  # nobody to tell (note): the log is where it shows
            self._log.error("journal.part_failed", error=f"{type(exc).__name__}: {exc}")
        part.settle(exc)

    async def _commit(self, batch: _Batch) -> set[str]:
        assert self._store is not None
        if self._store.local:
            # SQLite on this thread: a commit is CPU work of a few ms (WAL appends, no
            # fsync; checkpoints, which fsync, have their own thread). On the DB thread
            # the two threads fought for the GIL at every row and ingest was ~1.3x slower
            # (bench/ingest.py); PostgreSQL waits on the network, so it keeps the thread.
            return self._write(batch)
        claimed: set[str] = await self.call(self._write, batch)
        return claimed

    def _write(self, batch: _Batch) -> set[str]:
        assert self._store is not None
        self._writes += 1
        # One transaction per batch; inside it a run is recorded, then claimed, then finished.
        return set(
            self._store.record(
                batch.events,
                batch.runs,
                batch.claims,
                self._now(),
                batch.finished,
                batch.incidents,
                batch.decisions,
            )
        )
