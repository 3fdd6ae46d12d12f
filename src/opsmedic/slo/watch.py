"""SLOs in `opsmedic run`: samples flushed to the store, burn rates evaluated, alerts emitted."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from opsmedic.config.schema import ProbeConfig
from opsmedic.config.slos import SloConfig
from opsmedic.model import Event
from opsmedic.slo.evaluator import Evaluator
from opsmedic.slo.prometheus_sli import PrometheusSlis
from opsmedic.slo.samples import SampleBuffer
from opsmedic.slo.sli import compile_sli
from opsmedic.slo.status import SloStatus
from opsmedic.store.store import Store

# Samples wait in memory at most this long (a crash loses at most this much of them); the
# alert windows are evaluated every EVALUATE_EVERY_S: a page comes within that of its burn.
FLUSH_EVERY_S = 10.0
EVALUATE_EVERY_S = 30.0
Gauges = Mapping[str, float | None]  # SLO → budget remaining
Burns = Mapping[str, Mapping[str, float | None]]  # SLO → window → burn rate


def statuses(slos: Sequence[SloConfig], store: Store, now: float) -> list[SloStatus]:
    """Every SLO's status at `now` from the store alone (the API and `opsmedic slo`)."""
    evaluator = Evaluator(slos, store.slo_samples)
    evaluator.refresh(now)
    evaluator.evaluate(now)
    return [evaluator.statuses[s.name] for s in slos]


class StatusReader:
    """Every SLO's status for the dashboard's pages, polled every few seconds: one Evaluator
    kept between reads, so a read costs the last hour's minutes and, at most every
    FLUSH_EVERY_S, the window's sums (the watch writes samples that often: a fresher sum
    finds nothing new), not the whole window again. The arithmetic of `statuses`."""

    def __init__(self, slos: Sequence[SloConfig], store: Store) -> None:
        self._slos = list(slos)
        self._evaluator = Evaluator(self._slos, store.slo_samples)
        self._lock = threading.Lock()  # reads come from the server's worker threads

    def read(self, now: float) -> list[SloStatus]:
        with self._lock:
            self._evaluator.refresh(now, sums_every_s=FLUSH_EVERY_S)
            self._evaluator.evaluate(now)  # its alert events are the watch's to send, not these
            return [self._evaluator.statuses[s.name] for s in self._slos]


class SloWatch:
    """Feeds the engine's committed events to the SLIs; `run` flushes and evaluates."""

    def __init__(
        self, slos: Sequence[SloConfig], probes: Sequence[ProbeConfig], store: Store, *,
        now: Callable[[], float], call: Callable[..., Awaitable[Any]],
        emit: Callable[[list[Event]], Awaitable[object]], log: Any,
        gauges: Callable[[Gauges, Burns], None] | None = None,
    ) -> None:  # fmt: skip
        by_name = {p.name: p for p in probes}
        self.buffer = SampleBuffer(
            [compile_sli(s, by_name) for s in slos if s.sli.prometheus is None]
        )
        self.prometheus = PrometheusSlis(slos, store.slo_samples, log)
        self.evaluator = Evaluator(slos, store.slo_samples)
        self._store, self._now, self._call, self._emit = store, now, call, emit
        self._log, self._gauges = log, gauges
        # CPU seconds of evaluation (this thread and the DB thread's reads): the cost to report.
        self.spent_s = 0.0
        self.evaluations = 0

    def observe(self, events: list[Event]) -> None:
        """Events just committed (engine.on_committed): the events SLIs' samples."""
        self.buffer.observe(events, self._now())

    def observe_probed(self, events: list[Event]) -> None:
        """The probe runner's readings, once committed: the probe SLIs' samples."""
        self.buffer.observe(events, self._now(), probed=True)

    async def run(self) -> None:
        """Until cancelled; a store that fails is logged and tried again next time."""
        next_evaluation = 0.0
        loop = asyncio.get_running_loop()
        # Prometheus is read beside, so that a slow one never delays the alerts of the others.
        reading = asyncio.create_task(self._keep_reading()) if self.prometheus.slos else None
        try:
            while True:
                await self.flush()
                if loop.time() >= next_evaluation:
                    next_evaluation = loop.time() + EVALUATE_EVERY_S
                    await self.evaluate()
                await asyncio.sleep(FLUSH_EVERY_S)
        finally:  # stopping: the samples gathered since the last flush are kept too
            if reading is not None:
                reading.cancel()
            await self.flush()

    async def _keep_reading(self) -> None:
        while True:
            await self.read_prometheus()
            await asyncio.sleep(FLUSH_EVERY_S)

    async def flush(self) -> None:
        taken = self.buffer.take()
        if not taken:
            return
        try:
            await self._call(self._store.slo_samples.add, taken)
        except Exception as exc:  # kept for the next flush: the counts add up in the store
            self.buffer.put_back(taken)
            self._log.error("slo.flush_failed", error=f"{type(exc).__name__}: {exc}")

    async def read_prometheus(self) -> None:
        try:
            await self.prometheus.poll(self._now(), self._call)
        except Exception as exc:  # the store is away: the minutes are read again next time
            self._log.error("slo.prometheus_failed", error=f"{type(exc).__name__}: {exc}")

    async def evaluate(self) -> None:
        now = self._now()
        started = time.thread_time()
        try:
            read_s = await self._call(_timed, self.evaluator.refresh, now)
        except Exception as exc:
            self._log.error("slo.evaluation_failed", error=f"{type(exc).__name__}: {exc}")
            return
        events = self.evaluator.evaluate(now)
        self.spent_s += time.thread_time() - started + read_s
        self.evaluations += 1
        for name, error in self.evaluator.failures.items():
            self._log.error("slo.evaluation_failed", slo=name, error=error)
        for event in events:
            self._log.warning("slo.burn", slo=event.labels["slo"], window=event.labels["window"],
                              status=str(event.status), severity=event.severity)  # fmt: skip
        if events:
            try:
                await self._emit(events)
            except Exception as exc:  # the store is down: announced again at the next evaluation
                self.evaluator.unsent()
                self._log.error("slo.emit_failed", error=f"{type(exc).__name__}: {exc}")
        if self._gauges is not None:
            found = self.evaluator.statuses.values()
            self._gauges({s.slo.name: s.as_dict()["budget_remaining"] for s in found},
                         {s.slo.name: s.as_dict()["burn_rates"] for s in found})  # fmt: skip


def _timed(fn: Callable[[float], None], now: float) -> float:
    """Run `fn(now)` and return the CPU time it took on this (the DB) thread."""
    started = time.thread_time()
    fn(now)
    return time.thread_time() - started
