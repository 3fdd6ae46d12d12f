"""Prometheus metrics of one opsmedic process, in a registry of its own (no global state)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from opsmedic.clock import Clock
from opsmedic.model import Event, Run, Status

# Remediations take from milliseconds (a noop) to minutes (an archive over SSH).
_RUN_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


class StoreHealth(Protocol):
    """What the flag store's gauges read (flagops.health.FlagStoreHealth)."""

    @property
    def up(self) -> bool | None: ...

    def staleness_s(self, now: float) -> float | None: ...


class QueueLoad(Protocol):
    """What the queue gauges read of a queue's pool (engine/pools.py Pool)."""

    running: int
    waiting: int


class Metrics:
    """What `/metrics` shows: events in, runs out or held, probe failures, rule-reload errors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter("opsmedic_events_received", "Events received, by source",
                              ["source"], registry=r)  # fmt: skip
        self.runs = Counter("opsmedic_runs", "Finished runs, by rule, action and outcome",
                            ["rule", "action", "outcome"], registry=r)  # fmt: skip
        self.run_seconds = Histogram("opsmedic_run_duration_seconds",
                                     "Run duration from start to finish, by rule", ["rule"],
                                     buckets=_RUN_BUCKETS, registry=r)  # fmt: skip
        self.probe_failures = Counter("opsmedic_probe_failures",
                                      "Probe checks that failed (firing), by probe", ["probe"],
                                      registry=r)  # fmt: skip
        self.held = Counter("opsmedic_runs_held",
                            "Rule matches held, not run, because the service their event is "
                            "about depends on a failing one; by rule and failing dependency",
                            ["rule", "dependency"], registry=r)  # fmt: skip
        self.reload_errors = Counter("opsmedic_rule_reload_errors",
                                     "Rule reloads rejected because the new set was invalid",
                                     registry=r)  # fmt: skip
        self.in_flight = Gauge("opsmedic_runs_in_flight",
                               "Runs executing now, by queue (each queue has its own slots)",
                               ["queue"], registry=r)  # fmt: skip
        # Made by the first `slos` call: a process without SLOs shows none of their series.
        self._slo_budget: Gauge | None = None
        self._slo_burn: Gauge | None = None
        self.waiting = Gauge("opsmedic_runs_waiting",
                             "Runs claimed and waiting for a slot of their queue, by queue",
                             ["queue"], registry=r)  # fmt: skip

    def received(self, events: Iterable[Event]) -> None:
        # Tallied first: one labelled increment per source, not per event (webhook batches).
        for source, n in Tally(e.source for e in events).items():
            self.events.labels(source).inc(n)

    def probed(self, events: Iterable[Event]) -> None:
        """Probe readings: counted as received, and as failures when firing."""
        events = list(events)
        self.received(events)
        for event in events:
            if event.status is Status.FIRING:
                self.probe_failures.labels(event.kind or event.resource).inc()

    def finished(self, run: Run) -> None:
        # A run with several steps counts once per action: "which action fails how often".
        for action in dict.fromkeys(run.actions) or [""]:
            self.runs.labels(run.rule, action, str(run.state)).inc()
        if run.started_at is not None and run.finished_at is not None:
            self.run_seconds.labels(run.rule).observe(max(0.0, run.finished_at - run.started_at))

    def slos(self, budgets: Mapping[str, float | None],
             burns: Mapping[str, Mapping[str, float | None]]) -> None:  # fmt: skip
        """Each SLO's budget remaining (a fraction) and burn rate per window; NaN: no data,
        never a number that reads as healthy."""
        if self._slo_budget is None:
            r = self.registry
            self._slo_budget = Gauge("opsmedic_slo_budget_remaining",
                                     "Error budget left over the SLO's window (1 = untouched, "
                                     "below 0 = overspent; NaN: no data)", ["slo"],
                                     registry=r)  # fmt: skip
            self._slo_burn = Gauge("opsmedic_slo_burn_rate",
                                   "Error ratio over the allowed one, per window (NaN: no data)",
                                   ["slo", "window"], registry=r)  # fmt: skip
        assert self._slo_burn is not None
        for name, left in budgets.items():
            self._slo_budget.labels(name).set(_nan(left))
        for name, rates in burns.items():
            for window, rate in rates.items():
                self._slo_burn.labels(name, window).set(_nan(rate))

    def hold(self, rule: str, dependency: str) -> None:
        self.held.labels(rule, dependency).inc()

    def watch_queues(self, pools: Mapping[str, QueueLoad]) -> None:
        """The queue gauges, read from each queue's pool at each scrape."""
        for queue, pool in pools.items():
            self._watch_queue(queue, pool)

    def _watch_queue(self, queue: str, pool: QueueLoad) -> None:
        self.in_flight.labels(queue).set_function(lambda: pool.running)
        self.waiting.labels(queue).set_function(lambda: pool.waiting)

    def watch_flag_store(self, health: Callable[[], StoreHealth | None], clock: Clock) -> None:
        """Gauges of opsmedic's own Redis connection for flags, read at each scrape."""

        def up() -> float:
            found = health()
            return 1.0 if found is not None and found.up else 0.0

        def stale() -> float:
            found = health()
            return (found.staleness_s(clock.now()) or 0.0) if found is not None else 0.0

        Gauge("opsmedic_flag_store_up", "1 while opsmedic's last write or check reached the "
              "flags' Redis", registry=self.registry).set_function(up)  # fmt: skip
        Gauge("opsmedic_flag_store_stale_seconds", "How long the flags' Redis has been "
              "unreachable (readers may be behind the store); 0 while up",
              registry=self.registry).set_function(stale)  # fmt: skip

    def watch_evictions(self, evicted: Callable[[], Mapping[str, int]]) -> None:
        """Inhibit rules' source alerts dropped at their cap (engine/inhibitor.py), by rule:
        counted by the inhibitor, read at each scrape."""
        self.registry.register(_Evictions(evicted))

    def watch_cost(self, spent: Callable[[], float]) -> None:
        """The CPU seconds SLO evaluation has cost this process, read at each scrape."""
        Gauge("opsmedic_slo_evaluation_cpu_seconds", "CPU time spent evaluating SLOs since "
              "start", registry=self.registry).set_function(spent)  # fmt: skip

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Evictions(Collector):
    def __init__(self, evicted: Callable[[], Mapping[str, int]]) -> None:
        self._evicted = evicted

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "opsmedic_inhibit_sources_evicted",
            "Firing source alerts an inhibit rule (or depends_on) forgot at its cap of "
            "10,000, the least recently fired first; by rule",
            labels=["rule"],
        )
        for rule, count in sorted(self._evicted().items()):
            family.add_metric([rule], count)
        yield family


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value
