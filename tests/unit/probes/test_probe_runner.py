"""ProbeRunner: events from observations, crashes and timeouts, scheduling, config checks."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import structlog
from pydantic import BaseModel, ConfigDict
from structlog.testing import capture_logs

from opsmedic.clock import ManualClock
from opsmedic.config.schema import Config, ProbeConfig
from opsmedic.errors import ConfigError
from opsmedic.model import Event, Observation, Status
from opsmedic.plugins import ProbeContext, ProbeSpec, Registry
from opsmedic.probes import BUILTIN_PROBES, ProbeRunner, validate_probe_params


class TargetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str = "db-1"
    threshold: int = 0


Check = Callable[[TargetParams, ProbeContext], Any]


def spec(check: Check, name: str = "fake") -> ProbeSpec[TargetParams]:
    return ProbeSpec(name=name, params=TargetParams, check=check)


def scripted(*steps: Observation | BaseException) -> Check:
    """A check that plays `steps` in turn (raising exceptions) and then repeats the last one."""
    calls = 0

    async def check(params: TargetParams, ctx: ProbeContext) -> list[Observation]:
        nonlocal calls
        step = steps[min(calls, len(steps) - 1)]
        calls += 1
        if isinstance(step, BaseException):
            raise step
        return [step]

    return check


async def never_returns(params: TargetParams, ctx: ProbeContext) -> list[Observation]:
    await asyncio.Event().wait()
    return []


def runner(
    check: Check,
    emit: Callable[[list[Event]], Any] | None = None,
    clock: ManualClock | None = None,
    rng: random.Random | None = None,
    **probe: Any,
) -> ProbeRunner:
    cfg = ProbeConfig.model_validate({"name": "db", "type": "fake", **probe})

    async def discard(events: list[Event]) -> None:
        return None

    return ProbeRunner(
        [cfg],
        Registry(probes={"fake": spec(check)}),
        Config().base_dir,
        clock or ManualClock(),
        emit or discard,
        structlog.get_logger(),
        settings={},
        host="testhost",
        rng=rng,
    )


@contextlib.asynccontextmanager
async def running(r: ProbeRunner) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(r.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_observation_becomes_event() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    obs = Observation(
        ok=True, value=3, message="fine", labels={"role": "x", "env": "obs"}, details={"n": 1}
    )
    r = runner(scripted(obs), clock=clock, labels={"env": "prod"})
    [event] = await r.run_once()
    assert event.source == "fake"
    assert event.kind == "db"
    assert event.resource == "db-1"  # from params.target, since the observation named none
    assert event.host == "testhost"
    assert event.labels == {"role": "x", "env": "prod"}  # operator's labels win
    assert event.value == 3.0
    assert isinstance(event.value, float)
    assert event.status is Status.RESOLVED
    assert event.severity == "info"
    assert event.time == 1_800_000_000.0
    assert event.payload == {"message": "fine", "details": {"n": 1}}


async def test_failing_observation_is_firing_critical() -> None:
    obs = Observation(ok=False, value=97.5, message="too full", resource="/var")
    [event] = await runner(scripted(obs)).run_once()
    assert event.status is Status.FIRING
    assert event.severity == "critical"
    assert event.resource == "/var"
    assert event.value == 97.5


async def test_crash_yields_failing_event_with_same_identity() -> None:
    r = runner(scripted(RuntimeError("boom"), Observation(ok=True, value=1.0)))
    with capture_logs() as logs:
        [crashed] = await r.run_once()
    [healthy] = await r.run_once()
    assert crashed.status is Status.FIRING
    assert crashed.severity == "critical"
    assert crashed.value is None
    assert crashed.labels == {"probe_error": "crash"}
    assert crashed.payload["message"] == "probe crashed: RuntimeError: boom"
    assert crashed.resource == healthy.resource == "db-1"
    # The crash and the recovery are one observed thing, so rules can pair them up.
    assert crashed.fingerprint == healthy.fingerprint
    assert healthy.status is Status.RESOLVED
    [entry] = [e for e in logs if e["event"] == "probe_crashed"]
    assert entry["log_level"] == "error"
    assert entry["probe"] == "db"
    assert entry["error"] == "RuntimeError: boom"


async def test_timeout_yields_failing_event() -> None:
    [event] = await runner(never_returns, timeout=0.05).run_once()
    assert event.status is Status.FIRING
    assert event.value is None
    assert event.labels == {"probe_error": "timeout"}
    assert event.payload["message"] == "probe timed out after 0.05s"


async def test_timeout_error_raised_by_the_check_is_a_crash() -> None:
    [event] = await runner(scripted(TimeoutError("upstream slow"))).run_once()
    assert event.labels == {"probe_error": "crash"}
    assert event.payload["message"] == "probe crashed: TimeoutError: upstream slow"


async def test_check_returning_garbage_is_a_crash() -> None:
    async def garbage(params: TargetParams, ctx: ProbeContext) -> Any:
        return [object()]

    [event] = await runner(garbage).run_once()
    assert event.labels == {"probe_error": "crash"}


async def test_context_carries_timeout_and_params() -> None:
    seen: list[tuple[float, int]] = []

    async def check(params: TargetParams, ctx: ProbeContext) -> list[Observation]:
        seen.append((ctx.timeout, params.threshold))
        return []

    events = await runner(check, timeout="7s", params={"threshold": 5}).run_once()
    assert events == []
    assert seen == [(7.0, 5)]


async def test_first_check_runs_at_once_without_waiting_for_the_interval() -> None:
    emitted = asyncio.Event()

    async def emit(events: list[Event]) -> None:
        emitted.set()

    # With an hour's interval, any wait for the interval would miss this generous bound.
    r = runner(scripted(Observation(ok=True, value=1.0)), emit=emit, interval="1h", jitter=0)
    async with running(r):
        await asyncio.wait_for(emitted.wait(), timeout=5)


async def test_crashing_probe_keeps_being_scheduled() -> None:
    batches: list[list[Event]] = []
    third = asyncio.Event()

    async def emit(events: list[Event]) -> None:
        batches.append(events)
        if len(batches) == 3:
            third.set()

    check = scripted(RuntimeError("boom"), RuntimeError("boom"), Observation(ok=True, value=1.0))
    async with running(runner(check, emit=emit, interval=0.001, jitter=0)):
        await asyncio.wait_for(third.wait(), timeout=5)
    statuses = [[e.status for e in batch] for batch in batches[:3]]
    assert statuses == [[Status.FIRING], [Status.FIRING], [Status.RESOLVED]]


async def test_timed_out_probe_keeps_being_scheduled() -> None:
    second = asyncio.Event()
    batches: list[list[Event]] = []

    async def emit(events: list[Event]) -> None:
        batches.append(events)
        if len(batches) == 2:
            second.set()

    async with running(runner(never_returns, emit=emit, interval=0.001, timeout=0.01)):
        await asyncio.wait_for(second.wait(), timeout=5)
    assert all(b[0].labels["probe_error"] == "timeout" for b in batches)


async def test_failing_emit_does_not_stop_the_probe() -> None:
    calls = 0
    again = asyncio.Event()

    async def emit(events: list[Event]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("store down")
        again.set()

    r = runner(scripted(Observation(ok=True, value=1.0)), emit=emit, interval=0.001)
    with capture_logs() as logs:
        async with running(r):
            await asyncio.wait_for(again.wait(), timeout=5)
    assert any(e["event"] == "probe_emit_failed" for e in logs)


async def test_run_returns_when_no_probe_is_configured() -> None:
    async def emit(events: list[Event]) -> None:
        return None

    r = ProbeRunner(
        [], Registry(), Config().base_dir, ManualClock(), emit, structlog.get_logger(), settings={}
    )
    await asyncio.wait_for(r.run(), timeout=5)
    assert await r.run_once() == []


def problems_of(configs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    async def emit(events: list[Event]) -> None:
        return None

    registry = Registry(probes={"fake": spec(scripted(Observation(ok=True, value=None)))})
    with pytest.raises(ConfigError) as info:
        ProbeRunner(
            [ProbeConfig.model_validate(c) for c in configs],
            registry,
            Config().base_dir,
            ManualClock(),
            emit,
            structlog.get_logger(),
            settings={},
            config_path="ops.yaml",
        )
    assert all(p.file == "ops.yaml" for p in info.value.problems)
    return [(p.field, p.message) for p in info.value.problems]


def test_unknown_probe_type_names_close_matches() -> None:
    [(field, message)] = problems_of([{"name": "a", "type": "fak"}])
    assert field == "probes[0].type"
    assert "did you mean fake?" in message


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        [
            {"name": "a", "type": "fake", "params": {"threshold": "many"}},
            {"name": "a", "type": "fake", "params": {"targt": "x"}},
        ]
    )
    fields = [f for f, _ in problems]
    assert fields == [
        "probes[0].params.threshold",
        "probes[1].name",
        "probes[1].params.targt",
    ]
    assert "did you mean target?" in dict(problems)["probes[1].params.targt"]


def test_validate_probe_params_returns_paths_inside_params() -> None:
    s = spec(scripted(Observation(ok=True, value=None)))
    assert validate_probe_params(s, {"target": "x"}) == []
    [(loc, message)] = validate_probe_params(s, {"threshold": [1]})
    assert loc == "threshold"
    assert "integer" in message


def test_the_builtin_probes() -> None:
    names = [s.name for s in BUILTIN_PROBES]
    assert names[:5] == ["http", "command", "disk", "process", "dns"]
