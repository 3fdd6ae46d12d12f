"""Dynatrace's custom integration: problem notifications in the template docs/webhooks.md gives."""

from __future__ import annotations

from typing import Any

from opsmedic.model import Event, Status
from opsmedic.sources.webhooks.shape import (
    WebhookError,
    as_object,
    child,
    host_of,
    need_text,
    opt_text,
    parse_tags,
    resource_of,
    severity_of,
    status_from,
    type_name,
)

# MERGED: the problem was folded into another one, which carries on; this one is over.
STATES = {"open": Status.FIRING, "resolved": Status.RESOLVED, "merged": Status.RESOLVED}
SEVERITIES = {"AVAILABILITY": "critical", "ERROR": "error", "PERFORMANCE": "warning",
              "RESOURCE_CONTENTION": "warning", "CUSTOM_ALERT": "warning",
              "MONITORING_UNAVAILABLE": "warning", "INFO": "info"}  # fmt: skip
# Impacted entity types that name what a remediation acts on, in order of preference.
_RESOURCE_TYPES = ("service", "process_group_instance", "process_group", "application")


def parse(data: Any) -> list[Event]:
    body = as_object(data, "")
    status = status_from(need_text(body, "State", ""), STATES, "State")
    entities = _entities(body.get("ImpactedEntities"))
    problem_severity = opt_text(body, "ProblemSeverity", "")
    # Tags first: Dynatrace's own findings win over a tag of the same name.
    labels = parse_tags(body.get("Tags"), "Tags")
    labels.update({kind: ",".join(names) for kind, names in entities.items()})
    own = {"impact": opt_text(body, "ProblemImpact", ""), "severity": problem_severity}
    labels.update({k: v for k, v in own.items() if v})
    first = {kind: names[0] for kind, names in entities.items()}
    key = opt_text(body, "PID", "") or opt_text(body, "ProblemID", "")
    return [
        Event(
            source="dynatrace",
            kind=opt_text(body, "ProblemTitle", ""),
            resource=next((first[t] for t in _RESOURCE_TYPES if t in first), "")
            or resource_of(labels),
            host=first.get("host") or host_of(labels),
            labels=labels,
            severity=SEVERITIES.get(problem_severity.upper()) or severity_of(problem_severity),
            status=status,
            fingerprint=f"dynatrace:{key}" if key else "",
            payload=body,
        )
    ]


def _entities(value: Any) -> dict[str, list[str]]:
    """Impacted entity names by lower-cased type: {"host": ["web-1"], "service": ["checkout"]}."""
    if value is None:
        return {}
    if not isinstance(value, list):
        hint = (
            " (leave {ImpactedEntities} unquoted in the template)" if isinstance(value, str) else ""
        )
        raise WebhookError("ImpactedEntities", f"expected a list, got {type_name(value)}{hint}")
    found: dict[str, list[str]] = {}
    for i, raw in enumerate(value):
        where = child("ImpactedEntities", i)
        entity = as_object(raw, where)
        name = opt_text(entity, "name", where) or opt_text(entity, "entity", where)
        kind = opt_text(entity, "type", where).lower()
        if kind and name:
            found.setdefault(kind, []).append(name)
    return found
