"""The Prometheus metrics: what each counter counts."""

from __future__ import annotations

from opsmedic.config.muting import InhibitRule
from opsmedic.engine.inhibitor import Inhibitor
from opsmedic.engine.muting import inhibit_rules
from opsmedic.metrics import Metrics
from opsmedic.model import Event, Run, RunState, Status


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_probe_readings_count_as_received_and_failures_only_when_firing() -> None:
    metrics = Metrics()
    metrics.probed([Event(source="http", kind="web", status=Status.FIRING),
                    Event(source="http", kind="web", status=Status.RESOLVED),
                    Event(source="disk", kind="var", status=Status.FIRING)])  # fmt: skip
    assert sample(metrics, "opsmedic_events_received_total", source="http") == 2
    assert sample(metrics, "opsmedic_probe_failures_total", probe="web") == 1
    assert sample(metrics, "opsmedic_probe_failures_total", probe="var") == 1


def test_a_run_counts_once_per_action_and_its_duration() -> None:
    metrics = Metrics()
    run = Run(rule="fix", event_id="e", target="t", fingerprint="f",
              actions=["run_command", "notify", "run_command"], state=RunState.FAILED,
              started_at=100.0, finished_at=102.5)  # fmt: skip
    metrics.finished(run)
    assert sample(metrics, "opsmedic_runs_total", rule="fix", action="run_command",
                  outcome="failed") == 1  # fmt: skip
    assert sample(metrics, "opsmedic_runs_total", rule="fix", action="notify",
                  outcome="failed") == 1  # fmt: skip
    assert sample(metrics, "opsmedic_run_duration_seconds_sum", rule="fix") == 2.5
    skipped = Run(rule="fix", event_id="e", target="t", fingerprint="f", actions=["noop"],
                  state=RunState.SKIPPED)  # fmt: skip
    metrics.finished(skipped)  # never started: counted, no duration
    assert sample(metrics, "opsmedic_run_duration_seconds_count", rule="fix") == 1
    assert b"opsmedic_rule_reload_errors_total 0.0" in metrics.exposition()


def test_inhibit_sources_evicted_at_the_cap_are_counted_by_rule() -> None:
    rule = InhibitRule(name="node-down", source_matchers=["kind=NodeDown"],
                       target_matchers=["kind=web"])  # fmt: skip
    inhibitor = Inhibitor(inhibit_rules([rule]), cap=2)
    metrics = Metrics()
    metrics.watch_evictions(inhibitor.evicted)
    assert b"opsmedic_inhibit_sources_evicted_total{" not in metrics.exposition()
    for n in range(5):
        inhibitor.observe(Event(source="am", kind="NodeDown", fingerprint=f"fp-{n}"), at=0.0)
    assert b'opsmedic_inhibit_sources_evicted_total{rule="node-down"} 3.0' in (metrics.exposition())
