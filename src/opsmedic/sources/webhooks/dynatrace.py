"""Dynatrace's custom integration: problem notifications in the template docs/webhooks.md gives."""

from __future__ import annotations

import re
from typing import Any

from opsmedic.errors import WebhookError
from opsmedic.model import Event, Status
from opsmedic.plugins import WebhookSpec
from opsmedic.sources.webhooks.shape import (
    as_object,
    child,
    host_of,
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
# A placeholder Dynatrace left as it was ({PID}, {Tags}, {ProblemSeverity}): the template named a
# value this notification does not have (or a typo). It is no value, least of all an identity:
# every problem sent with "{PID}" would otherwise be one alert.
_PLACEHOLDER = re.compile(r"\{[A-Z][A-Za-z0-9_]*\}")
# Impacted entity types that name what a remediation acts on, in order of preference.
_RESOURCE_TYPES = ("service", "process_group_instance", "process_group", "application")


def parse(data: Any) -> list[Event]:
    body = as_object(data, "")
    state = _text(body, "State")
    if not state:
        raise WebhookError("State", "missing")
    status = status_from(state, STATES, "State")
    entities = _entities(_filled(body.get("ImpactedEntities")))
    # ProblemSeverity, else the severityLevel of {ProblemDetailsJSON} (the problem's details,
    # which templates name ProblemDetailsJSON as Dynatrace's example does, or ProblemDetails).
    problem_severity = _text(body, "ProblemSeverity") or _details_severity(body)
    # Tags first: Dynatrace's own findings win over a tag of the same name.
    labels = parse_tags(_filled(body.get("Tags")), "Tags")
    labels.update({kind: ",".join(names) for kind, names in entities.items()})
    own = {"impact": _text(body, "ProblemImpact"), "severity": problem_severity}
    labels.update({k: v for k, v in own.items() if v})
    first = {kind: names[0] for kind, names in entities.items()}
    key = _text(body, "PID") or _text(body, "ProblemID")
    return [
        Event(
            source="dynatrace",
            kind=_text(body, "ProblemTitle"),
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


def _filled(value: Any) -> Any:
    """None for an unfilled placeholder, else the value as it came."""
    return None if isinstance(value, str) and _PLACEHOLDER.fullmatch(value.strip()) else value


def _text(obj: dict[str, Any], key: str, where: str = "") -> str:
    text = opt_text(obj, key, where)
    return "" if _PLACEHOLDER.fullmatch(text.strip()) else text


def _details_severity(body: dict[str, Any]) -> str:
    for key in ("ProblemDetailsJSON", "ProblemDetails"):
        details = _filled(body.get(key))
        if details is not None:
            return _text(as_object(details, key), "severityLevel", key)
    return ""


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


WEBHOOK: WebhookSpec[Any] = WebhookSpec(
    "dynatrace", parse, summary="Dynatrace's problem notifications"
)
