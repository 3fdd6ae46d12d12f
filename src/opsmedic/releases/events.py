"""The events a deployment announces: each state change, and an escalation when it cannot undo."""

from __future__ import annotations

from opsmedic.model import OWN_SOURCE, Deployment, DeploymentState, Event, Status, fingerprint_of

SOURCE, KIND = OWN_SOURCE, "deployment"
_SEVERITY = {DeploymentState.ROLLED_BACK: "warning", DeploymentState.FAILED: "critical"}


def deployment_event(deployment: Deployment, now: float) -> Event:
    """One state change; the events of one service and env share a fingerprint (one alert),
    firing while a deployment runs or went wrong, resolved when a version is promoted, so an
    incident follows a release from start to promotion on its timeline."""
    state = deployment.state
    return Event(
        source=SOURCE, kind=KIND, resource=deployment.service,
        labels={"env": deployment.env, "version": deployment.version, "state": str(state)},
        value=str(state), severity=_SEVERITY.get(state, "info"),
        status=Status.RESOLVED if state is DeploymentState.PROMOTED else Status.FIRING,
        fingerprint=fingerprint_of(SOURCE, KIND, deployment.service, "", {"env": deployment.env}),
        time=now, payload=_payload(deployment),
    )  # fmt: skip


def escalation_event(deployment: Deployment, reason: str, now: float) -> Event:
    """A rollback that cannot be done: nobody is left serving a known good version."""
    return Event(
        source=SOURCE, kind="escalation", resource=deployment.service,
        labels={"reason": "no_rollback", "env": deployment.env, "version": deployment.version},
        value=reason, severity="critical", status=Status.FIRING, time=now,
        payload=_payload(deployment) | {"message": reason},
    )  # fmt: skip


def _payload(deployment: Deployment) -> dict[str, object]:
    return {"deployment_id": deployment.id, "previous_version": deployment.previous_version,
            "rolled_back_to": deployment.rolled_back_to, "reason": deployment.reason,
            "requested_by": deployment.requested_by, "forced": deployment.forced,
            # On a rollback of a service with a git repository (changes.py).
            **({"what_changed": deployment.checks["what_changed"]}
               if "what_changed" in deployment.checks else {})}  # fmt: skip
