"""SLIs judge events; samples are counted per minute, and skewed ones apart."""

from __future__ import annotations

from typing import Any

import pytest

from opsmedic.config.schema import ProbeConfig
from opsmedic.config.slos import SloConfig
from opsmedic.model import Event, Status
from opsmedic.slo.samples import SampleBuffer
from opsmedic.slo.sli import compile_sli
from store_fixtures import T0

M = int(T0 // 60)
PROBES = {
    "data": ProbeConfig.model_validate({"name": "data", "type": "http", "params": {"url": "x"}}),
    "disk": ProbeConfig.model_validate({"name": "disk", "type": "disk", "params": {"path": "/"}}),
}


def slo(sli: dict[str, Any], **more: Any) -> SloConfig:
    return SloConfig.model_validate({"name": "s", "objective": 99.9, "sli": sli, **more})


def reading(
    ok: bool, value: float | None = 12.0, kind: str = "data", time_shift: float = 0.0
) -> Event:
    status = Status.RESOLVED if ok else Status.FIRING
    return Event(source="http", kind=kind, status=status, value=value, time=T0 + time_shift)


def test_availability_is_ok_readings_of_that_probe() -> None:
    judge = compile_sli(slo({"availability": {"probe": "data"}}), PROBES).judge
    assert judge(reading(True)) is True
    assert judge(reading(False)) is False
    assert judge(reading(True, kind="other")) is None  # another probe: not a sample
    assert judge(Event(source="disk", kind="data", time=T0)) is None  # another type


def test_latency_is_ok_readings_within_the_threshold() -> None:
    judge = compile_sli(slo({"latency": {"probe": "data", "threshold": "200ms"}}), PROBES).judge
    assert judge(reading(True, 200.0)) is True
    assert judge(reading(True, 200.5)) is False
    assert judge(reading(False, 3.0)) is False  # a failed reading is a bad sample
    assert judge(reading(False, None)) is False


@pytest.mark.parametrize(
    ("side", "critical", "expected"),
    [("bad", True, False), ("bad", False, True), ("good", True, True), ("good", False, False)],
)
def test_events_count_by_their_matchers(side: str, critical: bool, expected: bool) -> None:
    matcher = "severity=critical" if side == "bad" else "severity!=info"
    sli = {"events": {"total": ["source=alertmanager"], side: [matcher]}}
    judge = compile_sli(slo(sli), PROBES).judge
    event = Event(source="alertmanager", severity="critical" if critical else "info", time=T0)
    assert judge(event) is expected
    assert judge(Event(source="grafana", time=T0)) is None


def test_an_unknown_or_unfit_probe_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown probe 'dta'"):
        compile_sli(slo({"availability": {"probe": "dta"}}), PROBES)
    with pytest.raises(ValueError, match="'disk' is a disk probe: latency needs one"):
        compile_sli(slo({"latency": {"probe": "disk", "threshold": "1s"}}), PROBES)


def test_samples_are_counted_per_slo_and_minute() -> None:
    both = [compile_sli(slo({"availability": {"probe": "data"}}), PROBES),
            compile_sli(slo({"latency": {"probe": "data", "threshold": "10ms"}}, name="fast"),
                        PROBES)]  # fmt: skip
    buffer = SampleBuffer(both)
    events = [reading(True), reading(False), reading(True, time_shift=60.0)]
    buffer.observe(events, now=T0 + 60, probed=True)
    assert buffer.take() == {("s", M): [1, 2, 0], ("s", M + 1): [1, 1, 0],
                             ("fast", M): [0, 2, 0], ("fast", M + 1): [0, 1, 0]}  # fmt: skip
    assert buffer.take() == {}  # taken: it starts again empty


def test_samples_far_from_the_clock_count_at_arrival_and_as_skewed() -> None:
    buffer = SampleBuffer([compile_sli(slo({"availability": {"probe": "data"}}), PROBES)])
    now = T0 + 7200  # the first claims two hours ago (late, or the clock jumped), the second
    # two minutes ahead; the third is within the hour: in its own minute
    events = [reading(True), reading(False, time_shift=7200 + 120), reading(True, time_shift=3700)]
    buffer.observe(events, now=now, probed=True)
    arrival = int(now // 60)
    assert buffer.take() == {("s", arrival): [1, 2, 2], ("s", int((T0 + 3700) // 60)): [1, 1, 0]}


def test_a_failed_flush_is_put_back_and_adds_up() -> None:
    buffer = SampleBuffer([compile_sli(slo({"availability": {"probe": "data"}}), PROBES)])
    buffer.observe([reading(True)], now=T0, probed=True)
    taken = buffer.take()
    buffer.observe([reading(False)], now=T0, probed=True)
    buffer.put_back(taken)
    assert buffer.take() == {("s", M): [1, 2, 0]}


def test_probe_slis_read_only_what_the_probe_runner_hands_them() -> None:
    probe = compile_sli(slo({"availability": {"probe": "data"}}), PROBES)
    events = compile_sli(slo({"events": {"total": ["source=http"], "bad": ["kind=x"]}},
                             name="e"), PROBES)  # fmt: skip
    buffer = SampleBuffer([probe, events])
    # Posted to the API with a probe's source and name: not a reading of that probe.
    buffer.observe([reading(True)], now=T0)
    assert buffer.take() == {("e", M): [1, 1, 0]}
    buffer.observe([reading(True)], now=T0, probed=True)
    assert buffer.take() == {("s", M): [1, 1, 0]}
