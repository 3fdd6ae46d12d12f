"""What the Now page shows, read through the store and the public views the API serves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opsmedic.flags.changes import FlagChange
from opsmedic.model import DeploymentState, IncidentStatus, RunState
from opsmedic.slo.watch import StatusReader
from opsmedic.store.now_rows import RunMark
from opsmedic.store.run_query import RunFilter
from opsmedic.store.store import Store
from opsmedic.views import DeploymentView, IncidentView, RunView

ACTIVE = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED)
INCIDENTS_SHOWN = 100  # the newest; the page says when there are more
RUNS_PER_INCIDENT = 5  # what automation did: each incident's latest runs
RUNNING_SHOWN = 100
RUNNING_COUNTED = 10_000  # running runs counted at most: past that the page says "more than"
RUNNING = RunFilter(state=RunState.RUNNING)
DEPLOYMENTS_SHOWN = 100
FLAG_WINDOW_S = 3600.0
FLAGS_SHOWN = 50
IN_PROGRESS = (DeploymentState.STARTED.value, DeploymentState.VERIFYING.value)


@dataclass(frozen=True, slots=True)
class Rollout:
    """A deployment in progress and, for a canary, where its traffic is now."""

    deployment: DeploymentView
    weights: dict[str, int]  # backend → weight of the canary's current step; {}: none yet
    step: int | None  # the step's canary percent


@dataclass
class NowData:
    incidents: list[IncidentView]
    incidents_total: int  # active ones: more than shown when over INCIDENTS_SHOWN
    runs_by_incident: dict[str, list[RunMark]]
    running: list[RunView]
    running_total: int  # counted up to RUNNING_COUNTED + 1
    deployments: list[Rollout]
    deployments_total: int
    flags: list[FlagChange]
    flags_total: int
    slos: list[dict[str, Any]] = field(default_factory=list)


def now_data(store: Store, slos: StatusReader, now: float) -> NowData:
    """The page's data in one call (on a worker thread: these are store reads)."""
    found = [i for s in ACTIVE for i in store.list_incidents(status=s, limit=INCIDENTS_SHOWN + 1)]
    found.sort(key=lambda i: i.opened_at, reverse=True)
    total = store.now.count_incidents(ACTIVE) if len(found) > INCIDENTS_SHOWN else len(found)
    incidents = [IncidentView.model_validate(i) for i in found[:INCIDENTS_SHOWN]]
    by_incident = store.now.latest_runs([i.id for i in incidents], RUNS_PER_INCIDENT)
    runs, running_total = store.run_reads.page(RUNNING, RUNNING_SHOWN, RUNNING_COUNTED)
    rollouts = [
        rollout(DeploymentView.model_validate(d))
        for d in store.list_deployments(states=IN_PROGRESS, limit=DEPLOYMENTS_SHOWN + 1)
    ]
    rolling = len(rollouts)
    if rolling > DEPLOYMENTS_SHOWN:
        rolling = store.count_deployments(states=IN_PROGRESS)
    flags, flags_total = store.flags.since(now - FLAG_WINDOW_S, FLAGS_SHOWN)
    burning = [s.as_dict() for s in slos.read(now) if s.firing]
    running = [RunView.of(r) for r in runs]
    return NowData(incidents, total, by_incident, running, running_total,
                   rollouts[:DEPLOYMENTS_SHOWN], rolling, flags, flags_total, burning)  # fmt: skip


def rollout(deployment: DeploymentView) -> Rollout:
    """A deployment with its canary's current weights, from the steps its controller keeps
    in `checks.canary` (written with each heartbeat while the canary runs)."""
    canary = deployment.checks.get("canary")
    steps = canary.get("steps") if isinstance(canary, dict) else None
    last = steps[-1] if isinstance(steps, list) and steps else {}
    weights = last.get("weights") if isinstance(last, dict) else None
    if not isinstance(weights, dict):
        return Rollout(deployment, {}, None)
    percent = last.get("canary_percent")
    return Rollout(deployment, {str(k): int(v) for k, v in weights.items()},
                   percent if isinstance(percent, int) else None)  # fmt: skip
