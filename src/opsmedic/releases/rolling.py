"""The rolling strategy: the instances behind the router replaced in batches, each verified
before the next; a rollback drains every instance not on the good version and switches it back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opsmedic.config.rolling import RollingConfig
from opsmedic.config.services import VerifyCheck
from opsmedic.model import RunState
from opsmedic.releases.access_log import BackendStats, Traffic
from opsmedic.releases.canary import Beat
from opsmedic.releases.measure import Sampler
from opsmedic.releases.ports import Progress, StepRunner
from opsmedic.releases.rolling_batch import Batch, analyse, retarget
from opsmedic.releases.router import (
    ConfigRejected,
    ReloadFailed,
    Router,
    RouterError,
    WeightsRefused,
)
from opsmedic.releases.routers import Routers
from opsmedic.releases.switched import names_version, version_reported
from opsmedic.releases.verify import Result
from opsmedic.rules.model import Step
from opsmedic.transport.http import http_client

ASK_TIMEOUT_S = 2.0  # one instance's answer to "which version do you serve?" in a rollback
# Router failures after which nginx kept what it had: the drained set is still known.
_KEPT = (ConfigRejected, ReloadFailed, WeightsRefused)


@dataclass(slots=True)
class Fleet:
    """What this process knows of a service's instances: the version each was last switched
    to (None: a switch began and did not finish), and which are drained (None: not known)."""

    versions: dict[str, str | None] = field(default_factory=dict)
    drained: frozenset[str] | None = None


@dataclass(slots=True)
class Rollouts:
    """The rolling services' routers and instances, for the controller's whole life."""

    routers: Routers = field(default_factory=Routers)
    fleets: dict[str, Fleet] = field(default_factory=dict)

    def rollout(
        self, service: str, config: RollingConfig, *, runner: StepRunner, steps: Sequence[Step],
        variables: dict[str, str], switches: list[dict[str, Any]], switch_timeout: float,
        say: Progress,
    ) -> Rollout:  # fmt: skip
        """A pass over `service`'s instances; `variables` are the switch steps' (service, env,
        previous); each run of the steps is recorded in `switches`."""
        return Rollout(
            service, config, self.routers.get(service, config.router),
            self.fleets.setdefault(service, Fleet()), runner, steps, variables, switches,
            switch_timeout, say,
        )  # fmt: skip


@dataclass(slots=True)
class Rollout:
    """One deployment's (or rollback's) pass over the instances of a service."""

    service: str
    config: RollingConfig
    router: Router
    fleet: Fleet
    runner: StepRunner
    steps: Sequence[Step]
    variables: dict[str, str]
    switches: list[dict[str, Any]]
    switch_timeout: float
    say: Progress

    def batches(self) -> list[list[str]]:
        found, size = self.config.instances, self.config.batch
        return [found[i : i + size] for i in range(0, len(found), size)]

    async def run(
        self, version: str, checks: Sequence[VerifyCheck], sample: Sampler, *, hold: float,
        beat: Beat, lock: asyncio.Lock,
    ) -> Result:  # fmt: skip
        """Each batch in turn: replaced (under `lock`, the controller's switch lock), back in,
        analysed; stops at the first that fails. The result's `checks` is the record."""
        batches, record = self.batches(), dict[str, Any](batches=[])
        traffic, baseline = Traffic(self.config.router.nginx.access_log), BackendStats()

        async def tick() -> bool:
            record["instances"] = dict(self.fleet.versions)
            return await beat(record)

        try:
            for number, instances in enumerate(batches, 1):
                where = f"rolling batch {number} of {len(batches)} ({', '.join(instances)})"
                old = [i for later in batches[number:] for i in later]
                batch = Batch(instances, old, {"batch": number, "instances": instances}, baseline)
                record["batches"].append(batch.record)
                async with lock:
                    problem = await self.replace(instances, version)
                if problem is None and not await tick():
                    return Result(False, "taken over by another process", record, aborted=True)
                if problem is not None:
                    batch.record["verdict"] = "failed"
                    return Result(False, f"{where}: {problem}", record)
                against = f"{len(old)} old instance(s)" if old else "the batch before's old ones"
                self.say(f"{self.service}: {where} serves {version}; analysing it against "
                         f"{against}")  # fmt: skip
                mine = [c for c in (retarget(c, i) for i in instances for c in checks) if c]
                result = await analyse(batch, traffic, self.config.analysis, mine, sample,
                                       hold=hold, tick=tick)  # fmt: skip
                batch.record["verdict"] = "passed" if result.passed else "failed"
                if not result.passed:
                    reason = result.reason if result.aborted else f"{where}: {result.reason}"
                    return Result(False, reason, record, result.aborted)
                baseline = batch.baseline
            record["instances"] = dict(self.fleet.versions)
            return Result(True, f"rolling: {len(batches)} batch(es) passed", record)
        finally:
            traffic.follower.close()

    async def restore(self, version: str) -> str | None:
        """Every instance back to `version`, without analysis (a rollback): the ones not
        serving it are drained together while the others carry the traffic (batch by batch
        when none serves it), switched, checked and put back. None, or the problem."""
        suspects = await self.suspects(version)
        if not suspects:
            problem = await self.weigh(frozenset())
            return f"putting every instance back: {problem}" if problem else None
        keep = len(suspects) < len(self.config.instances)
        for group in [suspects] if keep else self.batches():
            problem = await self.replace(group, version)
            if problem is not None:
                return problem
        return None

    async def replace(self, instances: list[str], version: str) -> str | None:
        """Drain `instances`, switch each to `version` and check it serves it, put them back
        in. On a problem they stay drained: a half-switched instance gets no users."""
        problem = await self.weigh(frozenset(instances))
        if problem is not None:
            return f"draining: {problem}"
        for instance in instances:
            self.fleet.versions[instance] = None
            problem = await self.switch(instance, version)
            if problem is not None:
                return f"{instance}: {problem}"
            self.fleet.versions[instance] = version
        problem = await self.weigh(frozenset())
        return f"putting back: {problem}" if problem else None

    async def weigh(self, drained: frozenset[str]) -> str | None:
        """Weight 0 to `drained`, 1 to the other instances, read back by the router."""
        if self.fleet.drained == drained:
            return None
        weights = {i: 0 if i in drained else 1 for i in self.config.instances}
        try:
            await self.router.set_weights(self.config.router.nginx.upstream, weights)
        except RouterError as exc:
            if not isinstance(exc, _KEPT):
                self.fleet.drained = None  # the read-back failed or nginx could not be run
            return str(exc)
        self.fleet.drained = drained
        return None

    async def switch(self, instance: str, version: str) -> str | None:
        """The switch steps for one instance, then its version_path must name `version`."""
        self.say(f"{self.service}: switching {instance} to {version}")
        variables = self.variables | {"version": version, "instance": instance}
        run = await self.runner.run_steps(f"switch:{self.service}", self.steps, variables)
        self.switches.append({"instance": instance, "version": version, "run_id": run.id,
                              "state": str(run.state), "message": run.message})  # fmt: skip
        if run.state not in (RunState.SUCCEEDED, RunState.SKIPPED):
            return f"switch steps failed: {run.message}"
        if self.config.version_path is None:
            return None  # the steps' success is all there is to go on
        url = f"http://{instance}{self.config.version_path}"
        return await version_reported(url, version, self.switch_timeout)

    async def suspects(self, version: str) -> list[str]:
        """The instances that may not serve `version`: those whose version_path does not say
        it, or, without one, those this process has not seen switched to it."""
        instances = self.config.instances
        path = self.config.version_path
        if path is None:
            return [i for i in instances if self.fleet.versions.get(i) != version]
        import httpx

        async def serves(client: httpx.AsyncClient, instance: str) -> bool:
            try:
                response = await client.get(f"http://{instance}{path}")
            except httpx.HTTPError:
                return False
            return response.status_code == 200 and names_version(response.text.strip(), version)

        async with http_client(verify_tls=True, timeout=ASK_TIMEOUT_S) as client:
            answers = await asyncio.gather(*(serves(client, i) for i in instances))
        return [i for i, good in zip(instances, answers, strict=True) if not good]
