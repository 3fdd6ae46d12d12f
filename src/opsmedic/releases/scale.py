"""The `scale` action's work: instances of a service started or stopped within its bounds, each
new one health-checked before the router sends it traffic, each old one drained before it stops."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsmedic.clock import Clock
from opsmedic.config.located import unknown_name
from opsmedic.config.scale import ScaleConfig
from opsmedic.config.services import ServiceConfig
from opsmedic.errors import ActionError, ScaleRefused
from opsmedic.model import Outcome
from opsmedic.releases.router import RouterError
from opsmedic.releases.routers import Routers
from opsmedic.releases.scale_instances import Launcher, drained
from opsmedic.releases.scale_state import FleetFile, Instance, ScaledFleet

LOCK_WAIT_S = 30.0  # the longest a scale waits for another scale of the same service


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
        async with file.locked(time.monotonic() + LOCK_WAIT_S):
            fleet = file.load() or await self._found(service, config)
            await self._tidy(launcher, fleet, file)
            serving = fleet.serving()
            target = to if to is not None else len(serving) + (by or 0)
            self._allowed(service, config, fleet, len(serving), target)
            if target == len(serving):
                return Outcome(
                    ok=True,
                    message=f"{service}: {target} instance(s) serve already",
                    details=_details(fleet),
                )
            if dry_run:
                return Outcome(
                    ok=True,
                    message=f"{service}: would scale from {len(serving)} to {target} instance(s)",
                    details=_details(fleet),
                )
            fleet.last_scaled_at = self.clock.now()
            if target > len(serving):
                free = [n for n in range(1, config.max + 1) if n not in fleet.instances]
                adding = free[: target - len(serving)]
                return await self._out(service, launcher, fleet, file, adding)
            return await self._in(service, launcher, fleet, file, serving[target:])

    def _config(self, service: str) -> ScaleConfig:
        found = self.services.get(service)
        if found is None:
            raise ScaleRefused(unknown_name("service", service, self.services))
        if found.scale is None:
            raise ScaleRefused(f"service {service} declares no scale: section")
        return found.scale

    def _allowed(
        self, service: str, config: ScaleConfig, fleet: ScaledFleet, now_serving: int, target: int
    ) -> None:
        """ScaleRefused for a target out of bounds or a scale inside the cooldown."""
        if target < config.min:
            raise ScaleRefused(
                f"{service}: scaling to {target} instance(s) is below min "
                f"{config.min} ({now_serving} serve)"
            )
        if target > config.max:
            raise ScaleRefused(
                f"{service}: scaling to {target} instance(s) is above max "
                f"{config.max} ({now_serving} serve)"
            )
        since = None if fleet.last_scaled_at is None else self.clock.now() - fleet.last_scaled_at
        if target != now_serving and since is not None and since < config.cooldown:
            left = config.cooldown - since
            raise ScaleRefused(
                f"{service}: scaled {since:.0f}s ago, inside its cooldown of "
                f"{config.cooldown:g}s ({left:.0f}s left)"
            )

    async def _found(self, service: str, config: ScaleConfig) -> ScaledFleet:
        """With no record yet, the instances are those the upstream routes to now."""
        router = self.routers.get(service, config.router)
        try:
            live = await router.weights(config.router.nginx.upstream)
        except RouterError as exc:
            raise ScaleRefused(f"{service}: no record of its instances, and {exc}") from None
        fleet = ScaledFleet()
        for n in range(1, config.max + 1):
            if live.get(config.address(n), 0) > 0:
                fleet.instances[n] = Instance(n, config.address(n), "serving")
        return fleet

    async def _tidy(self, launcher: Launcher, fleet: ScaledFleet, file: FleetFile) -> None:
        """Instances a scale left starting or draining (opsmedic stopped half-way) are stopped:
        the first never got traffic, the second is already out of the upstream."""
        for n, instance in list(fleet.instances.items()):
            if instance.state != "serving":
                await launcher.stop(instance)
                del fleet.instances[n]
                file.save(fleet)

    async def _out(
        self,
        service: str,
        launcher: Launcher,
        fleet: ScaledFleet,
        file: FleetFile,
        numbers: list[int],
    ) -> Outcome:
        """Start `numbers`, wait for each to be healthy, then route to them in one change."""
        started: list[Instance] = []
        for n in numbers:
            try:
                instance = await launcher.start(n)
            except ActionError as exc:
                return await self._undo(service, launcher, fleet, file, started, str(exc))
            fleet.instances[n] = instance
            started.append(instance)
            file.save(fleet)
        problems = await asyncio.gather(*(launcher.healthy(i) for i in started))
        bad = [f"instance {i.n}: {p}" for i, p in zip(started, problems, strict=True) if p]
        if bad:
            fleet.unhealthy += len(bad)
            return await self._undo(service, launcher, fleet, file, started, "; ".join(bad))
        for instance in started:
            instance.state = "serving"
        problem = await self._route(service, launcher.config, fleet)
        if problem is not None:
            return await self._undo(service, launcher, fleet, file, started, problem)
        file.save(fleet)
        added = ", ".join(i.address for i in started)
        said = f"{service}: {added} healthy and routed; {len(fleet.serving())} instance(s) serve"
        return Outcome(ok=True, message=said, details=_details(fleet))

    async def _undo(
        self,
        service: str,
        launcher: Launcher,
        fleet: ScaledFleet,
        file: FleetFile,
        started: list[Instance],
        problem: str,
    ) -> Outcome:
        """New instances that must not serve: stopped and forgotten; the outcome fails."""
        for instance in started:
            await launcher.stop(instance)
            del fleet.instances[instance.n]
        file.save(fleet)
        return Outcome(
            ok=False,
            message=f"{service}: scale-out failed: {problem}; stopped "
            f"{len(started)} new instance(s), {len(fleet.serving())} serve",
            details=_details(fleet),
        )

    async def _in(
        self,
        service: str,
        launcher: Launcher,
        fleet: ScaledFleet,
        file: FleetFile,
        numbers: list[int],
    ) -> Outcome:
        """Take `numbers` out of the upstream, wait for their connections to end, stop them."""
        config = launcher.config
        leaving = [fleet.instances[n] for n in numbers]
        if config.command is not None and any(i.pid is None for i in leaving):
            unknown = ", ".join(i.address for i in leaving if i.pid is None)
            why = f"{unknown} not started by opsmedic: no process recorded to stop; nothing changed"
            return Outcome(ok=False, message=f"{service}: {why}", details=_details(fleet))
        for instance in leaving:
            instance.state = "draining"
        problem = await self._route(service, config, fleet)
        if problem is not None:
            for instance in leaving:
                instance.state = "serving"
            return Outcome(
                ok=False,
                message=f"{service}: scale-in failed: {problem}; nothing stopped",
                details=_details(fleet),
            )
        file.save(fleet)
        notes = [n for n in await asyncio.gather(*(drained(config, i) for i in leaving)) if n]
        for instance in leaving:
            await launcher.stop(instance)
            del fleet.instances[instance.n]
        file.save(fleet)
        gone = ", ".join(i.address for i in leaving)
        extra = f" ({'; '.join(notes)})" if notes else ""
        said = f"{service}: {gone} drained and stopped{extra}; {len(fleet.serving())} serve"
        return Outcome(ok=True, message=said, details=_details(fleet))

    async def _route(self, service: str, config: ScaleConfig, fleet: ScaledFleet) -> str | None:
        """The upstream: every serving instance at weight 1, the others not written; backends
        that are no instance of ours keep their weights. None, or the router's error."""
        upstream = config.router.nginx.upstream
        router = self.routers.get(service, config.router)
        ours = {config.address(n) for n in range(1, config.max + 1)}
        try:
            live = await router.weights(upstream)
            weights = {a: w for a, w in live.items() if a not in ours}
            weights |= {fleet.instances[n].address: 1 for n in fleet.serving()}
            await router.set_weights(upstream, weights)
        except RouterError as exc:
            return str(exc)
        return None


def _details(fleet: ScaledFleet) -> dict[str, Any]:
    return {
        "instances": [fleet.instances[n].address for n in fleet.serving()],
        "unhealthy": fleet.unhealthy,
    }
