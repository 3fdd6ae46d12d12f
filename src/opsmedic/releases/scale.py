"""The `scale` action's work: instances of a service started or stopped within its bounds, each
new one health-checked before the router sends it traffic, each old one drained before it stops."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from opsmedic.clock import Clock
from opsmedic.config.located import unknown_name
from opsmedic.config.scale import ScaleConfig
from opsmedic.config.services import ServiceConfig
from opsmedic.errors import ActionError, ScaleRefused
from opsmedic.model import Outcome
from opsmedic.releases.router import Router, RouterError
from opsmedic.releases.routers import Routers
from opsmedic.releases.scale_instances import Launcher, drained
from opsmedic.releases.scale_state import FleetFile, Instance, ScaledFleet

LOCK_WAIT_S = 30.0  # the longest a scale waits for another scale of the same service
# Beyond stop_timeout, what a cancelled scale-out may take to stop its new instances.
CANCEL_GRACE_S = 2.0


@dataclass(slots=True)
class Scaler:
    """Scales the services that declare `scale:`; one per process (ScaleControl)."""

    services: dict[str, ServiceConfig]
    state_dir: Path
    clock: Clock
    routers: Routers = field(default_factory=Routers)
    launchers: dict[str, Launcher] = field(default_factory=dict)

    async def scale(
        self, service: str, *, by: int | None = None, to: int | None = None, dry_run: bool = False
    ) -> Outcome:
        config = self._config(service)
        file = FleetFile(self.state_dir, service)
        launcher = self.launchers.setdefault(service, Launcher(config, service, file.logs))
        router = self.routers.get(service, config.router)
        async with file.locked(time.monotonic() + LOCK_WAIT_S):
            job = _Job(launcher, router, file, file.load() or await _found(launcher, router))
            await job.tidy()
            serving = job.fleet.serving()
            target = to if to is not None else len(serving) + (by or 0)
            self._allowed(job, len(serving), target)
            if target == len(serving):
                return job.said(True, f"{target} instance(s) serve already")
            if dry_run:
                return job.said(True, f"would scale from {len(serving)} to {target} instance(s)")
            job.fleet.last_scaled_at = self.clock.now()
            if target > len(serving):
                free = [n for n in range(1, config.max + 1) if n not in job.fleet.instances]
                return await job.out(free[: target - len(serving)])
            return await job.back_in(serving[target:])

    def _config(self, service: str) -> ScaleConfig:
        found = self.services.get(service)
        if found is None:
            raise ScaleRefused(unknown_name("service", service, self.services))
        if found.scale is None:
            raise ScaleRefused(f"service {service} declares no scale: section")
        return found.scale

    def _allowed(self, job: _Job, now_serving: int, target: int) -> None:
        """ScaleRefused for a target out of bounds or a scale inside the cooldown."""
        config, service, last = job.config, job.launcher.service, job.fleet.last_scaled_at
        if target < config.min:
            raise ScaleRefused(f"{service}: scaling to {target} instance(s) is below min "
                               f"{config.min} ({now_serving} serve)")  # fmt: skip
        if target > config.max:
            raise ScaleRefused(f"{service}: scaling to {target} instance(s) is above max "
                               f"{config.max} ({now_serving} serve)")  # fmt: skip
        since = None if last is None else self.clock.now() - last
        if target != now_serving and since is not None and since < config.cooldown:
            left = config.cooldown - since
            raise ScaleRefused(f"{service}: scaled {since:.0f}s ago, inside its cooldown of "
                               f"{config.cooldown:g}s ({left:.0f}s left)")  # fmt: skip


async def _found(launcher: Launcher, router: Router) -> ScaledFleet:
    """With no record yet, the instances are those the upstream routes to now."""
    config = launcher.config
    try:
        live = await router.weights(config.router.nginx.upstream)
    except RouterError as exc:
        raise ScaleRefused(f"{launcher.service}: no record of its instances, and {exc}") from None
    fleet = ScaledFleet()
    for n in range(1, config.max + 1):
        if live.get(config.address(n), 0) > 0:
            fleet.instances[n] = Instance(n, config.address(n), "serving")
    return fleet


@dataclass(slots=True)
class _Job:
    """One scale of one service, under its lock: the record is saved at each step, so a
    restarted opsmedic finds what was half-done (tidy)."""

    launcher: Launcher
    router: Router
    file: FleetFile
    fleet: ScaledFleet

    @property
    def config(self) -> ScaleConfig:
        return self.launcher.config

    def said(self, ok: bool, message: str) -> Outcome:
        serving = [self.fleet.instances[n].address for n in self.fleet.serving()]
        details = {"instances": serving, "unhealthy": self.fleet.unhealthy}
        return Outcome(ok=ok, message=f"{self.launcher.service}: {message}", details=details)

    async def tidy(self) -> None:
        """Instances a scale left starting or draining (opsmedic stopped half-way) are stopped:
        the first never got traffic, the second is already out of the upstream."""
        for n, instance in list(self.fleet.instances.items()):
            if instance.state != "serving":
                await self.launcher.stop(instance)
                del self.fleet.instances[n]
                self.file.save(self.fleet)

    async def out(self, numbers: list[int]) -> Outcome:
        """Start `numbers`, wait for each to be healthy, then route to them in one change.

        Cancelled (the step's timeout) before routing, the new instances are stopped and
        counted unhealthy, within a bound, before the cancellation goes on: never left
        running and recorded `starting` until the next scale tidies them.
        """
        started: list[Instance] = []
        try:
            return await self._out(numbers, started)
        except asyncio.CancelledError:
            if any(i.state == "starting" for i in started):
                undo = asyncio.ensure_future(self.undo(started, "cancelled", unhealthy=True))
                bound = self.config.stop_timeout + CANCEL_GRACE_S
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(undo), bound)
            raise

    async def _out(self, numbers: list[int], started: list[Instance]) -> Outcome:
        for n in numbers:
            try:
                instance = await self.launcher.start(n)
            except ActionError as exc:
                return await self.undo(started, str(exc))
            self.fleet.instances[n] = instance
            started.append(instance)
            self.file.save(self.fleet)
        problems = await asyncio.gather(*(self.launcher.healthy(i) for i in started))
        bad = [f"instance {i.n}: {p}" for i, p in zip(started, problems, strict=True) if p]
        bad += [f"instance {i.n}: its process {i.pid} exited after its health check"
                for i, p in zip(started, problems, strict=True)
                if not p and not self.launcher.alive(i)]  # fmt: skip
        if bad:
            self.fleet.unhealthy += len(bad)
            return await self.undo(started, "; ".join(bad))
        for instance in started:
            instance.state = "serving"
        problem = await self.route()
        if problem is not None:
            return await self.undo(started, problem)
        self.file.save(self.fleet)
        added = ", ".join(i.address for i in started)
        return self.said(True, f"{added} healthy and routed; {len(self.fleet.serving())} "
                         "instance(s) serve")  # fmt: skip

    async def undo(
        self, started: list[Instance], problem: str, *, unhealthy: bool = False
    ) -> Outcome:
        """New instances that must not serve: stopped and forgotten (counted `unhealthy`
        too when asked); the outcome fails."""
        if unhealthy:
            self.fleet.unhealthy += len(started)
        for instance in started:
            await self.launcher.stop(instance)
            del self.fleet.instances[instance.n]
        self.file.save(self.fleet)
        return self.said(False, f"scale-out failed: {problem}; stopped {len(started)} new "
                         f"instance(s), {len(self.fleet.serving())} serve")  # fmt: skip

    async def back_in(self, numbers: list[int]) -> Outcome:
        """Take `numbers` out of the upstream, wait for their connections to end, stop them."""
        leaving = [self.fleet.instances[n] for n in numbers]
        if self.config.command is not None and any(i.pid is None for i in leaving):
            unknown = ", ".join(i.address for i in leaving if i.pid is None)
            return self.said(False, f"{unknown} not started by opsmedic: no process recorded "
                             "to stop; nothing changed")  # fmt: skip
        for instance in leaving:
            instance.state = "draining"
        problem = await self.route()
        if problem is not None:
            for instance in leaving:
                instance.state = "serving"
            return self.said(False, f"scale-in failed: {problem}; nothing stopped")
        self.file.save(self.fleet)
        waits = [drained(self.config, i) for i in leaving]
        notes = [note for note in await asyncio.gather(*waits) if note]
        for instance in leaving:
            await self.launcher.stop(instance)
            del self.fleet.instances[instance.n]
        self.file.save(self.fleet)
        gone = ", ".join(i.address for i in leaving)
        extra = f" ({'; '.join(notes)})" if notes else ""
        return self.said(True, f"{gone} drained and stopped{extra}; "
                         f"{len(self.fleet.serving())} serve")  # fmt: skip

    async def route(self) -> str | None:
        """The upstream: every serving instance at weight 1, the others not written; backends
        that are no instance of ours keep their weights. None, or the router's error."""
        config = self.config
        upstream = config.router.nginx.upstream
        ours = {config.address(n) for n in range(1, config.max + 1)}
        try:
            live = await self.router.weights(upstream)
            weights = {a: w for a, w in live.items() if a not in ours}
            weights |= {self.fleet.instances[n].address: 1 for n in self.fleet.serving()}
            await self.router.set_weights(upstream, weights)
        except RouterError as exc:
            return str(exc)
        return None
