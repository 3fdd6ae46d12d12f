"""The release controller: record a deployment, switch, verify, promote or roll back.

Every state change is written to the store first (conditionally: a row someone else took
over is left alone), then announced as an event. The process driving a deployment beats a
heartbeat on its row, so that the next start finds one whose process died (recovery.py)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsmedic.clock import Clock
from opsmedic.config.located import unknown_name
from opsmedic.config.services import ServiceConfig, VerifyCheck
from opsmedic.errors import ReleaseRefused, UnknownRelease
from opsmedic.model import Deployment, DeploymentState, RunState
from opsmedic.releases.blue_green import BlueGreens, preview_body
from opsmedic.releases.canary import Beat, Canaries, backend_of
from opsmedic.releases.changes import failing_body, what_changed
from opsmedic.releases.events import deployment_event, escalation_event
from opsmedic.releases.gates import run_gates
from opsmedic.releases.heartbeat import beating
from opsmedic.releases.measure import Sampler
from opsmedic.releases.ports import Announce, Progress, StepRunner
from opsmedic.releases.rolling import Rollout, Rollouts
from opsmedic.releases.steps import SwitchSteps
from opsmedic.releases.switched import switch_problem
from opsmedic.releases.verify import Result, verify
from opsmedic.store.store import Store

ACTIVE = (DeploymentState.STARTED, DeploymentState.VERIFYING)
# How long a deployment taken over waits for the rollback that took it to end (0.1 s each),
# so that it reports the outcome and, if its own switch finished last, switches back.
TAKEOVER_WAIT_TICKS = 600
ANY = tuple(DeploymentState)


def this_owner() -> str:
    """Who drives a deployment: host and pid, so a restart can tell a dead owner."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(slots=True)
class ReleaseController:
    """Drives deployments of the configured services; one per process."""

    services: dict[str, ServiceConfig]
    switch: SwitchSteps
    store: Store
    runner: StepRunner
    announce: Announce
    sample: Sampler
    clock: Clock
    log: Any
    owner: str = field(default_factory=this_owner)
    # Dry-run switches nothing, so there is nothing to verify: deployments are refused.
    dry_run: bool = False
    progress: Progress | None = None
    canaries: Canaries = field(default_factory=Canaries)
    rollouts: Rollouts = field(default_factory=Rollouts)
    blue_greens: BlueGreens = field(default_factory=BlueGreens)
    _driving: set[asyncio.Task[Deployment]] = field(default_factory=set)
    # One switch at a time per service and environment: an emergency rollback that starts
    # while a deployment's switch runs waits for it, instead of interleaving the two sets of
    # steps and checking a symlink the other one is flipping.
    _switching: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    # The entry points: the CLI, the API and the deploy/rollback actions.

    async def deploy(
        self, service: str, version: str, env: str | None = None, *,
        requested_by: str = "", force: bool = False,
    ) -> Deployment:  # fmt: skip
        """Record the deployment and drive it to its end (promoted, rolled back or failed).
        Cancelled on the way (a step's timeout, an interrupt), it is rolled back first: its
        owner lives on, so recovery would never take a release left half-way."""
        deployment = await self.begin(service, version, env, requested_by=requested_by,
                                      force=force)  # fmt: skip
        try:
            return await self.drive(deployment)
        except asyncio.CancelledError:
            why = "the deploy was cancelled (its caller's timeout or an interrupt)"
            await asyncio.shield(self.undo(deployment, why))
            raise

    async def start(
        self, service: str, version: str, env: str | None = None, *,
        requested_by: str = "", force: bool = False,
    ) -> Deployment:  # fmt: skip
        """Record the deployment (refusals raise here) and drive it in the background."""
        deployment = await self.begin(service, version, env, requested_by=requested_by,
                                      force=force)  # fmt: skip
        task = asyncio.create_task(self.drive(deployment), name=f"deploy-{deployment.id}")
        self._driving.add(task)
        task.add_done_callback(self._driving.discard)
        return deployment

    async def close(self) -> None:
        """Stop driving the deployments started in the background: each stays active under
        this process, which the next start finds gone and rolls back (recovery.py)."""
        for task in self._driving:
            task.cancel()
        await asyncio.gather(*self._driving, return_exceptions=True)

    async def begin(
        self, service: str, version: str, env: str | None, *, requested_by: str, force: bool
    ) -> Deployment:
        config, env = self.target(service, env)
        _known_version(config, service, version)
        if config.canary is not None:
            backend_of(config.canary, service, version)
        self._not_dry()
        now = self.clock.now()
        previous = await asyncio.to_thread(self._serving, service, env)
        deployment = Deployment(
            service=service, env=env, version=version, previous_version=previous,
            strategy=config.strategy, requested_by=requested_by, forced=force,
            created_at=now, updated_at=now, owner=self.owner, heartbeat_at=now,
        )  # fmt: skip
        await asyncio.to_thread(self.store.start_deployment, deployment)
        await self._announce(deployment)
        await self._gate(config, deployment)
        return deployment

    async def _gate(self, config: ServiceConfig, deployment: Deployment) -> None:
        """Run the environment's gates (unless forced), recorded on the deployment; when one
        fails the deployment ends `failed` and ReleaseRefused carries the reason."""
        if deployment.forced:
            deployment.checks["gates"] = {"forced": True, "results": []}
            return

        async def passed_in(version: str, env: str) -> bool:
            found = await asyncio.to_thread(self.store.last_known_good, deployment.service,
                                            env, version=version)  # fmt: skip
            return found is not None

        self._say(f"{deployment.service}: running the gates of {deployment.env}")
        try:
            async with beating(self.store, deployment.id, self.owner, self.clock):
                results, failed = await run_gates(config, deployment.env, deployment.version,
                                                  passed_in)  # fmt: skip
        except asyncio.CancelledError:
            # Nothing was switched; left `started` under a live owner it would block every
            # later deployment of the service.
            why = "cancelled while its gates ran (the caller's timeout?): nothing was switched"
            await asyncio.shield(self._change(deployment, DeploymentState.FAILED, ACTIVE, why))
            raise
        deployment.checks["gates"] = {"forced": False, "results": results}
        if failed:
            await self._change(deployment, DeploymentState.FAILED, ACTIVE, f"refused: {failed}")
            raise ReleaseRefused(f"{deployment.service} {deployment.version} to "
                                 f"{deployment.env} refused: {failed}")  # fmt: skip

    async def drive(self, deployment: Deployment) -> Deployment:
        """Switch to the new version, check it took effect, verify, promote or roll back."""
        config = self.services[deployment.service]
        if config.canary is not None and (ended := await self._canary(deployment)) is not None:
            return ended
        if config.rolling is not None and (ended := await self._rolling(deployment)) is not None:
            return ended
        if config.blue_green is not None and (ended := await self._preview(deployment)):
            return ended
        problem = await self._switch(deployment, deployment.version, deployment.previous_version)
        if problem is not None:
            return await self.undo(deployment, f"switch to {deployment.version} failed: {problem}")
        if not await self._change(deployment, DeploymentState.VERIFYING, ACTIVE):
            return await self._yield_to_rollback(deployment)
        checks = self.checks_of(deployment.service, deployment.env)
        self._say(f"{deployment.service}: verifying {deployment.version} with "
                  f"{len(checks)} check(s), bake {config.bake:g}s")  # fmt: skip
        result = await verify(checks, self.sample, bake=config.bake,
                              longest=config.verify_timeout,
                              beat=self._beat(deployment, "verify"))  # fmt: skip
        deployment.checks["verify"] = result.checks
        if result.aborted:
            self._say(f"{deployment.service}: {result.reason}")
            return await self._yield_to_rollback(deployment)
        if not result.passed:
            return await self.undo(deployment, result.reason)
        deployment.last_known_good = True
        await self._change(deployment, DeploymentState.PROMOTED, ACTIVE, result.reason)
        return deployment

    async def rollback(
        self, service: str, env: str | None = None, *, to: str | None = None,
        reason: str = "", requested_by: str = "", traceback: str = "",
    ) -> Deployment:  # fmt: skip
        """The emergency path: no analysis, back to the last known good (or `to`, which must
        have passed before). Idempotent: a deployment already rolled back there is returned.
        `traceback`: the error that called for it (a rule's event), for "what changed"."""
        config, env = self.target(service, env)
        self._not_dry()
        found = await asyncio.to_thread(self.store.list_deployments, service, env, limit=1)
        if not found:
            raise UnknownRelease(f"{service} has no deployment in {env} to roll back")
        latest = found[0]
        if latest.state is DeploymentState.ROLLED_BACK and to in (None, latest.rolled_back_to):
            self._say(f"{service}: already rolled back to {latest.rolled_back_to}")
            return latest
        if to is not None:
            await self._can_return_to(config, service, env, to, latest)
        if latest.state in ACTIVE and latest.owner != self.owner:
            # An emergency outranks the deployment in flight: its driver loses its row at
            # its next heartbeat and stops.
            await asyncio.to_thread(self.store.take_over_deployment, latest.id, latest.owner,
                                    self.owner, self.clock.now())  # fmt: skip
            latest.owner = self.owner
        why = reason or "rollback requested"
        by = f" by {requested_by}" if requested_by else ""
        return await self.undo(latest, f"{why}{by}", to=to, emergency=True, traceback=traceback)

    async def undo(
        self, deployment: Deployment, reason: str, *, to: str | None = None,
        emergency: bool = False, traceback: str = "",
    ) -> Deployment:  # fmt: skip
        """Switch back to the last known good version (or `to`); without one, refuse loudly:
        an escalation event and the deployment `failed`."""
        service, env = deployment.service, deployment.env
        target = await asyncio.to_thread(self.store.last_known_good, service, env, version=to,
                                         excluding="" if to else deployment.version)  # fmt: skip
        expected = ANY if emergency else ACTIVE
        if target is None:
            missing = (f"{to!r} never passed verification in {env}" if to
                       else "there is no last known good version")  # fmt: skip
            why = f"{reason}; cannot roll back: {missing}"
            await self.announce([escalation_event(deployment, why, self.clock.now())])
            if deployment.state in ACTIVE:
                await self._change(deployment, DeploymentState.FAILED, expected, why)
            if emergency:
                raise ReleaseRefused(f"{service} in {env}: {why}")
            return deployment
        problem = await self._switch(deployment, target.version, deployment.version)
        if problem is not None:
            why = f"{reason}; rollback to {target.version} failed: {problem}"
            await self.announce([escalation_event(deployment, why, self.clock.now())])
            await self._change(deployment, DeploymentState.FAILED, expected, why)
            return deployment
        deployment.rolled_back_to, deployment.last_known_good = target.version, False
        repo = self.services[service].git
        if repo is not None:
            deployment.checks["what_changed"] = await what_changed(
                repo, target.version, deployment.version,
                traceback or failing_body(deployment.checks))  # fmt: skip
        if not await self._change(deployment, DeploymentState.ROLLED_BACK, expected,
                                  f"{reason}; rolled back to {target.version}"):  # fmt: skip
            return await self._yield_to_rollback(deployment)
        return deployment

    async def _canary(self, deployment: Deployment) -> Deployment | None:
        """Strategy canary: the weight steps, each analysed against the version serving now.
        A first deployment has nothing to compare with: None, straight to the switch."""
        config = self.services[deployment.service]
        assert config.canary is not None
        canary, service = config.canary, deployment.service
        stable = canary.backends.get(deployment.previous_version)
        new = backend_of(canary, service, deployment.version)
        if stable is None or stable == new:
            self._say(f"{service}: no other version serving to compare {new} with: no canary")
            return None
        self._say(f"{service}: canary {deployment.version} at {new} against {stable}, steps "
                  f"{canary.steps} %, {canary.analysis.interval:g}s each")  # fmt: skip
        return await self._analysed(deployment, "canary", lambda beat: self.canaries.analyse(
            service, canary, stable, new, hold=config.verify_timeout, beat=beat))  # fmt: skip

    async def _rolling(self, deployment: Deployment) -> Deployment | None:
        """Strategy rolling: the batches, each verified before the next (the switch then finds
        every instance on the version)."""
        config = self.services[deployment.service]
        rollout = self._rollout(deployment, deployment.previous_version)
        lock = self._switching.setdefault((deployment.service, deployment.env), asyncio.Lock())
        return await self._analysed(deployment, "rolling", lambda beat: rollout.run(
            deployment.version, config.checks(deployment.env), self.sample,
            hold=config.verify_timeout, beat=beat, lock=lock))  # fmt: skip

    def _rollout(self, deployment: Deployment, previous: str) -> Rollout:
        config = self.services[deployment.service]
        assert config.rolling is not None
        variables = {"service": deployment.service, "previous": previous, "env": deployment.env}
        return self.rollouts.rollout(
            deployment.service, config.rolling, runner=self.runner,
            steps=self.switch[(deployment.service, deployment.env)], variables=variables,
            switches=deployment.checks.setdefault("switches", []),
            switch_timeout=config.switch_timeout, say=self._say,
        )  # fmt: skip

    async def _preview(self, deployment: Deployment) -> Deployment | None:
        """Strategy blue_green: the version started on the idle slot and verified there, with
        no traffic (the router change and live verification follow)."""
        return await self._analysed(deployment, "blue_green", lambda beat: self.blue_greens.preview(
            deployment, self.services[deployment.service], self.runner, self.sample,
            beat=beat, say=self._say), traceback=preview_body)  # fmt: skip

    async def _analysed(
        self, deployment: Deployment, key: str, analyse: Callable[[Beat], Awaitable[Result]],
        *, traceback: Callable[[dict[str, Any]], str] | None = None,
    ) -> Deployment | None:  # fmt: skip
        """A strategy's analysis before the switch, recorded under checks[key]: None when it
        passed, else the deployment as it ended (rolled back, or yielded to a takeover).
        `traceback`: where the analysis's record keeps the failing answer, for what changed."""
        if not await self._change(deployment, DeploymentState.VERIFYING, ACTIVE):
            return await self._yield_to_rollback(deployment)
        outcome = await analyse(self._beat(deployment, key))
        deployment.checks[key] = outcome.checks
        if outcome.aborted:
            return await self._yield_to_rollback(deployment)
        if not outcome.passed:
            failing = traceback(outcome.checks) if traceback is not None else ""
            return await self.undo(deployment, outcome.reason, traceback=failing)
        self._say(f"{deployment.service}: {outcome.reason}")
        return None

    async def _can_return_to(
        self, config: ServiceConfig, service: str, env: str, to: str, latest: Deployment
    ) -> None:
        """`rollback --to` is refused before anything is taken over or announced: a version
        that does not exist (UnknownRelease), one that never passed, or the one serving."""
        _known_version(config, service, to)
        if latest.state is DeploymentState.PROMOTED and latest.version == to:
            raise ReleaseRefused(f"{service} in {env}: {to} is the version serving")
        found = await asyncio.to_thread(self.store.last_known_good, service, env, version=to)
        if found is None:
            raise ReleaseRefused(f"{service} in {env}: {to!r} never passed verification in {env}")

    def _beat(self, deployment: Deployment, key: str) -> Beat:
        """Keep the progress on the deployment, in the store with the heartbeat (the dashboard
        shows a canary's weights while it runs): False once taken over."""

        async def beat(progress: dict[str, Any]) -> bool:
            deployment.checks[key] = progress
            now = self.clock.now()
            return await asyncio.to_thread(
                self.store.deployment_heartbeat, deployment.id, self.owner, now, deployment.checks
            )

        return beat

    async def _yield_to_rollback(self, deployment: Deployment) -> Deployment:
        """An emergency rollback took this deployment over while it switched or verified: our
        switch may have finished after the rollback's, so the rollback's version goes back."""
        found = await asyncio.to_thread(self.store.get_deployment, deployment.id)
        for _ in range(TAKEOVER_WAIT_TICKS):  # the rollback may still be switching
            if found.state.finished:
                break
            await asyncio.sleep(0.1)
            found = await asyncio.to_thread(self.store.get_deployment, deployment.id)
        if found.state is DeploymentState.ROLLED_BACK and found.rolled_back_to:
            await self._switch(found, found.rolled_back_to, found.version)
        return found

    # Reading the config.

    def target(self, service: str, env: str | None) -> tuple[ServiceConfig, str]:
        """The service's config and the environment (its first when None); UnknownRelease."""
        config = self.services.get(service)
        if config is None:
            raise UnknownRelease(unknown_name("service", service, list(self.services)))
        envs = config.environment_names()
        env = env or envs[0]
        if env not in envs:
            raise UnknownRelease(f"{service}: " + unknown_name("environment", env, envs))
        return config, env

    def checks_of(self, service: str, env: str) -> list[VerifyCheck]:
        """The service's checks and those of each service that depends on it (`info` is
        watched too when `data` changes), named `service/check`."""
        own = [c.model_copy(update={"name": f"{service}/{c.name}"})
               for c in self.services[service].checks(env)]  # fmt: skip
        for name, other in self.services.items():
            if service in other.depends_on and env in other.environment_names():
                own += [c.model_copy(update={"name": f"{name}/{c.name}"})
                        for c in other.checks(env)]  # fmt: skip
        return own

    # The steps of a deployment.

    async def _switch(self, deployment: Deployment, version: str, previous: str) -> str | None:
        """Run the switch steps for `version` and check it took effect: None, or the problem."""
        key = (deployment.service, deployment.env)
        # The switch beats too: a slow one (a long start, a rolling batch) must not look like
        # a dead owner to another host's recovery.
        async with (
            self._switching.setdefault(key, asyncio.Lock()),
            beating(self.store, deployment.id, self.owner, self.clock),
        ):
            return await self._switch_now(deployment, version, previous)

    async def _switch_now(self, deployment: Deployment, version: str, previous: str) -> str | None:
        self._say(f"{deployment.service}: switching {deployment.env} to {version}")
        canary = self.services[deployment.service].canary
        if canary is not None and (
            routed := await self.canaries.route_all(deployment.service, canary, version)
        ):
            return routed
        if self.services[deployment.service].rolling is not None:
            return await self._rollout(deployment, previous).restore(version)
        if self.services[deployment.service].blue_green is not None and (
            moved := await self.blue_greens.route(deployment, self.services[deployment.service],
                                                  version, previous, self.runner, self._say)
        ):  # fmt: skip
            return moved
        variables = {"service": deployment.service, "version": version,
                     "previous": previous, "env": deployment.env}  # fmt: skip
        steps = self.switch[(deployment.service, deployment.env)]
        run = await self.runner.run_steps(f"switch:{deployment.service}", steps, variables)
        deployment.checks.setdefault("switches", []).append(
            {"version": version, "run_id": run.id, "state": str(run.state),
             "message": run.message, "steps": [
                 {"action": s.action, "state": str(s.state), "message": s.message}
                 for s in run.steps]}
        )  # fmt: skip
        if run.state not in (RunState.SUCCEEDED, RunState.SKIPPED):
            return run.message
        return await switch_problem(self.services[deployment.service], deployment.env, version)

    async def _change(
        self, deployment: Deployment, state: DeploymentState,
        expected: Sequence[DeploymentState], reason: str = "",
    ) -> bool:  # fmt: skip
        """Move to `state` if the row is still as expected; False (and nothing announced)
        when another process took the deployment over."""
        before = deployment.state
        now = self.clock.now()
        deployment.state, deployment.updated_at, deployment.heartbeat_at = state, now, now
        deployment.reason = reason or deployment.reason
        if state.finished:
            deployment.finished_at = now
        if not await asyncio.to_thread(self.store.update_deployment, deployment, expected):
            deployment.state = before
            self._say(f"{deployment.service}: deployment {deployment.id} was taken over")
            return False
        await self._announce(deployment)
        return True

    async def _announce(self, deployment: Deployment) -> None:
        reason = f": {deployment.reason}" if deployment.reason else ""
        self._say(f"{deployment.service} {deployment.version} in {deployment.env}: "
                  f"{deployment.state}{reason}")  # fmt: skip
        self.log.info("deployment", service=deployment.service, env=deployment.env,
                      version=deployment.version, state=str(deployment.state))  # fmt: skip
        await self.announce([deployment_event(deployment, self.clock.now())])

    def _not_dry(self) -> None:
        if self.dry_run:
            raise ReleaseRefused("opsmedic runs dry-run: a switch would change nothing, so "
                                 "there would be nothing to verify or roll back")  # fmt: skip

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    def _serving(self, service: str, env: str) -> str:
        """The version in place before a new deployment, as the last finished one left it."""
        for found in self.store.list_deployments(service, env, limit=20):
            if found.state is DeploymentState.PROMOTED:
                return found.version
            if found.state is DeploymentState.ROLLED_BACK:
                return found.rolled_back_to
        return ""


def _known_version(config: ServiceConfig, service: str, version: str) -> None:
    """`version` must name an entry of the service's versions directory."""
    try:
        known = sorted(p.name for p in config.versions.iterdir())
    except OSError as exc:
        raise UnknownRelease(
            f"{service}: cannot list versions in {config.versions}: {exc}"
        ) from None
    if version not in known or "/" in version:
        where = f"{service} in {config.versions}"
        raise UnknownRelease(f"{where}: " + unknown_name("version", version, known))
