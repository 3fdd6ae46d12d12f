"""The process probe: the CPU window, thresholds, filters, bounds, resolution, kept state."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import structlog
import yaml

from opsmedic.clock import ManualClock, SystemClock
from opsmedic.config.loader import load_config
from opsmedic.config.schema import Config, ProbeConfig
from opsmedic.model import Event, Observation
from opsmedic.plugins import ProbeContext, ProbeSpec, Registry
from opsmedic.probes import BUILTIN_PROBES, ProbeRunner, validate_probe_params
from opsmedic.probes.process import PROBE as PROCESS_PROBE
from opsmedic.probes.process import Params as ProcessParams
from opsmedic.probes.process import check as check_processes
from opsmedic.probes.process import cpu_rate
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from processes import all_gone

# The shell waits for its sleep (the trailing `:` keeps it from exec'ing sleep), so the
# process keeps our program's name.
IDLE = "sleep 600; :"
# Spins until the file named by $1 exists, then idles: a hog that can be told to calm down.
SPIN_THEN_IDLE = f'while [ ! -e "$1" ]; do :; done; {IDLE}'

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def program(tmp_path: Path) -> str:
    """A copy of /bin/sh under a name no other process on this host has."""
    name = f"om-{uuid.uuid4().hex[:8]}"  # within the kernel's 15-character process names
    shutil.copy("/bin/sh", tmp_path / name)
    return name


@pytest.fixture
def spawn(tmp_path: Path, program: str) -> Iterator[Spawn]:
    """spawn(script, *args) runs `script` in that shell, in a session of its own; every
    process of those sessions is killed afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(script: str, *args: str) -> subprocess.Popen[bytes]:
        argv = [str(tmp_path / program), "-c", script, program, *args]
        proc = subprocess.Popen(argv, start_new_session=True)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def context() -> ProbeContext:
    return ProbeContext(SystemClock(), structlog.get_logger())


async def discard(events: list[Event]) -> None:
    return None


async def check(ctx: ProbeContext, **params: Any) -> list[Observation]:
    return await check_processes(ProcessParams.model_validate(params), ctx)


# --- the window ------------------------------------------------------------------------------


def test_cpu_rate_is_percent_of_one_core_since_the_window_start() -> None:
    samples: deque[tuple[float, float]] = deque([(0.0, 0.0)])
    assert cpu_rate(samples, 10.0, 5.0, window=30.0) == (50.0, 10.0)
    assert cpu_rate(samples, 20.0, 25.0, window=30.0) == (125.0, 20.0)  # two busy threads
    # At 40 s the window starts at 10 s: the sample taken then is the baseline.
    assert cpu_rate(samples, 40.0, 26.0, window=30.0) == (70.0, 30.0)
    assert [t for t, _ in samples] == [10.0, 20.0, 40.0]


def test_cpu_rate_keeps_the_latest_sample_before_the_window_as_baseline() -> None:
    samples: deque[tuple[float, float]] = deque([(0.0, 0.0), (5.0, 1.0)])
    rate, span = cpu_rate(samples, 100.0, 11.0, window=30.0)
    assert (rate, span) == (pytest.approx(100 * 10 / 95), 95.0)  # checks far apart: all of it
    assert len(samples) == 2


def test_cpu_rate_without_elapsed_time_has_no_reading() -> None:
    assert cpu_rate(deque([(3.0, 1.0)]), 3.0, 1.0, window=30.0) == (None, 0.0)


# --- params ----------------------------------------------------------------------------------


def test_defaults() -> None:
    p = ProcessParams()
    assert (p.max_cpu_percent, p.max_rss_bytes, p.window, p.max_observations) == (
        90.0, None, 30.0, 20,
    )  # fmt: skip
    assert ProcessParams.model_validate({"max_rss_bytes": "2GiB"}).max_rss_bytes == 2 * 1024**3
    assert PROCESS_PROBE.default_interval == 10.0


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({"max_cpu_percent": None}, "", "give max_cpu_percent, max_rss_bytes or both"),
        ({"max_cpu_percent": 0}, "max_cpu_percent", "greater than 0"),
        ({"max_rss_bytes": "huge"}, "max_rss_bytes", "byte string"),
        ({"window": "0s"}, "window", "greater than 0"),
        ({"window": "a while"}, "window", "not a duration"),
        ({"max_observations": 0}, "max_observations", "greater than or equal to 1"),
        ({"min_uid": -1}, "min_uid", "greater than or equal to 0"),
        ({"users": "alice"}, "users", "valid list"),
        ({"max_cpu": 50}, "max_cpu", "did you mean max_cpu_percent?"),
    ],
)
def test_bad_params_are_refused_with_the_field_named(
    params: dict[str, Any], field: str, fragment: str
) -> None:
    found = dict(validate_probe_params(PROCESS_PROBE, params))
    assert field in found, found
    assert fragment in found[field]


# --- real processes --------------------------------------------------------------------------


async def test_a_busy_process_fires_with_its_identity_at_the_first_check(
    spawn: Spawn, program: str, tmp_path: Path
) -> None:
    proc = spawn(SPIN_THEN_IDLE, str(tmp_path / "calm"))
    # The first check samples twice, so even this process, seen for the first time, has a
    # real rate. 5 % is far below a spinning loop even on a loaded machine.
    [obs] = await check(context(), names=[program], max_cpu_percent=5)
    assert not obs.ok
    assert obs.resource == f"{program}[{proc.pid}]"
    ps = psutil.Process(proc.pid)
    assert obs.labels == {
        "pid": str(proc.pid),
        "start_time": repr(ps.create_time()),
        "user": ps.username(),
        "uid": str(os.getuid()),
        "name": program,
        "over": "cpu",
    }
    assert float(obs.labels["start_time"]) == ps.create_time()  # exact, for kill_process
    d = obs.details
    assert d["cmdline"] == ps.cmdline()
    assert d["cpu_percent"] == obs.value > 5
    assert d["cpu_percent_total"] == pytest.approx(d["cpu_percent"] / psutil.cpu_count(), abs=0.01)
    assert d["rss_bytes"] > 0 and d["runtime_s"] >= 0 and d["window_s"] > 0
    assert "% CPU over" in obs.message and "> 5%" in obs.message


async def test_a_process_that_calms_down_resolves_once(
    spawn: Spawn, program: str, tmp_path: Path
) -> None:
    calm = tmp_path / "calm"
    proc = spawn(SPIN_THEN_IDLE, str(calm))
    ctx = context()
    params = {"names": [program], "max_cpu_percent": 5, "window": "100ms"}
    [fired] = await check(ctx, **params)
    assert not fired.ok
    calm.touch()
    deadline = time.monotonic() + 20  # a bound on a loaded machine, not a timing
    while True:
        found = await check(ctx, **params)
        if found and found[0].ok:
            break
        assert time.monotonic() < deadline, "the calmed process never read under 5%"
    [resolved] = found
    assert resolved.resource == fired.resource
    assert resolved.labels == {k: v for k, v in fired.labels.items() if k != "over"}
    assert resolved.details["exited"] is False
    assert "back under its thresholds" in resolved.message
    assert await check(ctx, **params) == []  # quiet processes make no events
    assert proc.poll() is None


async def test_firing_is_bounded_busiest_first_and_exits_resolve(
    spawn: Spawn, program: str
) -> None:
    procs = [spawn(IDLE) for _ in range(3)]
    # Every process has some RSS: a 1-byte bound makes all three over it.
    ctx = context()
    params = {"names": [program], "max_cpu_percent": None, "max_rss_bytes": 1,
              "max_observations": 2}  # fmt: skip
    firing = await check(ctx, **params)
    assert len(firing) == 2
    assert all(not o.ok and o.labels["over"] == "rss" for o in firing)
    assert firing[0].details["rss_bytes"] >= firing[1].details["rss_bytes"]
    for proc in procs:
        proc.kill()
        proc.wait()
    resolved = await check(ctx, **params)
    # Only the two that were reported resolve; the third never fired, so it never resolves.
    assert sorted(o.resource for o in resolved) == sorted(o.resource for o in firing)
    assert all(o.ok and o.value is None and o.message.endswith("exited") for o in resolved)
    assert await check(ctx, **params) == []


async def test_a_zombie_counts_as_exited(spawn: Spawn, program: str) -> None:
    proc = spawn(IDLE)
    ctx = context()
    params = {"names": [program], "max_rss_bytes": 1}
    [fired] = await check(ctx, **params)
    proc.kill()
    assert all_gone([proc.pid])  # killed, not yet reaped by us: a zombie
    assert psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE
    [resolved] = await check(ctx, **params)
    assert (resolved.ok, resolved.resource) == (True, fired.resource)


@pytest.mark.parametrize(
    "filters",
    [
        lambda program: {"users": ["no-such-user-here"]},
        lambda program: {"min_uid": 2**31},
        lambda program: {"exclude_names": [program]},
    ],
    ids=["users", "min_uid", "exclude_names"],
)
async def test_filters_leave_processes_out(
    spawn: Spawn, program: str, filters: Callable[[str], dict[str, Any]]
) -> None:
    spawn(IDLE)
    assert await check(context(), names=[program], max_rss_bytes=1, **filters(program)) == []


async def test_filters_let_matching_processes_in(spawn: Spawn, program: str) -> None:
    spawn(IDLE)
    me = psutil.Process().username()
    found = await check(context(), names=[program], users=[me], min_uid=os.getuid(),
                        exclude_names=["other"], max_rss_bytes=1)  # fmt: skip
    assert len(found) == 1


# --- state kept by the runner ----------------------------------------------------------------


async def test_the_runner_keeps_each_probes_state_between_checks() -> None:
    seen: list[tuple[str, int]] = []

    async def counting(params: ProcessParams, ctx: ProbeContext) -> list[Observation]:
        ctx.state["n"] = ctx.state.get("n", 0) + 1
        seen.append((ctx.log._context["probe"], ctx.state["n"]))
        return []

    spec = ProbeSpec(name="counting", params=ProcessParams, check=counting)
    r = ProbeRunner(
        [ProbeConfig(name=n, type="counting") for n in ("a", "b")],
        Registry(probes={"counting": spec}),
        Config().base_dir,
        ManualClock(),
        discard,
        structlog.get_logger(),
        settings={},
    )
    await r.run_once()
    await r.run_once()
    assert sorted(seen) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]


async def test_process_readings_become_events_through_the_runner(
    spawn: Spawn, program: str
) -> None:
    proc = spawn(IDLE)

    cfg = ProbeConfig.model_validate(
        {"name": "hogs", "type": "process", "params": {"names": [program], "max_rss_bytes": 1}}
    )
    r = ProbeRunner([cfg], Registry(probes={s.name: s for s in BUILTIN_PROBES}), Config().base_dir,
                    SystemClock(), discard, structlog.get_logger(), settings={})  # fmt: skip
    assert r.intervals == {"hogs": 10.0}
    [event] = await r.run_once()
    assert (event.source, event.kind, event.resource, event.status) == (
        "process", "hogs", f"{program}[{proc.pid}]", "firing",
    )  # fmt: skip
    assert event.labels["pid"] == str(proc.pid)
    proc.kill()
    proc.wait()
    [resolved] = await r.run_once()
    assert resolved.status == "resolved"
    assert resolved.fingerprint == event.fingerprint  # the pair resolves the incident


# --- the documentation -----------------------------------------------------------------------

DOCS = Path(__file__).parents[3] / "docs"


def documented_examples() -> list[Any]:
    """Every YAML block of docs/processes.md and of the host probes' sections (disk to the end)."""
    probes = (DOCS / "probes.md").read_text()
    host_probes = probes[probes.index("## `disk`") : probes.index("## Writing a probe plugin")]
    text = host_probes + (DOCS / "processes.md").read_text()
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)]


def test_the_documented_examples_load(tmp_path: Path) -> None:
    registry = build_registry(load_entry_points=False)
    kinds = []
    for i, example in enumerate(documented_examples()):
        if isinstance(example, list):  # a rule file
            path = tmp_path / f"rules-{i}.yaml"
            path.write_text(yaml.safe_dump(example))
            kinds.append(("rules", len(load_rules(path, registry))))
            continue
        path = tmp_path / f"config-{i}.yaml"
        path.write_text(yaml.safe_dump(example))
        config, _ = load_config(path, registry.settings(), environ={})
        runner = ProbeRunner(config.probes, registry, config.base_dir, ManualClock(),
                             discard, structlog.get_logger(), settings={})  # fmt: skip
        kinds.append(("config", len(runner.names)))
    assert kinds == [("config", 1), ("config", 1), ("config", 1), ("config", 1), ("rules", 2),
                     ("config", 1), ("config", 1), ("rules", 1), ("rules", 1), ("config", 0)]  # fmt: skip
