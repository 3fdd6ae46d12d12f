"""What the Now page shows, read through the store and the public views the API serves."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opsmedic.config.slos import SloConfig
from opsmedic.model import DeploymentState, IncidentStatus, RunState
from opsmedic.slo.watch import statuses
from opsmedic.store.store import Store
from opsmedic.views import DeploymentView, IncidentView, RunView

ACTIVE = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED)
INCIDENTS_SHOWN = 100  # the newest; the page says when there are more
RECENT_RUNS = 500  # the runs read to tell what automation did for the incidents shown
FLAG_WINDOW_S = 3600.0
IN_PROGRESS = (DeploymentState.STARTED.value, DeploymentState.VERIFYING.value)


@dataclass
class NowData:
    incidents: list[IncidentView]
    more_incidents: bool
    runs_by_incident: dict[str, list[RunView]]
    running: list[RunView]
    deployments: list[DeploymentView]
    flags: list[dict[str, Any]]
    slos: list[dict[str, Any]] = field(default_factory=list)


def now_data(store: Store, slos: Sequence[SloConfig], now: float) -> NowData:
    """The page's data in one call (on a worker thread: these are store reads)."""
    found = [i for s in ACTIVE for i in store.list_incidents(status=s, limit=INCIDENTS_SHOWN + 1)]
    more = len(found) > INCIDENTS_SHOWN
    found.sort(key=lambda i: i.opened_at, reverse=True)
    incidents = [IncidentView.model_validate(i) for i in found[:INCIDENTS_SHOWN]]
    by_incident: dict[str, list[RunView]] = defaultdict(list)
    shown = {i.id for i in incidents}
    for run in store.list_runs(limit=RECENT_RUNS):
        if run.incident_id in shown:
            by_incident[run.incident_id].append(RunView.of(run))
    running = [RunView.of(r) for r in store.list_runs(state=RunState.RUNNING, limit=100)]
    deployments = [
        DeploymentView.model_validate(d)
        for d in store.list_deployments(states=IN_PROGRESS, limit=100)
    ]
    flags = [
        {"key": r.flag.key, "version": r.version, "updated_at": r.updated_at,
         "by": f"{r.updated_by.kind} {r.updated_by.name}"}
        for r in store.flags.listing().records
        if r.updated_at >= now - FLAG_WINDOW_S
    ]  # fmt: skip
    burning = [s.as_dict() for s in statuses(slos, store, now) if s.firing] if slos else []
    return NowData(incidents, more, dict(by_incident), running, deployments, flags, burning)
