"""The blue/green strategy: the new version starts on the idle slot and is verified there with no
traffic, then takes all of it in one router change; the old slot stays warm for the way back.

Which slot is live is read back from the router every time, and which version a slot runs is
asked of the slot itself: a record can be stale (another process, a hand-made change), the
router and the slot cannot."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from opsmedic.config.blue_green import BlueGreenConfig
from opsmedic.config.services import ServiceConfig
from opsmedic.model import Deployment, RunState
from opsmedic.releases.canary import Beat
from opsmedic.releases.changes import failing_body
from opsmedic.releases.measure import Sampler
from opsmedic.releases.ports import Progress, StepRunner
from opsmedic.releases.router import Router, RouterError
from opsmedic.releases.routers import Routers
from opsmedic.releases.slots import TakenOver, preview_checks, reported, version_url, warm
from opsmedic.releases.start_steps import StartSteps
from opsmedic.releases.verify import Result, verify

# The preview's checks tick every 0.05 s (bake 0); the heartbeat need not be written as often.
BEAT_S = 0.25


@dataclass(frozen=True, slots=True)
class Live:
    """The slots the router gives traffic to now, the others, and every weight it read."""

    live: list[str]
    idle: list[str]
    weights: dict[str, int]


@dataclass(slots=True)
class BlueGreens:
    """The blue/green strategy's slot starts and traffic moves, through each service's router."""

    start: StartSteps = field(default_factory=dict)
    routers: Routers = field(default_factory=Routers)

    def router(self, service: str, config: BlueGreenConfig) -> Router:
        return self.routers.get(service, config.router)

    async def live(self, service: str, config: BlueGreenConfig) -> Live:
        """Which slot is live, as the router reads it back; RouterError when it cannot."""
        weights = await self.router(service, config).weights(config.router.nginx.upstream)
        live = [name for name, address in config.slots.items() if weights.get(address, 0) > 0]
        return Live(live, [name for name in config.slots if name not in live], weights)

    async def preview(
        self, deployment: Deployment, service: ServiceConfig, runner: StepRunner,
        sample: Sampler, *, beat: Beat, say: Progress,
    ) -> Result:  # fmt: skip
        """Start the version on the idle slot, wait until it reports it, and run the service's
        http checks against that slot alone. Nothing is routed here; the result's `checks` is
        the deployment's `checks.blue_green`."""
        config, version = _settings(service), deployment.version
        record = _record(deployment, config)
        try:
            now = await self.live(deployment.service, config)
        except RouterError as exc:
            return Result(False, f"blue/green: cannot read which slot is live: {exc}", record)
        if not now.idle:
            return Result(False, f"blue/green: both slots get traffic ({_weights(config, now)}): "
                          f"no idle slot to start {version} on", record)  # fmt: skip
        slot = now.idle[0]
        record.update(live=now.live[0] if now.live else None, idle=slot)
        where = f"{slot} ({config.slots[slot]})"
        say(f"{deployment.service}: starting {version} on the idle slot {where}; "
            f"{record['live'] or 'no slot'} keeps all traffic")  # fmt: skip
        tick = _Every(BEAT_S, lambda: beat(record))
        try:
            problem = await self._start(deployment, service, slot, version,
                                        deployment.previous_version, runner, tick)  # fmt: skip
        except TakenOver:
            return Result(False, "taken over by another process", record, aborted=True)
        if problem is not None:
            return Result(False, f"blue/green: {problem}; no traffic moved", record)
        checks = preview_checks(service, deployment.service, deployment.env, config.slots[slot])
        if not checks:
            return Result(True, f"{where} reports {version}; no http check to preview", record)

        async def progress(tallies: dict[str, Any]) -> bool:
            record["preview"] = tallies
            return await tick()

        say(f"{deployment.service}: preview of {version} on {where}: {len(checks)} check(s)")
        result = await verify(checks, sample, bake=0.0, longest=service.verify_timeout,
                              beat=progress)  # fmt: skip
        record["preview"] = result.checks
        said = f"blue/green preview on {where}: {result.reason}"
        if not result.passed:
            said += "; no traffic moved"
        return Result(result.passed, said, record, result.aborted)

    async def route(
        self, deployment: Deployment, service: ServiceConfig, version: str, previous: str,
        runner: StepRunner, say: Progress,
    ) -> str | None:  # fmt: skip
        """All traffic to a slot that runs `version`, or to the idle one once `start` made it
        run `version`. Going back, the live slot is preferred (when it runs `version`, nothing
        moves), then the idle one (warm: one router change); going forward, the idle one:
        the slot the preview verified. None, or the problem; the router keeps
        what it had on a problem."""
        config = _settings(service)
        record = _record(deployment, config)
        try:
            now = await self.live(deployment.service, config)
        except RouterError as exc:
            return f"blue/green: cannot read which slot is live: {exc}"
        forward = version == deployment.version
        order = [*now.idle, *now.live] if forward else [*now.live, *now.idle]
        target = await self._running(deployment, service, order, version)
        if target is None:
            if not now.idle:
                return (f"blue/green: both slots get traffic ({_weights(config, now)}) and "
                        f"neither reports {version}")  # fmt: skip
            target = now.idle[0]
            problem = await self._start(deployment, service, target, version, previous, runner)
            if problem is not None:
                return f"blue/green: {problem}"
        other = next(name for name in config.slots if name != target)
        address = config.slots[target]
        if [a for a, weight in now.weights.items() if weight > 0] == [address]:
            say(f"{deployment.service}: {target} ({address}) runs {version} and has all traffic")
        else:
            began = time.monotonic()
            try:
                weights = {address: 1, config.slots[other]: 0}
                router = self.router(deployment.service, config)
                await router.set_weights(config.router.nginx.upstream, weights)
            except RouterError as exc:
                return str(exc)
            seconds = round(time.monotonic() - began, 3)
            record["moves"].append({"version": version, "from": now.live, "to": target,
                                    "router_s": seconds})  # fmt: skip
            say(f"{deployment.service}: all traffic to {target} ({address}, {version}) in "
                f"{seconds:g}s; {other} stays warm")  # fmt: skip
        record.update(live=target, idle=other)
        return None

    async def _running(
        self, deployment: Deployment, service: ServiceConfig, slots: list[str], version: str
    ) -> str | None:
        """The first of `slots` that reports `version` now; each answer is recorded under
        `versions`. Asked all at once: a hung bad version must not delay the way back."""
        config = _settings(service)
        versions = _record(deployment, config)["versions"]
        answers = await asyncio.gather(*(
            reported(version_url(service, deployment.env, config.slots[slot])) for slot in slots
        ))  # fmt: skip
        for slot, (found, _seen) in zip(slots, answers, strict=True):
            versions[slot] = found
        return next((slot for slot in slots if versions[slot] == version), None)

    async def _start(
        self, deployment: Deployment, service: ServiceConfig, slot: str, version: str,
        previous: str, runner: StepRunner, tick: _Every | None = None,
    ) -> str | None:  # fmt: skip
        """Run the start steps for `slot` and wait until it reports `version`: None, or the
        problem. TakenOver from `tick`."""
        config = _settings(service)
        backend, record = config.slots[slot], _record(deployment, config)
        variables = {"service": deployment.service, "version": version, "previous": previous,
                     "env": deployment.env, "slot": slot, "backend": backend}  # fmt: skip
        began = time.monotonic()
        run = await runner.run_steps(f"start:{deployment.service}",
                                     self.start[deployment.service], variables)  # fmt: skip
        entry: dict[str, Any] = {"slot": slot, "version": version, "run_id": run.id,
                                 "state": str(run.state), "message": run.message}  # fmt: skip
        record["starts"].append(entry)
        record["versions"][slot] = None  # whatever it ran, it is being replaced
        if run.state not in (RunState.SUCCEEDED, RunState.SKIPPED):
            return f"start of {version} on {slot} ({backend}) failed: {run.message}"
        url = version_url(service, deployment.env, backend)
        problem = await warm(url, version, config.warm_timeout, tick)
        entry["warm_s"] = round(time.monotonic() - began, 3)
        if problem is None:
            record["versions"][slot] = version
        return problem


def preview_body(record: dict[str, Any]) -> str:
    """The last bad answer of a failed preview check: the traceback for "what changed"."""
    return failing_body({"verify": record.get("preview", {})})


class _Every:
    """Calls `call` at most every `seconds`, and in between answers what it said last."""

    def __init__(self, seconds: float, call: Callable[[], Awaitable[bool]]) -> None:
        self.seconds, self.call = seconds, call
        self.last: float = -math.inf
        self.answer = True

    async def __call__(self) -> bool:
        if time.monotonic() - self.last >= self.seconds:
            self.last = time.monotonic()
            self.answer = await self.call()
        return self.answer


def _settings(service: ServiceConfig) -> BlueGreenConfig:
    assert service.blue_green is not None  # the controller calls this for blue_green only
    return service.blue_green


def _record(deployment: Deployment, config: BlueGreenConfig) -> dict[str, Any]:
    """The deployment's `checks.blue_green`: the slots, which is live and idle, the version
    each reported, every start and every move of the traffic."""
    record: dict[str, Any] = deployment.checks.setdefault("blue_green", {})
    for key, empty in (("slots", dict(config.slots)), ("live", None), ("idle", None),
                       ("versions", {}), ("starts", []), ("moves", [])):  # fmt: skip
        record.setdefault(key, empty)
    return record


def _weights(config: BlueGreenConfig, now: Live) -> str:
    return ", ".join(f"{name} {now.weights.get(a, 0)}" for name, a in config.slots.items())
