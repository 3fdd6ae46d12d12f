"""The host probe: its figures, thresholds, fall/rise, PSI missing, the culprits, bad params."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psutil
import pytest
import structlog
from pydantic import ValidationError
from structlog.testing import capture_logs

from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config, ProbeConfig
from opsmedic.model import Event, Observation
from opsmedic.plugins import ProbeContext, Registry
from opsmedic.probes import BUILTIN_PROBES, ProbeRunner, pressure, validate_probe_params
from opsmedic.probes.host import PROBE, Params, check, cpu_figures

PiB = 2**50
# Thresholds no host meets and thresholds every host meets, for memory alone.
STARVED = {"max_cpu_percent": None, "min_available_percent": None, "min_available_bytes": PiB}
CALM = {"max_cpu_percent": None, "min_available_percent": None, "min_available_bytes": 1}


def context() -> ProbeContext:
    return ProbeContext(SystemClock(), structlog.get_logger())


async def observe(ctx: ProbeContext, **params: Any) -> dict[str, Observation]:
    return {o.resource: o for o in await check(Params.model_validate(params), ctx)}


async def test_defaults_watch_cpu_and_memory_with_every_figure_in_the_details() -> None:
    found = await observe(context())
    assert set(found) == {"cpu", "memory"}  # io only with an io threshold
    memory = found["memory"]
    vm = psutil.virtual_memory()
    assert memory.details["memory"]["total_bytes"] == vm.total
    assert 0 < memory.details["memory"]["available_bytes"] <= vm.total
    assert memory.value == memory.details["memory"]["used_percent"]
    cpu = found["cpu"].details["cpu"]
    assert 0 <= cpu["percent"] <= 100 and cpu["cores"] == psutil.cpu_count()
    assert cpu["load_per_core"] == round(cpu["load1"] / cpu["cores"], 3)
    # Both events carry every figure: a human reading either sees the whole host.
    assert found["cpu"].details["memory"].keys() == memory.details["memory"].keys()
    assert found["cpu"].details["psi"] == memory.details["psi"] or pressure.PSI_DIR.is_dir()
    assert len(memory.details["top_rss"]) == 5 and len(memory.details["top_cpu"]) == 5


async def test_the_threshold_that_fired_is_named_with_its_figure() -> None:
    memory = (await observe(context(), **STARVED))["memory"]
    assert not memory.ok
    assert memory.labels == {"over": "min_available_bytes"}
    [over] = memory.details["over"]
    assert over["threshold"] == "min_available_bytes" and over["limit"] == PiB
    assert over["value"] == memory.details["memory"]["available_bytes"]
    assert re.fullmatch(r"available_bytes \d+\.\d [KMGT]iB < 1\.0 PiB", memory.message)


async def test_fall_readings_over_before_firing_and_rise_under_before_resolving() -> None:
    ctx = context()
    steps = [
        (STARVED, True, "over (1/2 toward firing): "),
        (STARVED, False, "available_bytes "),
        (CALM, False, "back under (1/3 toward resolved): "),
        (STARVED, False, "available_bytes "),  # the count starts over
        (CALM, False, "back under (1/3 toward resolved): "),
        (CALM, False, "back under (2/3 toward resolved): "),
        (CALM, True, ""),
    ]
    for thresholds, ok, start in steps:
        memory = (await observe(ctx, fall=2, rise=3, **thresholds))["memory"]
        assert memory.ok is ok, memory.message
        assert memory.message.startswith(start), memory.message
    assert memory.labels == {"over": ""} and memory.details["over"] == []


async def test_psi_thresholds_fire_on_this_hosts_pressure() -> None:
    if not pressure.PSI_DIR.is_dir():
        pytest.skip("this kernel has no /proc/pressure")
    # Any share of time stalled is ≥ 0; "> 0" may not hold on an idle host, so compare ≥.
    found = await observe(context(), max_psi_io_some_avg60=100, max_psi_memory_full_avg10=100)
    assert found["io"].ok and found["memory"].ok
    assert found["io"].value == found["io"].details["psi"]["io"]["some"]["avg10"]
    assert set(found["io"].details["psi"]) == {"cpu", "memory", "io"}


async def test_a_kernel_without_psi_says_so_once_and_the_other_checks_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pressure, "PSI_DIR", tmp_path / "no-pressure")
    ctx = context()
    with capture_logs() as logs:
        for _ in range(3):
            found = await observe(ctx, max_psi_memory_some_avg10=5, **STARVED)
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["psi_unavailable"]
    memory = found["memory"]
    assert not memory.ok and memory.labels == {"over": "min_available_bytes"}
    assert memory.details["not_reported"] == ["max_psi_memory_some_avg10"]
    assert memory.message.endswith(" (not reported here: max_psi_memory_some_avg10)")
    assert memory.details["psi"] == {}
    assert "no pressure stall information" in memory.details["psi_unavailable"]["memory"]


async def test_the_culprits_are_bounded_filtered_or_left_out() -> None:
    two = (await observe(context(), top_processes=2))["cpu"].details
    assert len(two["top_cpu"]) == len(two["top_rss"]) == 2
    assert two["top_rss"][0]["rss_bytes"] >= two["top_rss"][1]["rss_bytes"]
    culprit = two["top_rss"][0]
    assert psutil.Process(culprit["pid"]).create_time() == float(culprit["start_time"])
    assert set(culprit) == {"pid", "start_time", "name", "uid", "cpu_percent", "rss_bytes",
                            "cmdline"}  # fmt: skip
    nobody = (await observe(context(), culprits={"users": ["no-such-user-here"]}))["cpu"]
    assert nobody.details["top_cpu"] == nobody.details["top_rss"] == []
    none = (await observe(context(), top_processes=0))["cpu"]
    assert none.details["top_cpu"] == none.details["top_rss"] == []


def test_cpu_is_busy_time_over_all_time_with_guest_counted_once() -> None:
    times = psutil._pslinux.scputimes  # the tuple psutil.cpu_times() returns on Linux
    zero = times(*[0.0] * len(times._fields))
    # 30 s user (of which 10 s guest), 10 s system, 50 s idle, 10 s iowait: 40 % busy.
    after = zero._replace(user=30.0, guest=10.0, system=10.0, idle=50.0, iowait=10.0)
    cpu = cpu_figures(zero, after, cores=2)
    assert (cpu["percent"], cpu["iowait_percent"], cpu["steal_percent"]) == (40.0, 10.0, 0.0)
    # No tick in between: nothing measured, and a max_cpu_percent has no figure to compare.
    still = cpu_figures(after, after, cores=2)
    assert (still["percent"], still["iowait_percent"], still["steal_percent"]) == (None,) * 3


async def test_through_the_runner_each_resource_is_its_own_event() -> None:
    events: list[Event] = []
    cfg = ProbeConfig.model_validate({"name": "box", "type": "host", "params": STARVED})
    runner = ProbeRunner([cfg], Registry(probes={s.name: s for s in BUILTIN_PROBES}),
                         Config().base_dir, SystemClock(), _keep(events), structlog.get_logger(),
                         settings={})  # fmt: skip
    [memory] = await runner.run_once()
    assert (memory.source, memory.kind, memory.resource) == ("host", "box", "memory")
    assert memory.status == "firing" and memory.labels["over"] == "min_available_bytes"
    assert runner.intervals == {"box": 10.0}
    assert PROBE.name == "host"


def _keep(events: list[Event]) -> Any:
    async def emit(batch: list[Event]) -> None:
        events.extend(batch)

    return emit


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({"max_cpu_percent": None, "min_available_percent": None}, "",
         "give at least one threshold: max_cpu_percent, max_load_per_core"),
        ({"max_cpu_percent": 0}, "max_cpu_percent", "greater than 0"),
        ({"max_cpu_percent": 101}, "max_cpu_percent", "less than or equal to 100"),
        ({"min_available_percent": 100}, "min_available_percent", "less than 100"),
        ({"min_available_bytes": "lots"}, "min_available_bytes", "could not parse"),
        ({"max_psi_memory_some_avg10": -1}, "max_psi_memory_some_avg10", "greater than or equal"),
        ({"max_psi_cpu_full_avg10": 1}, "max_psi_cpu_full_avg10", "unknown key"),
        ({"max_psi_memory_some_avg300": 1}, "max_psi_memory_some_avg300",
         "did you mean max_psi_memory_some_avg60, max_psi_memory_some_avg10"),
        ({"fall": 0}, "fall", "greater than or equal to 1"),
        ({"top_processes": 51}, "top_processes", "less than or equal to 50"),
        ({"culprits": {"user": ["x"]}}, "culprits.user",
         "unknown key (did you mean users?); known: users, names, exclude_names, min_uid"),
        ({"culprits": {"min_uid": -1}}, "culprits.min_uid", "greater than or equal to 0"),
    ],
)  # fmt: skip
def test_bad_params_name_the_field(params: dict[str, Any], field: str, fragment: str) -> None:
    problems = dict(validate_probe_params(PROBE, params))
    assert field in problems, problems
    assert fragment in problems[field], problems[field]


def test_params_refuse_a_wrong_type_at_construction() -> None:
    with pytest.raises(ValidationError):
        Params.model_validate({"max_load_per_core": "high"})
